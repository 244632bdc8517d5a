package tim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ServerTimeout is how long the IM server itself works on a REST call
// before it gives up. The REST API overview asks clients to wait longer
// than that ("The timeout period specified for the RESTful API in the Chat
// backend is three seconds. You need to specify a timeout period that is
// longer than three seconds", FAQ of
// https://intl.cloud.tencent.com/document/product/1047/34620), so that a
// slow call that succeeded is not given up on and sent again.
const ServerTimeout = 3 * time.Second

// Defaults for ClientConfig fields left zero.
const (
	// DefaultTimeout leaves 2 s beyond ServerTimeout for the network.
	DefaultTimeout          = 5 * time.Second
	DefaultSigTTL           = 7 * 24 * time.Hour
	DefaultMaxResponseBytes = 4 << 20
	// MinSigTTL is the shortest SigTTL NewClient accepts.
	MinSigTTL = time.Minute
)

// Limiter paces REST calls. The client calls Wait before every HTTP request,
// retries included; an error from Wait fails the call without sending it.
type Limiter interface {
	Wait(ctx context.Context) error
}

// ClientConfig configures a Client. BaseURL, SDKAppID, Admin and SecretKey
// are required; the other fields have defaults.
type ClientConfig struct {
	// Observe, when set, hears about every HTTP request the client makes:
	// the command, its error (nil on success) and how long it took. It
	// must be cheap and safe for concurrent use (metrics).
	Observe func(command string, err error, took time.Duration)
	// BaseURL is the scheme and domain of the REST API, for example
	// https://adminapisgp.im.qcloud.com. A path prefix is kept. The REST
	// API is served over HTTPS only, and the query of every call carries
	// the UserSig, so http:// is accepted only for a loopback host
	// (localhost, 127.0.0.0/8, ::1): a test server or a local
	// TLS-terminating proxy.
	BaseURL string
	// SDKAppID is the app id from the IM console.
	SDKAppID uint64
	// Admin is the App admin account the calls are made as.
	Admin string
	// SecretKey is the app's key; it signs the UserSig and is never logged.
	SecretKey string
	// Timeout bounds each HTTP request (DefaultTimeout when zero). Keep it
	// above ServerTimeout: a shorter one gives up on calls the server is
	// still carrying out. The wait for the Limiter is bounded by the
	// caller's context only.
	Timeout time.Duration
	// SigTTL is the validity of the generated UserSig (DefaultSigTTL when
	// zero). The UserSig is regenerated once less than a quarter of it
	// remains.
	SigTTL time.Duration
	// HTTPClient sends the requests. When nil the client builds one with
	// keep-alive, bounded connection pools and no redirects.
	HTTPClient *http.Client
	// Limiter, when set, is waited on before every request.
	Limiter Limiter
	// Logger receives debug records of calls. It never sees the secret key
	// or the UserSig. Nil discards.
	Logger *slog.Logger
	// Now is the clock used for UserSig issue times (time.Now when nil).
	// It must be safe for concurrent use.
	Now func() time.Time
	// Rand fills the random query parameter and a zero SendGroupMsg Random
	// (math/rand/v2 when nil). It must be safe for concurrent use.
	Rand func() uint32
	// MaxResponseBytes bounds a response body (DefaultMaxResponseBytes when
	// zero). The IM server itself refuses answers above 1 MB (10018).
	MaxResponseBytes int64
}

// String describes the config with the secret key masked, so that printing
// a config never reveals it.
func (c ClientConfig) String() string {
	return fmt.Sprintf("ClientConfig{BaseURL:%q SDKAppID:%d Admin:%q SecretKey:%s Timeout:%v SigTTL:%v}",
		c.BaseURL, c.SDKAppID, c.Admin, maskSecret(c.SecretKey), c.Timeout, c.SigTTL)
}

// LogValue implements slog.LogValuer with the secret key masked.
func (c ClientConfig) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("base_url", c.BaseURL),
		slog.Uint64("sdk_app_id", c.SDKAppID),
		slog.String("admin", c.Admin),
		slog.String("secret_key", maskSecret(c.SecretKey)),
		slog.Duration("timeout", c.Timeout),
		slog.Duration("sig_ttl", c.SigTTL),
	)
}

func maskSecret(s string) string {
	if s == "" {
		return `""`
	}
	return "***"
}

// Client calls the IM REST API as the App admin. It is safe for concurrent
// use. It does not retry failures except once after a 70001 (UserSig
// expired) answer, which it fixes by regenerating the UserSig; retrying
// everything else is the caller's decision (see Classify).
type Client struct {
	base       string
	sdkAppID   uint64
	admin      string
	secretKey  string
	timeout    time.Duration
	sigTTL     time.Duration
	maxBody    int64
	http       *http.Client
	ownsHTTP   bool
	limiter    Limiter
	log        *slog.Logger
	now        func() time.Time
	rand       func() uint32
	observe    func(command string, err error, took time.Duration)
	appIDParam string

	mu        sync.Mutex
	sig       string
	sigIssued time.Time
}

// NewClient validates cfg, fills its defaults and returns a Client. Errors
// name the field at fault.
func NewClient(cfg ClientConfig) (*Client, error) {
	base, err := parseBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	switch {
	case cfg.SDKAppID == 0:
		return nil, errors.New("tim: ClientConfig.SDKAppID is 0; set the app id from the IM console")
	case strings.TrimSpace(cfg.Admin) == "":
		return nil, errors.New("tim: ClientConfig.Admin is empty; set the App admin account")
	case cfg.SecretKey == "":
		return nil, errors.New("tim: ClientConfig.SecretKey is empty; set the app's secret key")
	case cfg.Timeout < 0:
		return nil, fmt.Errorf("tim: ClientConfig.Timeout %v is negative", cfg.Timeout)
	case cfg.SigTTL < 0 || (cfg.SigTTL > 0 && cfg.SigTTL < MinSigTTL):
		return nil, fmt.Errorf("tim: ClientConfig.SigTTL %v is shorter than %v", cfg.SigTTL, MinSigTTL)
	case cfg.MaxResponseBytes < 0:
		return nil, fmt.Errorf("tim: ClientConfig.MaxResponseBytes %d is negative", cfg.MaxResponseBytes)
	}
	c := &Client{
		base:       base,
		sdkAppID:   cfg.SDKAppID,
		admin:      cfg.Admin,
		secretKey:  cfg.SecretKey,
		timeout:    cfg.Timeout,
		sigTTL:     cfg.SigTTL,
		maxBody:    cfg.MaxResponseBytes,
		http:       cfg.HTTPClient,
		limiter:    cfg.Limiter,
		log:        cfg.Logger,
		now:        cfg.Now,
		rand:       cfg.Rand,
		observe:    cfg.Observe,
		appIDParam: strconv.FormatUint(cfg.SDKAppID, 10),
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	if c.sigTTL == 0 {
		c.sigTTL = DefaultSigTTL
	}
	if c.maxBody == 0 {
		c.maxBody = DefaultMaxResponseBytes
	}
	if c.http == nil {
		c.http = newHTTPClient()
		c.ownsHTTP = true
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.log = c.log.With("component", "tim.client")
	if c.now == nil {
		c.now = time.Now
	}
	if c.rand == nil {
		c.rand = rand.Uint32
	}
	return c, nil
}

func parseBaseURL(raw string) (string, error) {
	if raw == "" {
		return "", errors.New("tim: ClientConfig.BaseURL is empty; set the REST API domain, e.g. https://adminapisgp.im.qcloud.com")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("tim: ClientConfig.BaseURL %q: %w", raw, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Errorf("tim: ClientConfig.BaseURL %q is not an absolute https URL", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("tim: ClientConfig.BaseURL %q must not carry a query, fragment or user info", raw)
	}
	if u.Scheme == "http" && !IsLoopbackHost(u.Hostname()) {
		return "", fmt.Errorf("tim: ClientConfig.BaseURL %q uses http: the REST API is served over HTTPS only and every call carries the UserSig; http is accepted for a loopback host only", raw)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// IsLoopbackHost reports whether host (without port) is localhost or a
// loopback IP address, the only hosts a plain-http REST base may name.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// newHTTPClient returns a client with keep-alive and pool limits sized for
// a few hundred calls per second to one host. Redirects are not followed:
// they would send the UserSig to another address.
func newHTTPClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy: http.ProxyFromEnvironment,
			DialContext: (&net.Dialer{
				Timeout:   5 * time.Second,
				KeepAlive: 30 * time.Second,
			}).DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          100,
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   5 * time.Second,
			ExpectContinueTimeout: time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Close releases idle connections of the HTTP client the Client built
// itself. A client passed in ClientConfig.HTTPClient is left alone.
func (c *Client) Close() {
	if c.ownsHTTP {
		c.http.CloseIdleConnections()
	}
}

// userSig returns the cached UserSig, generating a new one when there is
// none or less than a quarter of its validity remains.
func (c *Client) userSig() (string, error) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sig != "" && now.Before(c.sigIssued.Add(c.sigTTL-c.sigTTL/4)) {
		return c.sig, nil
	}
	sig, err := GenUserSig(c.sdkAppID, c.secretKey, c.admin, c.sigTTL, now)
	if err != nil {
		return "", fmt.Errorf("tim: generate UserSig: %w", err)
	}
	c.sig, c.sigIssued = sig, now
	c.log.Debug("generated UserSig", "identifier", c.admin, "expires_at", now.Add(c.sigTTL))
	return sig, nil
}

// dropUserSig forgets sig if it is still the cached one, so that the next
// call generates a new one. Comparing first keeps concurrent calls that all
// saw 70001 from regenerating more than once.
func (c *Client) dropUserSig(sig string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sig == sig {
		c.sig = ""
	}
}

// Call sends req as the JSON body of service/command and decodes the answer
// into resp (which may be nil). A nil req sends {}. It is what the typed
// methods use; it is exported for commands they do not cover.
func (c *Client) Call(ctx context.Context, service, command string, req, resp any) error {
	body, err := encodeBody(req)
	if err != nil {
		return fmt.Errorf("tim %s: encode request: %w", command, err)
	}
	for attempt := 1; ; attempt++ {
		sig, err := c.userSig()
		if err != nil {
			return err
		}
		start := time.Now()
		err = c.send(ctx, service, command, sig, body, resp, attempt)
		if c.observe != nil {
			c.observe(command, err, time.Since(start))
		}
		if attempt == 1 && Code(err) == CodeUserSigExpired {
			c.log.Info("IM server says the UserSig expired; regenerating it and retrying once", "command", command)
			c.dropUserSig(sig)
			continue
		}
		return err
	}
}

func encodeBody(req any) ([]byte, error) {
	if req == nil {
		return []byte("{}"), nil
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	if string(b) == "null" {
		return []byte("{}"), nil
	}
	if len(b) == 0 || b[0] != '{' {
		return nil, fmt.Errorf("request must encode as a JSON object, got %T", req)
	}
	return b, nil
}

func (c *Client) url(service, command, sig string) string {
	var b strings.Builder
	b.Grow(len(c.base) + len(service) + len(command) + len(sig) + 128)
	b.WriteString(c.base)
	b.WriteString("/v4/")
	b.WriteString(service)
	b.WriteString("/")
	b.WriteString(command)
	b.WriteString("?sdkappid=")
	b.WriteString(c.appIDParam)
	b.WriteString("&identifier=")
	b.WriteString(url.QueryEscape(c.admin))
	b.WriteString("&usersig=")
	// The UserSig alphabet (letters, digits, *, - and _) needs no escaping;
	// it is sent as Tencent's own SDKs send it.
	b.WriteString(sig)
	b.WriteString("&random=")
	b.WriteString(strconv.FormatUint(uint64(c.rand()), 10))
	b.WriteString("&contenttype=json")
	return b.String()
}

// send makes one HTTP request.
func (c *Client) send(ctx context.Context, service, command, sig string, body []byte, resp any, attempt int) error {
	// wrote is set once the whole request has been written: from then on a
	// failure leaves it open whether the server carried the call out.
	var wrote atomic.Bool
	fail := func(op Op, err error) error {
		e := &TransportError{Service: service, Command: command, Op: op, Err: err, CallerDone: ctx.Err() != nil,
			Sent: op != OpWait && wrote.Load()}
		c.log.Debug("REST call failed", "command", command, "attempt", attempt, "op", string(op), "sent", e.Sent, "err", err)
		return e
	}
	if c.limiter != nil {
		if err := c.limiter.Wait(ctx); err != nil {
			return fail(OpWait, err)
		}
	}
	callCtx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	callCtx = httptrace.WithClientTrace(callCtx, &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				wrote.Store(true)
			}
		},
	})

	start := time.Now()
	hreq, err := http.NewRequestWithContext(callCtx, http.MethodPost, c.url(service, command, sig), bytes.NewReader(body))
	if err != nil {
		return fail(OpSend, stripURL(err))
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/json")
	hresp, err := c.http.Do(hreq)
	if err != nil {
		return fail(OpSend, stripURL(err))
	}
	defer func() {
		// Drain a little so that the connection can be reused, then close.
		_, _ = io.Copy(io.Discard, io.LimitReader(hresp.Body, 64<<10))
		_ = hresp.Body.Close()
	}()
	data, err := io.ReadAll(io.LimitReader(hresp.Body, c.maxBody+1))
	if err != nil {
		return fail(OpRead, err)
	}
	if int64(len(data)) > c.maxBody {
		return fail(OpRead, fmt.Errorf("%w: more than %d bytes", ErrResponseTooLarge, c.maxBody))
	}

	var env struct {
		ActionStatus string `json:"ActionStatus"`
		ErrorCode    int    `json:"ErrorCode"`
		ErrorInfo    string `json:"ErrorInfo"`
	}
	envErr := json.Unmarshal(data, &env)
	var apiErr *APIError
	switch {
	case hresp.StatusCode != http.StatusOK:
		apiErr = &APIError{Service: service, Command: command, HTTPStatus: hresp.StatusCode, Info: http.StatusText(hresp.StatusCode)}
		if envErr == nil && env.ErrorCode != 0 {
			apiErr.Code, apiErr.Info = env.ErrorCode, env.ErrorInfo
		}
	case envErr != nil:
		return fail(OpDecode, envErr)
	case env.ErrorCode != 0 || env.ActionStatus == "FAIL":
		apiErr = &APIError{Service: service, Command: command, HTTPStatus: hresp.StatusCode, Code: env.ErrorCode, Info: env.ErrorInfo}
		// Some commands (get_group_info) answer per-item results beside a
		// top-level error; the caller may look at them.
		if resp != nil {
			_ = json.Unmarshal(data, resp)
		}
	}
	elapsed := time.Since(start)
	if apiErr != nil {
		// ErrorInfo is the server's text; make sure it cannot carry the
		// credential into logs and error messages.
		if sig != "" {
			apiErr.Info = strings.ReplaceAll(apiErr.Info, sig, "[redacted]")
		}
		c.log.Debug("REST call answered with an error", "command", command, "attempt", attempt,
			"code", apiErr.Code, "http_status", apiErr.HTTPStatus, "info", apiErr.Info, "elapsed", elapsed)
		return apiErr
	}
	if resp != nil {
		if err := json.Unmarshal(data, resp); err != nil {
			return fail(OpDecode, err)
		}
	}
	c.log.Debug("REST call done", "command", command, "attempt", attempt, "elapsed", elapsed)
	return nil
}

// stripURL drops the *url.Error layer http.Client adds: its message quotes
// the request URL, whose query carries the UserSig.
func stripURL(err error) error {
	var uErr *url.Error
	if errors.As(err, &uErr) {
		return uErr.Err
	}
	return err
}
