// Package config reads timguard's YAML configuration: strict decoding (an
// unknown key is an error naming it), ${ENV} expansion for secrets, defaults,
// then validation whose messages name the key and the value refused.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/timguard/timguard/internal/yamlx"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/tim"
)

// Config is the whole configuration file. config.example.yaml documents every
// key.
type Config struct {
	Listen    string   `yaml:"listen"`
	Callback  Callback `yaml:"callback"`
	Tencent   Tencent  `yaml:"tencent"`
	DryRun    bool     `yaml:"dry_run"`
	Store     Store    `yaml:"store"`
	RulesFile string   `yaml:"rules_file"`
	Admin     Admin    `yaml:"admin"`
	Audit     Audit    `yaml:"audit"`
	Log       Log      `yaml:"log"`
	Executor  Executor `yaml:"executor"`
	// TrustedProxies lists the load balancers (IPs or CIDRs) whose
	// X-Forwarded-For header names the client in logs and admin audit
	// records. Empty: the connection's peer address is used.
	TrustedProxies []string `yaml:"trusted_proxies"`
	Schedule       Schedule `yaml:"schedule"`
	HTTP           HTTP     `yaml:"http"`
	// StateDir is the directory of the process's own durable state: the
	// decisions the store did not take yet (spool.db), kept across a crash
	// or a stop while Redis is down. Empty keeps them in memory only.
	// Relative to the configuration file's directory; one process per
	// directory.
	StateDir string `yaml:"state_dir"`
	// Record keeps the callbacks evaluated, for `bot replay` (off unless
	// enabled).
	Record Record `yaml:"record"`

	// File is the path the configuration was read from ("" when built in
	// code). Relative paths in the file are resolved against its directory.
	File string `yaml:"-"`
}

// Callback configures the endpoint the IM server calls.
type Callback struct {
	Path string `yaml:"path"`
	// Token is the callback authentication token set in the IM console.
	// Empty disables the signature check (a warning is logged at start).
	Token Secret `yaml:"token"`
	// PreviousToken is also accepted while a token is being rotated.
	PreviousToken Secret   `yaml:"previous_token"`
	MaxClockSkew  Duration `yaml:"max_clock_skew"`
	// MaxBodyBytes refuses larger callback bodies with 413.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// Deadline bounds the work done for one callback before it is answered;
	// the IM server waits 2 s.
	Deadline Duration `yaml:"deadline"`
}

// Tencent configures the IM REST API.
type Tencent struct {
	SDKAppID  uint64 `yaml:"sdk_app_id"`
	Admin     string `yaml:"admin"`
	SecretKey Secret `yaml:"secret_key"`
	// APIBase is the REST domain of the app's region: https, or http for a
	// loopback host only (every call carries the UserSig in its query).
	APIBase string `yaml:"api_base"`
	// RateLimit is REST calls per second, shared by all replicas.
	RateLimit int `yaml:"rate_limit"`
	// Timeout bounds each REST call. The IM server works on a call for up
	// to 3 s and asks clients to wait longer (ServerTimeoutWarning).
	Timeout Duration `yaml:"timeout"`
}

// ServerTimeoutWarning says why a tencent.timeout is too short, or is ""
// when it is above the 3 s the IM server allows itself for a call: a
// client that gives up sooner sends again calls that the server carried out
// late (https://intl.cloud.tencent.com/document/product/1047/34620, FAQ).
func (t Tencent) ServerTimeoutWarning() string {
	if t.Timeout.D() > tim.ServerTimeout {
		return ""
	}
	return fmt.Sprintf("tencent.timeout %s is not above the IM server's own %s: a call the server carries out slowly is given up on and may be made again (a warning sent twice)",
		t.Timeout, tim.ServerTimeout)
}

// RESTEnabled reports whether REST calls can be made (a secret key is set).
func (t Tencent) RESTEnabled() bool { return t.SecretKey != "" }

// Store configures shared state.
type Store struct {
	// RedisURL selects Redis (redis://, rediss://, or several addresses for
	// a cluster); empty selects the embedded single-process store.
	RedisURL Secret `yaml:"redis_url"`
	// KeyPrefix namespaces every Redis key.
	KeyPrefix string `yaml:"key_prefix"`
	// Timeout bounds each store call.
	Timeout Duration `yaml:"timeout"`
	// FailMode says, per "before" event kind (join_request, invite,
	// message), what to decide when the store cannot be read: "open"
	// (evaluate with empty state: counters and strikes read 0) or
	// "closed" (refuse). Kinds not listed fail open.
	FailMode map[string]rules.FailMode `yaml:"fail_mode"`
	// Batch says how concurrent callbacks share Redis round trips.
	Batch StoreBatch `yaml:"batch"`
}

// StoreBatch configures how the store round trips of concurrent callbacks
// share one Redis pipeline.
type StoreBatch struct {
	// MaxSize is the most callbacks' round trips one pipeline carries; 1
	// gives each its own pipeline (no batching).
	MaxSize int `yaml:"max_size"`
	// MaxWait is how long a pipeline that is not full waits for more
	// (0: only those already waiting join; the CPU spins while it waits).
	MaxWait Duration `yaml:"max_wait"`
}

// Fail modes (rules.FailMode).
const (
	FailOpen   = rules.FailOpen
	FailClosed = rules.FailClosed
)

// Admin configures the admin API.
type Admin struct {
	// Token is the bearer token of /v1/; empty switches the admin API off.
	Token Secret `yaml:"token"`
	// SecureCookie marks the console's session cookie Secure: browsers
	// then send it over HTTPS only. Set it when a reverse proxy terminates
	// TLS in front of the bot.
	SecureCookie bool `yaml:"secure_cookie"`
	// SessionTTL is how long a console login lasts.
	SessionTTL Duration `yaml:"session_ttl"`
}

// DefaultSessionTTL is admin.session_ttl.
const DefaultSessionTTL = 12 * time.Hour

// Audit configures the audit log.
type Audit struct {
	// File is where audit records go; empty means standard output.
	File string `yaml:"file"`
}

// Record configures the recorder: it keeps each evaluated callback with
// the state its rules read (counters, strikes, roles, modes), in one JSON
// Lines file per hour, so `bot replay` evaluates rule changes against
// traffic as it was. Off by default: the files hold what members wrote (or
// its hash).
type Record struct {
	Enabled bool `yaml:"enabled"`
	// Dir is where the files go; empty means "recordings" in state_dir.
	// Relative to the configuration file's directory.
	Dir string `yaml:"dir"`
	// Keep is how long a file is kept after its hour ended.
	Keep Duration `yaml:"keep"`
	// Events are the event kinds recorded (as in a rule's on:); empty
	// records every kind.
	Events []string `yaml:"events"`
	// Text is "hash" (each text members wrote is replaced by its hash) or
	// "keep" (texts are kept as written, so replays of word rules match).
	Text string `yaml:"text"`
	// HashKey makes text hashes HMACs with this key, which nobody without
	// it can test guessed texts against. Only with text: hash.
	HashKey Secret `yaml:"hash_key"`
	// Queue bounds the callbacks waiting to be written; more are dropped
	// and counted (timguard_record_dropped_total), never waited for.
	Queue int `yaml:"queue"`
}

// Values of record.text.
const (
	RecordTextKeep = "keep"
	RecordTextHash = "hash"
)

// recordKinds are the event kinds record.events may name.
var recordKinds = []string{"join_request", "invite", "message", "message_sent", "member_joined", "member_left", "group_destroyed"}

func (r *Record) applyDefaults() {
	if r.Keep == 0 {
		r.Keep = Duration(DefaultRecordKeep)
	}
	if r.Text == "" {
		r.Text = RecordTextHash
	}
	if r.Queue == 0 {
		r.Queue = DefaultRecordQueue
	}
}

func (r Record) validate(stateDir string) []yamlx.Problem {
	var ps []yamlx.Problem
	bad := func(key string, format string, args ...any) {
		ps = append(ps, yamlx.Problem{Path: "record." + key, Reason: fmt.Sprintf(format, args...)})
	}
	if r.Enabled && r.Dir == "" && stateDir == "" {
		bad("dir", "is required when record.enabled is true and state_dir is empty")
	}
	if d := r.Keep.D(); d < time.Hour || d > 365*24*time.Hour {
		bad("keep", "%s must be between 1h and 8760h (files hold one hour each)", r.Keep)
	}
	seen := map[string]bool{}
	for i, k := range r.Events {
		key := fmt.Sprintf("events[%d]", i)
		switch {
		case !slices.Contains(recordKinds, k):
			bad(key, "%q is not an event kind (%s)", k, strings.Join(recordKinds, ", "))
		case seen[k]:
			bad(key, "%q is listed twice", k)
		}
		seen[k] = true
	}
	switch r.Text {
	case RecordTextKeep:
		if r.HashKey != "" {
			bad("hash_key", "is set but record.text is keep; texts are hashed only with text: hash")
		}
	case RecordTextHash:
	default:
		bad("text", "%q must be %s or %s", r.Text, RecordTextHash, RecordTextKeep)
	}
	if r.Queue < 16 || r.Queue > 1_000_000 {
		bad("queue", "%d must be between 16 and 1000000", r.Queue)
	}
	return ps
}

// Executor tunes the action executor, which carries out the decided actions
// through the REST API.
type Executor struct {
	// Lease is how long a claimed action is held before another worker (or
	// replica) may take it over; at least 3 times tencent.timeout.
	Lease Duration `yaml:"lease"`
	// MaxAttempts is how many tries an action gets before it is
	// dead-lettered.
	MaxAttempts int `yaml:"max_attempts"`
	// RetryMin and RetryMax bound the exponential backoff between tries.
	RetryMin Duration `yaml:"retry_min"`
	RetryMax Duration `yaml:"retry_max"`
	// Workers is how many groups are worked on at once.
	Workers int `yaml:"workers"`
	// ShutdownGrace is how long calls in flight may finish at shutdown.
	ShutdownGrace Duration `yaml:"shutdown_grace"`
	// LiveGroupWarn is what a warning to one member of an AVChatRoom (live)
	// group becomes, where system notices go to all members only:
	// "mention" (a group message from the App admin that @-mentions the
	// member; everyone sees it) or "skip" (nothing is sent; the action is
	// audited as skipped with the reason).
	LiveGroupWarn string `yaml:"live_group_warn"`
}

// Values of executor.live_group_warn.
const (
	LiveGroupWarnMention = "mention"
	LiveGroupWarnSkip    = "skip"
)

// Schedule tunes the scheduler: the comparison of recorded mutes with the
// IM server's, and the firings run late after every replica was down.
type Schedule struct {
	// ReconcileEvery is how often the mutes timguard recorded are compared
	// with the IM server's (one replica does it per period).
	ReconcileEvery Duration `yaml:"reconcile_every"`
	// CatchUp is how far back a schedule's most recent firing, missed while
	// every replica was down, is still run when a replica starts.
	CatchUp Duration `yaml:"catch_up"`
}

// HTTP bounds what clients may hold of the HTTP server: connections, and
// how long a request may take to arrive and an idle connection may stay.
type HTTP struct {
	// MaxConnections is how many connections may be open at once; more
	// wait until one closes.
	MaxConnections int `yaml:"max_connections"`
	// ReadTimeout bounds reading one request, headers and body; a
	// connection that sends nothing is closed after it too.
	ReadTimeout Duration `yaml:"read_timeout"`
	// IdleTimeout closes a keep-alive connection that has been idle this
	// long.
	IdleTimeout Duration `yaml:"idle_timeout"`
}

func (h *HTTP) applyDefaults() {
	if h.MaxConnections == 0 {
		h.MaxConnections = DefaultMaxConnections
	}
	if h.ReadTimeout == 0 {
		h.ReadTimeout = Duration(DefaultReadTimeout)
	}
	if h.IdleTimeout == 0 {
		h.IdleTimeout = Duration(DefaultIdleTimeout)
	}
}

func (h HTTP) validate() []yamlx.Problem {
	var ps []yamlx.Problem
	bad := func(key string, format string, args ...any) {
		ps = append(ps, yamlx.Problem{Path: "http." + key, Reason: fmt.Sprintf(format, args...)})
	}
	if h.MaxConnections < 16 || h.MaxConnections > 1_000_000 {
		bad("max_connections", "%d must be between 16 and 1000000", h.MaxConnections)
	}
	if d := h.ReadTimeout.D(); d < 100*time.Millisecond || d > time.Minute {
		bad("read_timeout", "%s must be between 100ms and 1m", h.ReadTimeout)
	}
	if d := h.IdleTimeout.D(); d < time.Second || d > 10*time.Minute {
		bad("idle_timeout", "%s must be between 1s and 10m", h.IdleTimeout)
	}
	return ps
}

// Log configures the operational log (standard error).
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // json or text
}

// Defaults used for keys the file leaves out.
const (
	DefaultListen       = ":8080"
	DefaultCallbackPath = "/callback"
	DefaultMaxClockSkew = 60 * time.Second
	DefaultMaxBodyBytes = 1 << 20
	DefaultDeadline     = 1500 * time.Millisecond
	DefaultAPIBase      = "https://adminapisgp.im.qcloud.com"
	DefaultRateLimit    = 200
	DefaultRESTTimeout  = tim.DefaultTimeout
	DefaultKeyPrefix    = "timguard:"
	DefaultStoreTimeout = 250 * time.Millisecond
	// DefaultBatchMaxSize is store.batch.max_size.
	DefaultBatchMaxSize = 32
	DefaultRulesFile    = "rules.yaml"
	// DefaultLease is executor.lease unless 4 times tencent.timeout is longer.
	DefaultLease         = 30 * time.Second
	DefaultMaxAttempts   = 8
	DefaultRetryFloor    = time.Second
	DefaultRetryCeiling  = 5 * time.Minute
	DefaultWorkers       = 8
	DefaultShutdownGrace = 10 * time.Second
	// DefaultReconcileEvery is schedule.reconcile_every.
	DefaultReconcileEvery = 5 * time.Minute
	// DefaultCatchUp is schedule.catch_up.
	DefaultCatchUp = time.Hour
	// DefaultMaxConnections, DefaultReadTimeout and DefaultIdleTimeout are
	// the http: keys.
	DefaultMaxConnections = 1024
	DefaultReadTimeout    = 5 * time.Second
	DefaultIdleTimeout    = 30 * time.Second
	// DefaultRecordKeep and DefaultRecordQueue are record.keep and
	// record.queue.
	DefaultRecordKeep  = 72 * time.Hour
	DefaultRecordQueue = 4096
)

// reservedPaths are served by the bot itself and cannot be the callback path.
var reservedPaths = []string{"/healthz", "/readyz", "/metrics", "/v1", "/console"}

// Load reads, expands, decodes, defaults and validates the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data, os.LookupEnv)
}

// Parse is Load on bytes already read; getenv resolves ${NAME}.
func Parse(path string, data []byte, getenv func(string) (string, bool)) (*Config, error) {
	var c Config
	expanded := map[string]string{}
	opts := yamlx.Options{Getenv: getenv, OnExpand: func(value, ref string) { expanded[value] = ref }}
	if err := yamlx.Decode(path, data, &c, opts); err != nil {
		return nil, err
	}
	c.File = path
	c.applyDefaults()
	if problems := c.validate(); len(problems) > 0 {
		for i := range problems {
			problems[i].Reason = yamlx.ScrubExpanded(problems[i].Reason, expanded)
		}
		return nil, &yamlx.Error{File: path, Problems: problems}
	}
	return &c, nil
}

func (c *Config) applyDefaults() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Callback.Path == "" {
		c.Callback.Path = DefaultCallbackPath
	}
	if c.Callback.MaxClockSkew == 0 {
		c.Callback.MaxClockSkew = Duration(DefaultMaxClockSkew)
	}
	if c.Callback.MaxBodyBytes == 0 {
		c.Callback.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.Callback.Deadline == 0 {
		c.Callback.Deadline = Duration(DefaultDeadline)
	}
	if c.Tencent.APIBase == "" {
		c.Tencent.APIBase = DefaultAPIBase
	}
	if c.Tencent.RateLimit == 0 {
		c.Tencent.RateLimit = DefaultRateLimit
	}
	if c.Tencent.Timeout == 0 {
		c.Tencent.Timeout = Duration(DefaultRESTTimeout)
	}
	if c.Store.KeyPrefix == "" {
		c.Store.KeyPrefix = DefaultKeyPrefix
	}
	if c.Store.Timeout == 0 {
		c.Store.Timeout = Duration(DefaultStoreTimeout)
	}
	if c.Store.Batch.MaxSize == 0 {
		c.Store.Batch.MaxSize = DefaultBatchMaxSize
	}
	if c.RulesFile == "" {
		c.RulesFile = DefaultRulesFile
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "json"
	}
	if c.Executor.Lease == 0 {
		c.Executor.Lease = Duration(max(DefaultLease, 4*c.Tencent.Timeout.D()))
	}
	if c.Executor.MaxAttempts == 0 {
		c.Executor.MaxAttempts = DefaultMaxAttempts
	}
	if c.Executor.RetryMin == 0 {
		c.Executor.RetryMin = Duration(DefaultRetryFloor)
	}
	if c.Executor.RetryMax == 0 {
		c.Executor.RetryMax = Duration(max(DefaultRetryCeiling, c.Executor.RetryMin.D()))
	}
	if c.Executor.Workers == 0 {
		c.Executor.Workers = DefaultWorkers
	}
	if c.Admin.SessionTTL == 0 {
		c.Admin.SessionTTL = Duration(DefaultSessionTTL)
	}
	if c.Executor.ShutdownGrace == 0 {
		c.Executor.ShutdownGrace = Duration(DefaultShutdownGrace)
	}
	if c.Executor.LiveGroupWarn == "" {
		c.Executor.LiveGroupWarn = LiveGroupWarnMention
	}
	if c.Schedule.ReconcileEvery == 0 {
		c.Schedule.ReconcileEvery = Duration(DefaultReconcileEvery)
	}
	if c.Schedule.CatchUp == 0 {
		c.Schedule.CatchUp = Duration(DefaultCatchUp)
	}
	c.HTTP.applyDefaults()
	c.Record.applyDefaults()
}

func (c *Config) validate() []yamlx.Problem {
	var ps []yamlx.Problem
	bad := func(key string, format string, args ...any) {
		ps = append(ps, yamlx.Problem{Path: key, Reason: fmt.Sprintf(format, args...)})
	}
	if _, _, err := splitHostPort(c.Listen); err != nil {
		bad("listen", "%q is not host:port (%v)", c.Listen, err)
	}
	for i, p := range c.TrustedProxies {
		if _, _, err := net.ParseCIDR(p); err != nil && net.ParseIP(p) == nil {
			bad(fmt.Sprintf("trusted_proxies[%d]", i), "%q is not an IP address or CIDR such as 10.0.0.0/8", p)
		}
	}
	if !strings.HasPrefix(c.Callback.Path, "/") {
		bad("callback.path", "%q must start with /", c.Callback.Path)
	}
	for _, r := range reservedPaths {
		if c.Callback.Path == r || strings.HasPrefix(c.Callback.Path, r+"/") {
			bad("callback.path", "%q is used by the bot itself (%s)", c.Callback.Path, r)
		}
	}
	if c.Callback.PreviousToken != "" && c.Callback.Token == "" {
		bad("callback.previous_token", "is set but callback.token is empty; set the new token first")
	}
	if c.Callback.MaxClockSkew < 0 {
		bad("callback.max_clock_skew", "%s must not be negative", c.Callback.MaxClockSkew)
	}
	if c.Callback.MaxBodyBytes < 1024 {
		bad("callback.max_body_bytes", "%d is too small; callbacks need at least 1024 bytes", c.Callback.MaxBodyBytes)
	}
	if d := time.Duration(c.Callback.Deadline); d <= 0 || d >= 2*time.Second {
		bad("callback.deadline", "%s must be above 0 and below the IM server's 2s", c.Callback.Deadline)
	}
	if d := c.Admin.SessionTTL.D(); d < time.Minute || d > 30*24*time.Hour {
		bad("admin.session_ttl", "%s must be from 1m to 720h", c.Admin.SessionTTL)
	}
	if c.Tencent.SDKAppID == 0 {
		bad("tencent.sdk_app_id", "is required (the SDKAppID of the IM app, e.g. 1400000000)")
	}
	if c.Tencent.SecretKey != "" && c.Tencent.Admin == "" {
		bad("tencent.admin", "is required when tencent.secret_key is set (the App admin account used for REST calls)")
	}
	if u, err := url.Parse(c.Tencent.APIBase); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		bad("tencent.api_base", "%q is not an http(s) URL such as %s", c.Tencent.APIBase, DefaultAPIBase)
	} else if u.Scheme == "http" && !tim.IsLoopbackHost(u.Hostname()) {
		bad("tencent.api_base", "%q uses http: the REST API is served over HTTPS only and every call carries the UserSig; use https (http is accepted for a loopback address only, such as a local proxy)", c.Tencent.APIBase)
	}
	if c.Tencent.RateLimit < 1 || c.Tencent.RateLimit > 100000 {
		bad("tencent.rate_limit", "%d must be between 1 and 100000 calls per second", c.Tencent.RateLimit)
	}
	if c.Tencent.Timeout <= 0 {
		bad("tencent.timeout", "%s must be positive", c.Tencent.Timeout)
	}
	if c.Store.RedisURL != "" {
		if err := checkRedisURL(string(c.Store.RedisURL)); err != nil {
			bad("store.redis_url", "%s", err)
		}
	}
	if c.Store.Timeout <= 0 {
		bad("store.timeout", "%s must be positive", c.Store.Timeout)
	}
	if c.Store.Batch.MaxSize < 1 || c.Store.Batch.MaxSize > 1024 {
		bad("store.batch.max_size", "%d must be between 1 (no batching) and 1024", c.Store.Batch.MaxSize)
	}
	if w := c.Store.Batch.MaxWait; w < 0 || c.Store.Timeout > 0 && w.D() > c.Store.Timeout.D()/10 {
		bad("store.batch.max_wait", "%s must be between 0 and a tenth of store.timeout (%s)", w, c.Store.Timeout)
	}
	for name, mode := range c.Store.FailMode {
		switch kind := rules.Kind(name); {
		case !kind.Valid():
			bad("store.fail_mode."+name, "%q is not an event kind that can be refused (%s)", name, refusableKinds())
		case !kind.CanFailClosed():
			bad("store.fail_mode."+name, "the IM server ignores the answer to %s events, so they cannot fail closed; leave them out", name)
		case !mode.Valid():
			bad("store.fail_mode."+name, "%q must be %s or %s", mode, rules.FailOpen, rules.FailClosed)
		}
	}
	if strings.ContainsAny(c.Store.KeyPrefix, "{}") {
		bad("store.key_prefix", "%q must not contain braces (they select Redis Cluster hash slots)", c.Store.KeyPrefix)
	}
	ps = append(ps, c.Executor.validate(c.Tencent.Timeout)...)
	ps = append(ps, c.Schedule.validate()...)
	ps = append(ps, c.HTTP.validate()...)
	ps = append(ps, c.Record.validate(c.StateDir)...)
	if _, err := ParseLevel(c.Log.Level); err != nil {
		bad("log.level", "%s", err)
	}
	if c.Log.Format != "json" && c.Log.Format != "text" {
		bad("log.format", "%q must be json or text", c.Log.Format)
	}
	return ps
}

func (e Executor) validate(restTimeout Duration) []yamlx.Problem {
	var ps []yamlx.Problem
	bad := func(key string, format string, args ...any) {
		ps = append(ps, yamlx.Problem{Path: "executor." + key, Reason: fmt.Sprintf(format, args...)})
	}
	if restTimeout > 0 && e.Lease < 3*restTimeout {
		bad("lease", "%s must be at least 3 times tencent.timeout (%s): a call and its lookups must fit in it", e.Lease, restTimeout)
	}
	if e.MaxAttempts < 1 || e.MaxAttempts > 1000 {
		bad("max_attempts", "%d must be between 1 and 1000", e.MaxAttempts)
	}
	if e.RetryMin <= 0 {
		bad("retry_min", "%s must be positive", e.RetryMin)
	}
	if e.RetryMax < e.RetryMin {
		bad("retry_max", "%s must not be below executor.retry_min (%s)", e.RetryMax, e.RetryMin)
	}
	if e.Workers < 1 || e.Workers > 256 {
		bad("workers", "%d must be between 1 and 256", e.Workers)
	}
	if e.ShutdownGrace <= 0 || e.ShutdownGrace.D() > 10*time.Minute {
		bad("shutdown_grace", "%s must be above 0 and at most 10m", e.ShutdownGrace)
	}
	if e.LiveGroupWarn != LiveGroupWarnMention && e.LiveGroupWarn != LiveGroupWarnSkip {
		bad("live_group_warn", "%q must be %s or %s", e.LiveGroupWarn, LiveGroupWarnMention, LiveGroupWarnSkip)
	}
	return ps
}

func (s Schedule) validate() []yamlx.Problem {
	var ps []yamlx.Problem
	bad := func(key string, format string, args ...any) {
		ps = append(ps, yamlx.Problem{Path: "schedule." + key, Reason: fmt.Sprintf(format, args...)})
	}
	if d := s.ReconcileEvery.D(); d < 30*time.Second || d > 24*time.Hour {
		bad("reconcile_every", "%s must be between 30s and 24h", s.ReconcileEvery)
	}
	if d := s.CatchUp.D(); d < time.Minute || d > 24*time.Hour {
		bad("catch_up", "%s must be between 1m and 24h", s.CatchUp)
	}
	return ps
}

func splitHostPort(addr string) (string, string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", "", err
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return "", "", fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	return host, port, nil
}

// checkRedisURL accepts the URL schemes store/redis reads; the message
// never repeats the URL, which may hold a password.
func checkRedisURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("is not a URL (the value is not shown: it may hold a password)")
	}
	switch u.Scheme {
	case "redis", "rediss", "redis-sentinel", "redis-cluster", "rediss-sentinel", "rediss-cluster":
		if u.Host == "" {
			return errors.New("has no host")
		}
	case "unix":
		if u.Path == "" {
			return errors.New("has no socket path")
		}
	default:
		// The scheme is not repeated: in a mistyped URL it may be part of
		// the password.
		return errors.New("scheme is not redis, rediss, redis-sentinel, redis-cluster (or their TLS forms) or unix")
	}
	// The store speaks RESP2 unless protocol= says 3 (store/redis.Protocol).
	switch vs := u.Query()["protocol"]; {
	case len(vs) > 1:
		return errors.New("protocol= is given more than once")
	case len(vs) == 1 && vs[0] != "2" && vs[0] != "3":
		return fmt.Errorf("protocol=%q: want 2 or 3 (or none: 2)", vs[0])
	}
	return nil
}

// ParseLevel reads a log level name.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("%q is not debug, info, warn or error", s)
	}
	return l, nil
}

// Resolve returns path relative to the configuration file's directory, or
// path itself when it is absolute or the configuration has no file.
func (c *Config) Resolve(path string) string {
	if path == "" || filepath.IsAbs(path) || c.File == "" {
		return path
	}
	return filepath.Join(filepath.Dir(c.File), path)
}

// RulesPath is rules_file resolved against the configuration's directory.
func (c *Config) RulesPath() string { return c.Resolve(c.RulesFile) }

// AuditPath is audit.file resolved, or "" for standard output.
func (c *Config) AuditPath() string { return c.Resolve(c.Audit.File) }

// StatePath is state_dir resolved, or "" when there is none.
func (c *Config) StatePath() string { return c.Resolve(c.StateDir) }

// RecordPath is where the recorder writes: record.dir resolved, or
// "recordings" in state_dir.
func (c *Config) RecordPath() string {
	if c.Record.Dir != "" {
		return c.Resolve(c.Record.Dir)
	}
	if dir := c.StatePath(); dir != "" {
		return filepath.Join(dir, "recordings")
	}
	return ""
}

// CallbackTokens returns the tokens a callback signature may be made with.
func (c *Config) CallbackTokens() []string {
	var out []string
	for _, t := range []Secret{c.Callback.Token, c.Callback.PreviousToken} {
		if t != "" {
			out = append(out, string(t))
		}
	}
	return out
}

// Duration is a time.Duration written as "10s", "1m30s".
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return yamlx.Errorf(n, "a duration such as 10s or 1m is required")
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return yamlx.Errorf(n, "%q is not a duration such as 10s or 1m", n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

func (d Duration) String() string { return time.Duration(d).String() }

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Secret is a string that never prints: fmt, slog, JSON and YAML all show
// "[redacted]" (or "" when it is empty).
type Secret string

const redacted = "[redacted]"

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return `config.Secret("` + s.String() + `")` }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

// MarshalYAML implements yaml.Marshaler.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// Reveal returns the secret itself, for the code that needs it.
func (s Secret) Reveal() string { return string(s) }

// refusableKinds lists the event kinds that can fail closed.
func refusableKinds() string {
	var names []string
	for _, k := range rules.Kinds() {
		if k.CanFailClosed() {
			names = append(names, string(k))
		}
	}
	return strings.Join(names, ", ")
}
