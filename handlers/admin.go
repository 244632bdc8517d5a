package handlers

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/store"
)

// AdminStore is what the admin API reads from and writes to the store.
type AdminStore interface {
	ListMutes(ctx context.Context, group string) ([]store.Mute, error)
	ClearMute(ctx context.Context, group, user string) error
	RecentDecisions(ctx context.Context, f store.DecisionFilter) ([]store.DecisionRecord, error)
	Dead(ctx context.Context, limit int) ([]store.DeadAction, error)
	Pending(ctx context.Context, limit int) ([]store.Action, error)
}

// Lifter lifts mutes at the IM server at once.
type Lifter interface {
	// Unmute lifts a member's mute.
	Unmute(ctx context.Context, group, user string) error
	// UnmuteGroup switches a group-wide mute off.
	UnmuteGroup(ctx context.Context, group string) error
}

// AdminConfig configures the admin API.
type AdminConfig struct {
	// Token returns the bearer token; "" switches the API off (401 for
	// everyone). Called per request, so a reload can rotate it.
	Token func() string
	Store AdminStore
	// Lifter is nil when REST calls are off.
	Lifter Lifter
	// Simulate decides a callback body against the rules in force, with
	// no side effects, and returns the decision as a JSON-ready value.
	Simulate func(ctx context.Context, body []byte, state json.RawMessage) (any, error)
	// Reload reloads the configuration and rules; it returns the rules
	// version in force afterwards.
	Reload func(ctx context.Context) (string, error)
	// Rules describes the rules in force.
	Rules  func() any
	Audit  func(*audit.Record)
	Logger *slog.Logger
	Now    func() time.Time
}

// Admin returns the function that mounts the admin API (Deps.Admin).
func Admin(cfg AdminConfig) func(gin.IRoutes) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &admin{cfg: cfg, log: cfg.Logger.With("component", "admin")}
	return func(r gin.IRoutes) {
		r.Use(a.auth)
		r.GET("/rules", a.rules)
		r.GET("/groups/:group/mutes", a.listMutes)
		r.DELETE("/groups/:group/mutes/:user", a.liftMute)
		r.DELETE("/groups/:group/mute", a.liftGroupMute)
		r.GET("/decisions", a.decisions)
		r.GET("/actions/dead", a.dead)
		r.GET("/actions/pending", a.pending)
		r.POST("/simulate", a.simulate)
		r.POST("/reload", a.reload)
	}
}

type admin struct {
	cfg AdminConfig
	log *slog.Logger
}

const actorKey = "timguard.actor"

// auth checks the bearer token in constant time. The caller may name
// themselves in X-Timguard-Actor; audit records carry that name.
func (a *admin) auth(c *gin.Context) {
	want := ""
	if a.cfg.Token != nil {
		want = a.cfg.Token()
	}
	if want == "" {
		unauthorized(c, "admin_off", "the admin API is off: set admin.token")
		return
	}
	got, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
	if !ok || got == "" {
		unauthorized(c, "missing_token", "Authorization: Bearer TOKEN is required")
		return
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		a.log.Warn("admin API call refused: wrong token", "client", c.ClientIP(), "path", c.FullPath())
		unauthorized(c, "bad_token", "the bearer token is wrong")
		return
	}
	actor := strings.TrimSpace(c.GetHeader("X-Timguard-Actor"))
	if actor == "" || len(actor) > 64 {
		actor = "admin-token"
	}
	c.Set(actorKey, actor+"@"+c.ClientIP())
	c.Next()
}

func (a *admin) audit(c *gin.Context, rec *audit.Record) {
	rec.Kind = audit.KindAdmin
	rec.Time = a.cfg.Now()
	rec.Actor = c.GetString(actorKey)
	if a.cfg.Audit != nil {
		a.cfg.Audit(rec)
	}
}

func (a *admin) rules(c *gin.Context) {
	if a.cfg.Rules == nil {
		c.JSON(http.StatusOK, gin.H{})
		return
	}
	c.JSON(http.StatusOK, a.cfg.Rules())
}

func (a *admin) listMutes(c *gin.Context) {
	ms, err := a.cfg.Store.ListMutes(c.Request.Context(), c.Param("group"))
	if err != nil {
		storeError(c, err)
		return
	}
	if ms == nil {
		ms = []store.Mute{}
	}
	c.JSON(http.StatusOK, gin.H{"group": c.Param("group"), "mutes": ms})
}

func (a *admin) liftMute(c *gin.Context) {
	group, user := c.Param("group"), c.Param("user")
	a.lift(c, group, user, func(ctx context.Context) error { return a.cfg.Lifter.Unmute(ctx, group, user) })
}

func (a *admin) liftGroupMute(c *gin.Context) {
	group := c.Param("group")
	a.lift(c, group, "", func(ctx context.Context) error { return a.cfg.Lifter.UnmuteGroup(ctx, group) })
}

// lift lifts a mute at the IM server, then forgets the record, and audits
// either outcome.
func (a *admin) lift(c *gin.Context, group, user string, call func(context.Context) error) {
	kind := "unmute"
	if user == "" {
		kind = "unmute_group"
	}
	rec := &audit.Record{Group: group, User: user, Actions: []audit.ActionRef{{Kind: kind, Group: group, User: user}}}
	if a.cfg.Lifter == nil {
		rec.Result, rec.Error = audit.ResultSkipped, "REST calls are off (no tencent.secret_key)"
		a.audit(c, rec)
		jsonError(c, http.StatusServiceUnavailable, "rest_off", rec.Error)
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), 10*time.Second)
	defer cancel()
	start := time.Now()
	err := call(ctx)
	rec.LatencyUS = time.Since(start).Microseconds()
	if err != nil {
		rec.Result, rec.Error = audit.ResultDead, err.Error()
		a.audit(c, rec)
		jsonError(c, http.StatusBadGateway, "im_error", "the IM server refused: "+err.Error())
		return
	}
	if err := a.cfg.Store.ClearMute(ctx, group, user); err != nil {
		a.log.Warn("mute lifted but its record was not cleared", "group", group, "user", user, "err", err)
	}
	rec.Result = audit.ResultDone
	a.audit(c, rec)
	c.JSON(http.StatusOK, gin.H{"group": group, "user": user, "lifted": true})
}

func (a *admin) decisions(c *gin.Context) {
	limit, ok := queryLimit(c)
	if !ok {
		return
	}
	recs, err := a.cfg.Store.RecentDecisions(c.Request.Context(), store.DecisionFilter{
		Group: c.Query("group"), User: c.Query("user"), Limit: limit,
	})
	if err != nil {
		storeError(c, err)
		return
	}
	out := make([]json.RawMessage, 0, len(recs))
	for _, r := range recs {
		if json.Valid(r.Body) {
			out = append(out, r.Body)
		}
	}
	c.JSON(http.StatusOK, gin.H{"decisions": out})
}

func (a *admin) dead(c *gin.Context) {
	limit, ok := queryLimit(c)
	if !ok {
		return
	}
	ds, err := a.cfg.Store.Dead(c.Request.Context(), limit)
	if err != nil {
		storeError(c, err)
		return
	}
	if ds == nil {
		ds = []store.DeadAction{}
	}
	c.JSON(http.StatusOK, gin.H{"dead": ds})
}

func (a *admin) pending(c *gin.Context) {
	limit, ok := queryLimit(c)
	if !ok {
		return
	}
	ps, err := a.cfg.Store.Pending(c.Request.Context(), limit)
	if err != nil {
		storeError(c, err)
		return
	}
	if ps == nil {
		ps = []store.Action{}
	}
	c.JSON(http.StatusOK, gin.H{"pending": ps})
}

// simulateRequest is POST /v1/simulate: a callback body and, optionally,
// the store state to assume (counters, strikes, role, modes).
type simulateRequest struct {
	Event json.RawMessage `json:"event"`
	State json.RawMessage `json:"state"`
}

func (a *admin) simulate(c *gin.Context) {
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, 1<<20))
	if err != nil {
		jsonError(c, http.StatusBadRequest, "bad_body", err.Error())
		return
	}
	var req simulateRequest
	if err := json.Unmarshal(body, &req); err != nil || len(req.Event) == 0 {
		jsonError(c, http.StatusBadRequest, "bad_body", `want {"event": CALLBACK BODY, "state": {...}}`)
		return
	}
	out, err := a.cfg.Simulate(c.Request.Context(), req.Event, req.State)
	if err != nil {
		jsonError(c, http.StatusBadRequest, "bad_event", err.Error())
		return
	}
	c.JSON(http.StatusOK, out)
}

func (a *admin) reload(c *gin.Context) {
	version, err := a.cfg.Reload(c.Request.Context())
	rec := &audit.Record{RulesVersion: version, Result: audit.ResultDone}
	if err != nil {
		rec.Result, rec.Error = audit.ResultFailed, err.Error()
		a.audit(c, rec)
		c.JSON(http.StatusUnprocessableEntity, gin.H{"error": err.Error(), "code": "reload_failed", "rules_version": version})
		return
	}
	a.audit(c, rec)
	c.JSON(http.StatusOK, gin.H{"reloaded": true, "rules_version": version})
}

func queryLimit(c *gin.Context) (int, bool) {
	s := c.DefaultQuery("limit", "100")
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 10000 {
		jsonError(c, http.StatusBadRequest, "bad_limit", "limit must be a number from 1 to 10000")
		return 0, false
	}
	return n, true
}

func storeError(c *gin.Context, err error) {
	status := http.StatusInternalServerError
	if errors.Is(err, store.ErrUnavailable) {
		status = http.StatusServiceUnavailable
	}
	jsonError(c, status, "store", err.Error())
}
