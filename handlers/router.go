// Package handlers serves timguard's HTTP endpoints with gin: the callback the
// IM server calls, health and readiness, metrics and the admin API.
// *gin.Context never leaves this package.
package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/timguard/timguard/console"
	"github.com/timguard/timguard/policy"
)

// Decider decides a callback. policy.Engine implements it.
type Decider interface {
	Handle(ctx context.Context, ev *policy.Event) policy.Outcome
}

// Config configures the router.
type Config struct {
	// CallbackPath is where the IM server posts callbacks.
	CallbackPath string
	// SDKAppID is the only app whose callbacks are accepted.
	SDKAppID uint64
	// Tokens returns the tokens that may sign callbacks (empty disables the
	// signature check). It is called per request, so a reload can rotate
	// them.
	Tokens func() []string
	// MaxClockSkew refuses a RequestTime further than this from now.
	MaxClockSkew time.Duration
	// MaxBodyBytes refuses larger bodies with 413.
	MaxBodyBytes int64
	// Deadline bounds the work for one callback.
	Deadline time.Duration
	// TrustedProxies are the load balancers (IPs or CIDRs) whose
	// X-Forwarded-For names the client; from anyone else it is ignored, so
	// a caller cannot choose the address logged and audited.
	TrustedProxies []string
}

// Deps are the parts the router calls.
type Deps struct {
	Decider Decider
	// Ready reports whether the bot can serve (store reachable, rules
	// loaded); nil means always ready.
	Ready  func(ctx context.Context) error
	Logger *slog.Logger
	Now    func() time.Time
	// Metrics, when set, serves GET /metrics.
	Metrics http.Handler
	// Admin, when set, mounts the admin API under /v1.
	Admin func(r gin.IRoutes)
	// Console, when set, serves the moderators' console under /console/.
	Console http.Handler
	// Observe hears about every callback answered (command, HTTP status);
	// for metrics. It may be nil.
	Observe func(command string, status int)
}

// New builds the router.
func New(cfg Config, deps Deps) http.Handler {
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	log := deps.Logger.With("component", "http")
	// gin's mode is process-wide; release mode keeps its debug lines out
	// of the log.
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	if err := r.SetTrustedProxies(cfg.TrustedProxies); err != nil {
		// config validates the list; a bad entry here trusts no one.
		log.Error("trusted proxies refused; trusting none", "err", err)
		_ = r.SetTrustedProxies(nil)
	}
	r.HandleMethodNotAllowed = true
	r.Use(recovery(log))
	r.NoRoute(func(c *gin.Context) { jsonError(c, http.StatusNotFound, "not_found", "no such endpoint") })
	r.NoMethod(func(c *gin.Context) {
		jsonError(c, http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed here")
	})

	cb := &callbackHandler{cfg: cfg, deps: deps, log: log}
	r.POST(cfg.CallbackPath, cb.serve)
	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", func(c *gin.Context) {
		if deps.Ready != nil {
			ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
			defer cancel()
			if err := deps.Ready(ctx); err != nil {
				c.JSON(http.StatusServiceUnavailable, gin.H{"status": "not ready", "error": err.Error()})
				return
			}
		}
		c.JSON(http.StatusOK, gin.H{"status": "ready"})
	})
	if deps.Metrics != nil {
		r.GET("/metrics", gin.WrapH(deps.Metrics))
	}
	if deps.Admin != nil {
		deps.Admin(r.Group("/v1"))
	}
	if deps.Console != nil {
		r.Any(console.Prefix+"/*page", mountConsole(deps.Console))
	}
	return r
}

// errorBody is every error answer: a stable code and a sentence.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

func jsonError(c *gin.Context, status int, code, msg string) {
	c.AbortWithStatusJSON(status, errorBody{Error: msg, Code: code})
}

// unauthorized answers 401 and closes the connection after the answer: a
// caller without the token gets no keep-alive connection to hold. Its body
// is never read, and net/http would otherwise wait for the rest of it
// before closing; the read deadline set to now ends that wait. (A refused
// request's context may be cancelled by it; nothing works for it.)
func unauthorized(c *gin.Context, code, msg string) {
	c.Header("Connection", "close")
	_ = http.NewResponseController(c.Writer).SetReadDeadline(time.Now())
	jsonError(c, http.StatusUnauthorized, code, msg)
}

// recovery answers a panic with 500 and a JSON error, and logs the stack.
func recovery(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if v := recover(); v != nil {
				if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
					panic(v)
				}
				log.Error("panic while serving a request", "method", c.Request.Method, "path", c.Request.URL.Path,
					"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				if !c.Writer.Written() {
					jsonError(c, http.StatusInternalServerError, "internal", "internal error; the request was not evaluated")
				} else {
					c.Abort()
				}
			}
		}()
		c.Next()
	}
}

// mountConsole serves the console's http.Handler, telling it the caller's
// address as gin works it out from the trusted proxies (whatever the
// client sent in that header is replaced).
func mountConsole(h http.Handler) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Request.Header.Set(console.ClientHeader, c.ClientIP())
		h.ServeHTTP(c.Writer, c.Request)
	}
}
