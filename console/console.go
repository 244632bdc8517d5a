// Package console serves the moderators' console under /console/: pages to
// see decisions, mutes and actions, to act on members and to try rule
// changes, built with net/http, html/template and embedded assets only (no
// front-end build step). The read-only pages work without JavaScript; the
// live view adds a little to refresh itself.
//
// Access: POST /console/login with the admin token and the moderator's name
// sets a signed, expiring, HttpOnly, SameSite=Strict session cookie whose
// key is derived from the admin token, so rotating the token ends every
// session. Forms that change something carry a CSRF token tied to the
// session. Every change is audited with the moderator's name.
package console

import (
	"context"
	"embed"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/store"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Prefix is where the console is mounted.
const Prefix = "/console"

// ClientHeader carries the caller's address as the router worked it out
// (trusting only the configured proxies). The router mounting the console
// sets it on every request, replacing whatever the client sent.
const ClientHeader = "X-Timguard-Client-Ip"

// Store is what the console reads from and changes in the store.
type Store interface {
	RecentDecisions(ctx context.Context, f store.DecisionFilter) ([]store.DecisionRecord, error)
	MutedGroups(ctx context.Context) ([]string, error)
	ListMutes(ctx context.Context, group string) ([]store.Mute, error)
	Pending(ctx context.Context, limit int) ([]store.Action, error)
	Dead(ctx context.Context, limit int) ([]store.DeadAction, error)
	Enqueue(ctx context.Context, actions ...store.Action) error
	store.Moderation
}

// Config configures the console.
type Config struct {
	// Token returns the admin token; "" switches the console off. Called
	// per request, so a reload rotates it (and ends every session).
	Token func() string
	Store Store
	// Rules returns the rules in force.
	Rules func() *rules.Set
	// RulesFile returns the path of rules_file, which "apply" writes.
	RulesFile func() string
	// Reload reloads the configuration and rules and returns the rules
	// version in force afterwards.
	Reload func(ctx context.Context) (string, error)
	// AppAdmin returns tencent.admin, for simulations.
	AppAdmin func() string
	// RuleHits returns every rule's matches counted since the start (from
	// the metrics); nil hides the hits column.
	RuleHits func() map[string]float64
	// Results knows what became of the actions this process carried out;
	// nil leaves the decisions page to the outbox's waiting and dead
	// actions.
	Results *ActionResults
	// Replayer replays recorded callbacks; nil when nothing records them.
	Replayer Replayer
	// RESTEnabled reports whether actions reach the IM server; when false
	// the act and lift forms say that actions are only audited.
	RESTEnabled func() bool
	Audit       func(*audit.Record)
	Logger      *slog.Logger
	Now         func() time.Time
	// SecureCookie marks the session cookie Secure (HTTPS only).
	SecureCookie bool
	// SessionTTL is how long a login lasts (12h when 0).
	SessionTTL time.Duration
}

// Console is the console's http.Handler.
type Console struct {
	cfg   Config
	log   *slog.Logger
	mux   *http.ServeMux
	pages map[string]*template.Template
	hits  *hitWindow
	// applyMu makes "apply" one at a time.
	applyMu sync.Mutex
}

// New builds the console.
func New(cfg Config) (*Console, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.Audit == nil {
		cfg.Audit = func(*audit.Record) {}
	}
	c := &Console{cfg: cfg, log: cfg.Logger.With("component", "console"), hits: newHitWindow(time.Hour)}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	c.pages = pages
	c.routes()
	return c, nil
}

func (c *Console) routes() {
	m := http.NewServeMux()
	static, _ := fs.Sub(assets, "static") // the embedded folder exists
	m.Handle("GET "+Prefix+"/static/", http.StripPrefix(Prefix+"/static/", cacheable(http.FileServerFS(static))))
	m.HandleFunc("GET "+Prefix+"/login", c.loginPage)
	m.HandleFunc("POST "+Prefix+"/login", c.login)
	m.HandleFunc("POST "+Prefix+"/logout", c.authed(c.logout))
	m.HandleFunc("GET "+Prefix+"/{$}", c.authed(func(w http.ResponseWriter, r *http.Request, _ *session) {
		http.Redirect(w, r, Prefix+"/decisions", http.StatusSeeOther)
	}))
	m.HandleFunc("GET "+Prefix+"/decisions", c.authed(c.decisions))
	m.HandleFunc("GET "+Prefix+"/live", c.authed(c.live))
	m.HandleFunc("GET "+Prefix+"/mutes", c.authed(c.mutes))
	m.HandleFunc("POST "+Prefix+"/mutes/lift", c.authed(c.liftMute))
	m.HandleFunc("GET "+Prefix+"/actions", c.authed(c.actions))
	m.HandleFunc("POST "+Prefix+"/actions/retry", c.authed(c.retryDead))
	m.HandleFunc("POST "+Prefix+"/actions/dismiss", c.authed(c.dismissDead))
	m.HandleFunc("GET "+Prefix+"/act", c.authed(c.actPage))
	m.HandleFunc("POST "+Prefix+"/act", c.authed(c.act))
	m.HandleFunc("GET "+Prefix+"/rules", c.authed(c.rulesPage))
	m.HandleFunc("POST "+Prefix+"/rules", c.authed(c.playground))
	m.HandleFunc(Prefix+"/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no such console page", http.StatusNotFound)
	})
	c.mux = m
}

// ServeHTTP serves the console. Every answer forbids framing and caching
// of pages, and sniffing.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'")
	if !strings.HasPrefix(r.URL.Path, Prefix+"/static/") {
		h.Set("Cache-Control", "no-store")
	}
	c.mux.ServeHTTP(w, r)
}

// Run samples the rule hits once a minute until ctx is done, so the hits
// of the last hour are known whether or not anyone looks.
func (c *Console) Run(ctx context.Context) {
	if c.cfg.RuleHits == nil {
		return
	}
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	c.hits.sample(c.cfg.Now(), c.cfg.RuleHits())
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.hits.sample(c.cfg.Now(), c.cfg.RuleHits())
		}
	}
}

func cacheable(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=300")
		h.ServeHTTP(w, r)
	})
}

// client is the caller's address for audit records.
func client(r *http.Request) string {
	if ip := r.Header.Get(ClientHeader); ip != "" {
		return ip
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// audit writes an admin record for a change a moderator made.
func (c *Console) audit(r *http.Request, s *session, rec *audit.Record) {
	rec.Kind = audit.KindAdmin
	rec.Time = c.cfg.Now()
	rec.Actor = s.Name + "@" + client(r)
	c.cfg.Audit(rec)
}
