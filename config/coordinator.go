package config

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/timguard/timguard/rules"
)

// Snapshot is a configuration and the rule set it names, loaded together.
type Snapshot struct {
	Config *Config
	Rules  *rules.Set
}

// Change is one reload attempt as a subscriber hears it. Prev is what was in
// force before. Next is what is in force after: the new snapshot, or Prev
// again when Err says why the attempt failed.
type Change struct {
	Prev, Next *Snapshot
	Err        error
	At         time.Time
}

// Failed reports whether the attempt kept the previous snapshot.
func (c Change) Failed() bool { return c.Err != nil }

// CoordinatorOptions configures a Coordinator. Path and LoadRules are
// required.
type CoordinatorOptions struct {
	// Path is the configuration file; it names the rule file.
	Path string
	// LoadRules reads, compiles and tests a rule file; an error keeps the
	// rules in force.
	LoadRules func(path string) (*rules.Set, error)
	Logger    *slog.Logger
	Now       func() time.Time
	// Registerer takes the reload metrics; nil registers them nowhere.
	Registerer prometheus.Registerer
}

// Coordinator is the one reload path: SIGHUP, the file watcher and the admin
// API all call Reload, and the parts that follow the configuration
// subscribe to it instead of being called one by one. A reload does all
// that can fail first (read and validate the configuration, read, compile
// and test the rules); only then are the subscribers told, in the order
// they subscribed. On any error they hear of the failure and the snapshot
// in force stays.
type Coordinator struct {
	opts CoordinatorOptions
	log  *slog.Logger

	mu   sync.Mutex // serializes reloads and guards subs, cur and the metrics
	subs []func(Change)
	cur  *Snapshot

	reloads     *prometheus.CounterVec
	reloadOK    prometheus.Gauge
	reloadTime  prometheus.Gauge
	rulesInfo   *prometheus.GaugeVec
	rulesLoaded prometheus.Gauge
}

// NewCoordinator returns a coordinator with initial, loaded at start, in
// force.
func NewCoordinator(opts CoordinatorOptions, initial *Snapshot) (*Coordinator, error) {
	if opts.Path == "" || opts.LoadRules == nil {
		return nil, errors.New("config: a coordinator needs the configuration path and a rule loader")
	}
	if initial == nil || initial.Config == nil || initial.Rules == nil {
		return nil, errors.New("config: a coordinator needs the snapshot loaded at start")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &Coordinator{opts: opts, log: opts.Logger, cur: initial}
	c.registerMetrics(opts.Registerer)
	c.record(Change{Prev: initial, Next: initial, At: opts.Now()})
	return c, nil
}

func (c *Coordinator) registerMetrics(reg prometheus.Registerer) {
	f := promauto.With(reg)
	c.reloads = f.NewCounterVec(prometheus.CounterOpts{
		Name: "timguard_config_reloads_total",
		Help: "Rule reloads, by result (success, failure).",
	}, []string{"result"})
	c.reloadOK = f.NewGauge(prometheus.GaugeOpts{
		Name: "timguard_config_last_reload_successful",
		Help: "Whether the last reload of the rules succeeded (1) or failed (0).",
	})
	c.reloadTime = f.NewGauge(prometheus.GaugeOpts{
		Name: "timguard_config_last_reload_success_timestamp_seconds",
		Help: "When the rules were last loaded successfully.",
	})
	c.rulesInfo = f.NewGaugeVec(prometheus.GaugeOpts{
		Name: "timguard_rules_info",
		Help: "The version (hash) of the rules in force; always 1.",
	}, []string{"version"})
	c.rulesLoaded = f.NewGauge(prometheus.GaugeOpts{
		Name: "timguard_rules",
		Help: "Number of rules in force.",
	})
}

// record sets the reload metrics after an attempt (the load at start
// counts as a successful one). The reload counter goes last: whoever sees
// it counted sees the other metrics of the same reload in the next scrape.
func (c *Coordinator) record(ch Change) {
	if ch.Prev != nil && ch.Prev.Rules.Version != ch.Next.Rules.Version {
		c.rulesInfo.DeleteLabelValues(ch.Prev.Rules.Version)
	}
	c.rulesInfo.WithLabelValues(ch.Next.Rules.Version).Set(1)
	c.rulesLoaded.Set(float64(len(ch.Next.Rules.Rules)))
	if ch.Failed() {
		c.reloadOK.Set(0)
		c.reloads.WithLabelValues("failure").Inc()
	} else {
		c.reloadOK.Set(1)
		c.reloadTime.Set(float64(ch.At.Unix()))
		c.reloads.WithLabelValues("success").Inc()
	}
}

// Subscribe adds functions told of every reload attempt, after the ones
// already subscribed. They run one at a time, while the reload holds the
// coordinator, and must not call Reload.
func (c *Coordinator) Subscribe(fns ...func(Change)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.subs = append(c.subs, fns...)
}

// Current returns the snapshot in force.
func (c *Coordinator) Current() *Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur
}

// Reload reads the configuration and the rule file it names again and, when
// both load, puts them in force and tells the subscribers. It returns the
// snapshot in force afterwards, and the error that kept the previous one.
func (c *Coordinator) Reload(_ context.Context) (*Snapshot, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	prev := c.cur
	next, err := c.load()
	ch := Change{Prev: prev, Next: next, Err: err, At: c.opts.Now()}
	if err != nil {
		ch.Next = prev
		c.log.Error("reload failed; the configuration and rules in force stay", "version", prev.Rules.Version, "err", err)
	} else {
		c.cur = next
	}
	// The metrics follow the subscribers: once a reload is counted, its
	// rules are in force.
	for _, fn := range c.subs {
		fn(ch)
	}
	c.record(ch)
	if err == nil {
		c.log.Info("configuration and rules reloaded", "from_version", prev.Rules.Version, "to_version", next.Rules.Version,
			"rules", next.Rules.Summary(), "dry_run", next.Config.DryRun)
	}
	return ch.Next, err
}

// load does all of a reload that can fail.
func (c *Coordinator) load() (*Snapshot, error) {
	cfg, err := Load(c.opts.Path)
	if err != nil {
		return nil, err
	}
	set, err := c.opts.LoadRules(cfg.RulesPath())
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	return &Snapshot{Config: cfg, Rules: set}, nil
}
