package config

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

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

	mu   sync.Mutex // serializes reloads and guards subs and cur
	subs []func(Change)
	cur  *Snapshot
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
	return &Coordinator{opts: opts, log: opts.Logger, cur: initial}, nil
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
	for _, fn := range c.subs {
		fn(ch)
	}
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
