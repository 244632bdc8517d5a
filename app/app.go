package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/netutil"

	"github.com/timguard/timguard/actions"
	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/config"
	"github.com/timguard/timguard/console"
	"github.com/timguard/timguard/handlers"
	"github.com/timguard/timguard/internal/logging"
	"github.com/timguard/timguard/policy"
	"github.com/timguard/timguard/record"
	"github.com/timguard/timguard/rolecache"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/schedule"
	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/store/memory"
	"github.com/timguard/timguard/store/redis"
	"github.com/timguard/timguard/store/spool"
	"github.com/timguard/timguard/tim"
)

// Options carries what the process gives the app; tests replace them.
type Options struct {
	Stdout, Stderr io.Writer
	// Version is the build's version, logged at start.
	Version string
	// Listener, when set, is used instead of listening on cfg.Listen.
	Listener net.Listener
	Now      func() time.Time
	// AuditBuffer bounds the audit records held for a slow output, in
	// bytes (audit.DefaultBuffer when 0).
	AuditBuffer int
}

// auditLinger is how long the audit writer lets records gather before it
// writes them (audit.Options.Linger): at 10,000 callbacks a second, one
// write and one wake-up of the writer for some twenty records instead of
// a few. A reader of the file sees a record about that much later; Flush
// and Close end the wait.
const auditLinger = 2 * time.Millisecond

// App is a running timguard: every part, built from one configuration.
type App struct {
	// cfg is the configuration in force; a reload swaps it.
	cfg     atomic.Pointer[config.Config]
	cfgPath string
	version string
	log     *slog.Logger
	level   *slog.LevelVar
	// reg is where every part registers its metrics; policyMetrics and
	// actionMetrics are the two the app reads from again.
	reg           *prometheus.Registry
	policyMetrics *policy.Metrics
	actionMetrics *actions.Metrics
	redactor      *logging.Redactor
	rules         *policy.RuleHolder
	store         store.Store
	// journal keeps the decisions the store did not take (state_dir); nil
	// without a state_dir or with the embedded store.
	journal  *spool.Journal
	audit    *audit.Writer
	engine   *policy.Engine
	router   http.Handler
	server   *http.Server
	listener net.Listener
	now      func() time.Time

	// recorder keeps evaluated callbacks for replays; nil unless
	// record.enabled.
	recorder *record.Recorder

	// client calls the IM REST API; nil when tencent.secret_key is empty.
	client   *tim.Client
	roles    *rolecache.Filler
	executor *actions.Executor
	// sched runs the rule file's schedules and reconciles mutes.
	sched *schedule.Scheduler

	// requests counts the HTTP requests being served, so that shutdown
	// can wait for their handlers after it cut slow connections.
	requests atomic.Int64

	// coord is the one reload path: SIGHUP, the file watcher and the
	// admin API reload through it, and the parts subscribe to it.
	coord *config.Coordinator
	// rewatch tells the file watcher that a reload may have named other
	// files.
	rewatch chan struct{}

	// results passes the executor's audit records on to audit and keeps
	// the latest result of each action for the console.
	results *console.ActionResults
	console *console.Console
}

// New builds every part from the configuration file at configPath. Nothing
// listens until Run.
func New(ctx context.Context, configPath string, opts Options) (*App, error) {
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	cfg, err := config.Load(configPath)
	if err != nil {
		return nil, err
	}
	level := new(slog.LevelVar)
	if l, err := config.ParseLevel(cfg.Log.Level); err == nil {
		level.Set(l)
	}
	redactor := &logging.Redactor{}
	redactor.Add(cfg.Callback.Token.Reveal(), cfg.Callback.PreviousToken.Reveal(), cfg.Tencent.SecretKey.Reveal(),
		cfg.Admin.Token.Reveal(), redisPassword(cfg.Store.RedisURL.Reveal()), cfg.Record.HashKey.Reveal())
	log := logging.New(opts.Stderr, logging.Options{Level: level, Format: cfg.Log.Format, Redactor: redactor})

	set, err := policy.LoadRules(cfg.RulesPath())
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	a := &App{cfgPath: configPath, version: opts.Version, log: log, level: level, redactor: redactor, rules: policy.NewRuleHolder(set),
		now: opts.Now, reg: newRegistry(), rewatch: make(chan struct{}, 1)}
	a.cfg.Store(cfg)
	a.policyMetrics = policy.NewMetrics(a.reg)
	a.actionMetrics = actions.NewMetrics(a.reg)
	a.coord, err = config.NewCoordinator(config.CoordinatorOptions{
		Path: configPath, LoadRules: policy.LoadRules, Logger: log, Now: opts.Now, Registerer: a.reg,
	}, &config.Snapshot{Config: cfg, Rules: set})
	if err != nil {
		return nil, err
	}

	a.store, err = openStore(ctx, cfg, log, a.reg)
	if err != nil {
		return nil, err
	}
	// The audit writer never makes a callback wait for its output: records
	// go through a bounded buffer, and what does not fit is dropped,
	// counted and reported (/readyz fails meanwhile).
	auditOpts := audit.Options{
		Buffer:  opts.AuditBuffer,
		OnError: func(err error) { log.Error("audit write failed", "err", err) },
		OnDrop:  auditDropped(a.reg).Inc,
		Logger:  log,
		Linger:  auditLinger,
	}
	if path := cfg.AuditPath(); path != "" {
		a.audit, err = audit.OpenWithOptions(path, auditOpts)
		if err != nil {
			_ = a.store.Close()
			return nil, err
		}
	} else {
		a.audit = audit.NewWithOptions(opts.Stdout, auditOpts)
	}

	a.results = console.NewActionResults(a.audit, 0)
	kept, err := a.openJournal()
	if err != nil {
		a.close()
		return nil, err
	}
	if err := a.buildExecutor(); err != nil {
		a.close()
		return nil, err
	}
	if err := a.buildScheduler(); err != nil {
		a.close()
		return nil, err
	}
	var roleFiller policy.RoleFiller
	if a.roles != nil {
		roleFiller = a.roles
	}
	var journal policy.Journal
	if a.journal != nil {
		journal = a.journal
	}
	var recorder policy.Recorder
	if cfg.Record.Enabled {
		if a.recorder, err = openRecorder(cfg, log, a.reg); err != nil {
			a.close()
			return nil, err
		}
		recorder = a.recorder
	}
	a.engine = policy.New(policy.Config{
		Rules: a.rules, Store: a.store, Audit: a.audit, Logger: log, Now: opts.Now,
		DryRun: cfg.DryRun, AppAdmin: cfg.Tencent.Admin, StoreTimeout: cfg.Store.Timeout.D(),
		Roles: roleFiller, Observer: a.policyMetrics, FailModes: failModes(cfg),
		Replica: replicaName(), Journal: journal, Kept: kept, Recorder: recorder,
	})
	a.policyMetrics.Spool(a.engine.Spooled)
	if a.console, err = a.buildConsole(); err != nil {
		a.close()
		return nil, err
	}
	a.router = handlers.New(handlers.Config{
		CallbackPath:   cfg.Callback.Path,
		SDKAppID:       cfg.Tencent.SDKAppID,
		Tokens:         a.callbackTokens(),
		MaxClockSkew:   cfg.Callback.MaxClockSkew.D(),
		MaxBodyBytes:   cfg.Callback.MaxBodyBytes,
		Deadline:       cfg.Callback.Deadline.D(),
		TrustedProxies: cfg.TrustedProxies,
	}, handlers.Deps{
		Decider: a.engine,
		Ready:   a.ready,
		Logger:  log,
		Now:     opts.Now,
		Metrics: metricsHandler(a.reg),
		Observe: handlers.NewMetrics(a.reg).Callback,
		Admin:   handlers.Admin(a.adminConfig()),
		Console: a.console,
	})
	a.server = &http.Server{
		Handler:           a.track(a.router),
		ReadHeaderTimeout: cfg.HTTP.ReadTimeout.D(),
		ReadTimeout:       cfg.HTTP.ReadTimeout.D(),
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       cfg.HTTP.IdleTimeout.D(),
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	a.listener = opts.Listener
	a.subscribe()
	return a, nil
}

// openRecorder starts the recorder that record: configures.
func openRecorder(cfg *config.Config, log *slog.Logger, reg prometheus.Registerer) (*record.Recorder, error) {
	kinds := make([]rules.Kind, 0, len(cfg.Record.Events))
	for _, k := range cfg.Record.Events {
		kinds = append(kinds, rules.Kind(k))
	}
	return record.New(record.Config{
		Dir: cfg.RecordPath(), Keep: cfg.Record.Keep.D(), Kinds: kinds, Text: cfg.Record.Text,
		HashKey: cfg.Record.HashKey.Reveal(), Queue: cfg.Record.Queue, Logger: log, Registerer: reg,
	})
}

// openJournal opens the spool journal in state_dir when the store is Redis,
// and returns the decisions it kept from before.
func (a *App) openJournal() ([]policy.KeptCommit, error) {
	cfg := a.config()
	dir := cfg.StatePath()
	if dir == "" || cfg.Store.RedisURL == "" {
		return nil, nil
	}
	j, entries, bad, err := spool.Open(dir, spool.Options{})
	if err != nil {
		return nil, fmt.Errorf("state_dir %s: %w", dir, err)
	}
	for _, err := range bad {
		a.log.Error("a decision kept in state_dir cannot be read back; it is dropped", "err", err)
	}
	a.journal = j
	kept := make([]policy.KeptCommit, len(entries))
	for i, e := range entries {
		kept[i] = policy.KeptCommit{ID: e.ID, Commit: e.Commit}
	}
	return kept, nil
}

// buildExecutor builds the REST client (when tencent.secret_key is set), the
// role filler and the action executor. Every REST call waits on the budget
// all replicas share in the store.
func (a *App) buildExecutor() error {
	cfg := a.config()
	ec := actions.Config{
		Store: a.store, Audit: a.results, Logger: a.log, Now: a.now, Observe: a.actionMetrics.ActionResult,
		AppAdmin: cfg.Tencent.Admin, DryRun: cfg.DryRun, Replica: replicaName(),
		Lease: cfg.Executor.Lease.D(), MaxAttempts: cfg.Executor.MaxAttempts,
		MinBackoff: cfg.Executor.RetryMin.D(), MaxBackoff: cfg.Executor.RetryMax.D(),
		Workers: cfg.Executor.Workers, Grace: cfg.Executor.ShutdownGrace.D(),
		LiveWarn: cfg.Executor.LiveGroupWarn,
	}
	if a.journal != nil {
		// The outcomes the store could not record wait in the same file as
		// the decisions it did not take.
		ec.Journal = a.journal
		for _, o := range a.journal.Outcomes() {
			ec.Kept = append(ec.Kept, actions.KeptOutcome{ID: o.ID, Data: o.Data})
		}
	}
	if cfg.Tencent.RESTEnabled() {
		client, err := tim.NewClient(tim.ClientConfig{
			BaseURL:   cfg.Tencent.APIBase,
			SDKAppID:  cfg.Tencent.SDKAppID,
			Admin:     cfg.Tencent.Admin,
			SecretKey: cfg.Tencent.SecretKey.Reveal(),
			Timeout:   cfg.Tencent.Timeout.D(),
			Limiter:   &actions.SharedLimiter{Store: a.store, PerSecond: cfg.Tencent.RateLimit},
			Logger:    a.log,
			Observe:   a.actionMetrics.RESTCall,
		})
		if err != nil {
			return fmt.Errorf("tencent: %w", err)
		}
		a.client = client
		a.roles = rolecache.New(rolecache.Config{Client: client, Store: a.store, Logger: a.log, Now: a.now})
		ec.Client, ec.Roles = client, a.roles
	}
	ex, err := actions.New(ec)
	if err != nil {
		return err
	}
	a.executor = ex
	return nil
}

// buildScheduler builds the scheduler: the rule file's schedules, catch-up
// after downtime, and reconciliation of recorded mutes when REST calls are
// on. schedule.* takes effect at start.
func (a *App) buildScheduler() error {
	cfg := a.config()
	sc := schedule.Config{
		Rules: a.rules, Store: a.store, Audit: a.audit, Logger: a.log, Now: a.now,
		Replica: replicaName(), Observe: schedule.NewMetrics(a.reg).ScheduleRun,
		ReconcileEvery: cfg.Schedule.ReconcileEvery.D(), CatchUp: cfg.Schedule.CatchUp.D(),
	}
	if a.client != nil {
		sc.Client = a.client
	}
	s, err := schedule.New(sc)
	if err != nil {
		return err
	}
	a.sched = s
	return nil
}

// replicaName names this process in action and schedule audit records.
func replicaName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "timguard"
	}
	return fmt.Sprintf("%s/%d", host, os.Getpid())
}

// startExecutor runs the executor until the returned function is called;
// that function stops it and waits (its calls in flight get
// executor.shutdown_grace).
func (a *App) startExecutor() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := a.executor.Run(ctx); err != nil {
			a.log.Error("executor stopped with an error", "err", err)
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// openStore opens Redis when store.redis_url is set, else the embedded store.
func openStore(ctx context.Context, cfg *config.Config, log *slog.Logger, reg prometheus.Registerer) (store.Store, error) {
	if cfg.Store.RedisURL == "" {
		return memory.New(memory.Options{}), nil
	}
	s, err := redis.New(ctx, redis.Options{
		URL:        cfg.Store.RedisURL.Reveal(),
		KeyPrefix:  cfg.Store.KeyPrefix,
		Timeout:    cfg.Store.Timeout.D(),
		Logger:     log,
		Batch:      redis.BatchOptions{MaxSize: cfg.Store.Batch.MaxSize, MaxWait: cfg.Store.Batch.MaxWait.D()},
		Registerer: reg,
	})
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return s, nil
}

// ready is /readyz: rules loaded, the store taking writes and the audit
// output keeping up.
func (a *App) ready(ctx context.Context) error {
	if a.rules.Rules() == nil {
		return errors.New("no rules loaded")
	}
	if err := a.store.Ping(ctx); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if err := a.audit.Ready(); err != nil {
		return err
	}
	return nil
}

// Run serves until ctx is cancelled, reloading on every value from reload,
// then shuts down gracefully.
func (a *App) Run(ctx context.Context, reload <-chan os.Signal) error {
	defer a.close()
	a.logStartup()
	cfg := a.config()
	ln := a.listener
	if ln == nil {
		var err error
		ln, err = net.Listen("tcp", cfg.Listen)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
		}
	}
	ln = netutil.LimitListener(ln, cfg.HTTP.MaxConnections)
	a.log.Info("listening", "addr", ln.Addr().String(), "callback_path", cfg.Callback.Path,
		"max_connections", cfg.HTTP.MaxConnections)
	// The executor stops when run returns: after the HTTP server has
	// answered the callbacks in flight, before a.close closes the store.
	defer a.startExecutor()()
	bg, stopBG := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { stopBG(); wg.Wait() }()
	wg.Go(func() { a.actionMetrics.SampleOutbox(bg, a.store, 5*time.Second, a.log, a.policyMetrics.StoreError) })
	wg.Go(func() { a.engine.DrainSpool(bg, 250*time.Millisecond) })
	wg.Go(func() { a.console.Run(bg) })
	wg.Go(func() {
		if err := a.sched.Run(bg); err != nil {
			a.log.Error("scheduler stopped with an error", "err", err)
		}
	})
	wg.Go(func() {
		if err := a.watch(bg); err != nil {
			a.log.Warn("configuration files are not watched; reload with SIGHUP or POST /v1/reload", "err", err)
		}
	})
	serveErr := make(chan error, 1)
	go func() { serveErr <- a.server.Serve(ln) }()
	for {
		select {
		case err := <-serveErr:
			if errors.Is(err, http.ErrServerClosed) {
				return nil
			}
			return err
		case <-reload:
			a.log.Info("SIGHUP: reloading")
			_, _ = a.reload(ctx) // a failure is logged, audited and counted
		case <-ctx.Done():
			a.shutdownHTTP(cfg)
			a.log.Info("HTTP server stopped; stopping the executor")
			return nil
		}
	}
}

// callbackTokens gives the router the callback tokens of the configuration
// in force. The router asks on every callback; the list is built once per
// configuration (a reload stores a new one, never changes one in place) and
// shared, read only.
func (a *App) callbackTokens() func() []string {
	type tokens struct {
		cfg  *config.Config
		list []string
	}
	var last atomic.Pointer[tokens]
	return func() []string {
		cfg := a.config()
		if t := last.Load(); t != nil && t.cfg == cfg {
			return t.list
		}
		t := &tokens{cfg: cfg, list: cfg.CallbackTokens()}
		last.Store(t)
		return t.list
	}
}

// track counts the requests being served.
func (a *App) track(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.requests.Add(1)
		defer a.requests.Add(-1)
		h.ServeHTTP(w, r)
	})
}

// shutdownHTTP stops the HTTP server: the listener closes at once, idle
// connections close, and requests in flight are answered for up to
// callback.deadline plus 2s (or executor.shutdown_grace if shorter); a
// callback's work ends at its deadline, so what is still open then is a
// client still sending its request. Those connections are cut, unanswered,
// and their handlers are given a moment to return before the store closes.
func (a *App) shutdownHTTP(cfg *config.Config) {
	a.log.Info("shutting down: no new callbacks; answering those in flight")
	wait := min(cfg.Executor.ShutdownGrace.D(), cfg.Callback.Deadline.D()+2*time.Second)
	sctx, cancel := context.WithTimeout(context.Background(), wait)
	err := a.server.Shutdown(sctx)
	cancel()
	if err == nil {
		return
	}
	a.log.Warn("cut the connections still open after the shutdown wait: clients still sending their request",
		"wait", wait, "requests_in_flight", a.requests.Load(), "err", err)
	if err := a.server.Close(); err != nil {
		a.log.Warn("close the HTTP server", "err", err)
	}
	// A handler reading a cut connection fails at once; one deciding a
	// callback ends at its deadline.
	deadline := time.Now().Add(cfg.Callback.Deadline.D() + time.Second)
	for a.requests.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := a.requests.Load(); n > 0 {
		a.log.Warn("requests still being served as the bot stops", "requests", n)
	}
}

// failModes reads store.fail_mode.
func failModes(cfg *config.Config) map[rules.Kind]policy.FailMode {
	out := make(map[rules.Kind]policy.FailMode, len(cfg.Store.FailMode))
	for kind, mode := range cfg.Store.FailMode {
		out[rules.Kind(kind)] = mode
	}
	return out
}

// Logger returns the app's logger.
func (a *App) Logger() *slog.Logger { return a.log }

// config returns the configuration in force.
func (a *App) config() *config.Config { return a.cfg.Load() }

// logStartup says which parts run embedded or are off.
func (a *App) logStartup() {
	c := a.config()
	storeMode := "embedded (single process; state is lost on restart)"
	if c.Store.RedisURL != "" {
		storeMode = "redis"
		if a.journal != nil {
			storeMode += "; decisions Redis does not take wait in " + a.journal.Path()
		} else {
			a.log.Warn("no state_dir: decisions made while Redis does not take writes wait in memory only, and are lost if the process stops before Redis is back")
		}
	}
	rest := "off (no tencent.secret_key): actions are decided and audited but not carried out"
	if c.Tencent.RESTEnabled() {
		rest = "on, " + c.Tencent.APIBase
		if w := c.Tencent.ServerTimeoutWarning(); w != "" {
			a.log.Warn(w)
		}
	} else {
		a.log.Warn("without REST calls the groups' owners and admins are unknown: rules judge them as members (only the App admin stays exempt)")
	}
	sig := "on"
	if len(c.CallbackTokens()) == 0 {
		sig = "off"
		a.log.Warn("callback.token is empty: callbacks are not authenticated; anyone who can reach the callback URL can call it")
	}
	admin := "off (no admin.token)"
	if c.Admin.Token != "" {
		admin = "on"
	}
	a.log.Info("timguard starting",
		"version", a.version,
		"config", a.cfgPath,
		"sdk_app_id", c.Tencent.SDKAppID,
		"store", storeMode,
		"rest_api", rest,
		"callback_signature_check", sig,
		"admin_api", admin,
		"dry_run", c.DryRun,
		"record", recordMode(c),
		"rules", a.rules.Rules().Summary(),
	)
}

// recordMode says whether and where callbacks are recorded.
func recordMode(c *config.Config) string {
	if !c.Record.Enabled {
		return "off"
	}
	return fmt.Sprintf("on, %s, text %s, kept %s", c.RecordPath(), c.Record.Text, c.Record.Keep)
}

func (a *App) close() {
	if a.recorder != nil {
		if err := a.recorder.Close(); err != nil {
			a.log.Warn("close the recorder", "err", err)
		}
	}
	if a.roles != nil {
		a.roles.Close()
	}
	if a.client != nil {
		a.client.Close()
	}
	if err := a.store.Close(); err != nil {
		a.log.Warn("close store", "err", err)
	}
	if a.journal != nil {
		if err := a.journal.Close(); err != nil {
			a.log.Warn("close the spool journal", "err", err)
		}
	}
	if err := a.audit.Close(); err != nil {
		a.log.Warn("close audit log", "err", err)
	}
}

// redisPassword extracts the password of a Redis URL so the logger masks
// it.
func redisPassword(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return ""
	}
	p, _ := u.User.Password()
	return p
}
