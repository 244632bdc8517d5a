// Package schedule runs what only timguard can do on time: the schedules of
// the rule file (quiet hours, a rule mode switched on for a window) and the
// reconciliation of the mutes timguard recorded with the IM server's.
//
// Every replica runs a Scheduler. It keeps one robfig/cron runner built from
// the rule set in force and builds a new one when the rules are reloaded.
// Each firing is claimed in the store under a key naming the schedule and
// the instant (ClaimOnce), so exactly one replica acts on it; that replica
// enqueues the schedule's actions in the outbox with deterministic IDs (the
// executor carries them out, retries them with backoff and audits them) and
// switches the schedule's mode on until the firing instant plus its `for`.
// Claims and enqueues that fail because the store is unavailable are retried
// with backoff for 30 seconds; a firing that still fails is logged, counted
// and audited, and then tried again every minute while it is within CatchUp
// of its instant, so that it runs once, late, when the store is back (the
// claim keeps it once across replicas; it keeps its original end like a
// caught-up firing). One older than CatchUp is given up and audited.
//
// The unmute at the end of a group mute and the announcement at the end of a
// member mute are not cron jobs: the executor leaves them in the outbox as
// delayed actions (see mutes.EndSuffix), which is the due-time index.
// They survive restarts because they live in the store, and they run once
// across replicas because the outbox leases each action to one worker.
//
// Firings missed while every replica was down are caught up once when a
// replica starts: for each schedule, the most recent firing within CatchUp
// that no replica claimed runs then, keeping its original end (a late
// mute_group is shortened by the delay, a mode ends when it would have).
//
// Reconciliation compares, every ReconcileEvery on one replica, the mutes
// timguard recorded with get_group_muted_account and get_group_info. A
// recorded mute the IM server no longer has was lifted early by a human: it
// is cleared, marked lifted (so its delayed unmute or announcement is
// skipped) and audited, never applied again. Mutes the IM server has but
// timguard did not record are left alone.
package schedule

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/tim"
)

// RuleSource gives the rule set in force; *policy.RuleHolder implements it.
type RuleSource interface {
	Rules() *rules.Set
}

// Store is what the scheduler needs from shared state; store.Store
// implements it.
type Store interface {
	ClaimOnce(ctx context.Context, key string, ttl time.Duration) (bool, error)
	Enqueue(ctx context.Context, actions ...store.Action) error
	SetMode(ctx context.Context, name string, until time.Time) error
	ListMutes(ctx context.Context, group string) ([]store.Mute, error)
	MutedGroups(ctx context.Context) ([]string, error)
	ClearMute(ctx context.Context, group, user string) error
}

// Client is the part of the IM REST client reconciliation reads; *tim.Client
// implements it.
type Client interface {
	GetGroupMutedAccount(ctx context.Context, groupID, topicID string) ([]tim.MutedAccount, error)
	GetGroupInfo(ctx context.Context, groupIDs []string) ([]tim.GroupInfo, error)
}

// AuditSink takes encoded audit records; *audit.Writer implements it.
type AuditSink interface {
	WriteLine(line []byte)
}

// Defaults for Config fields left zero.
const (
	DefaultReconcileEvery = 5 * time.Minute
	DefaultCatchUp        = time.Hour
	DefaultReloadEvery    = time.Second
)

// MinEvery is the shortest interval an `@every` schedule may have; shorter
// ones are not run.
const MinEvery = time.Minute

// Results passed to Config.Observe, besides audit.ResultDone.
const (
	// ResultCaughtUp: a firing missed while every replica was down, or while
	// the store was unavailable, ran late.
	ResultCaughtUp = "caught_up"
	// ResultClaimedElsewhere: another replica runs this firing (not audited).
	ResultClaimedElsewhere = "claimed_elsewhere"
	// ResultFailed: the store failed; the firing or reconciliation did not run.
	ResultFailed = audit.ResultFailed
	// ResultLiftedEarly: reconciliation found a recorded mute lifted early.
	ResultLiftedEarly = "lifted_early"
)

// ReconcileJob is the job name reconciliation reports to Observe.
const ReconcileJob = "reconcile"

// Config configures a Scheduler. Rules, Store and Audit are required.
type Config struct {
	Rules RuleSource
	Store Store
	// Client reads the IM server for reconciliation; nil switches
	// reconciliation off (no tencent.secret_key).
	Client Client
	Audit  AuditSink
	Logger *slog.Logger
	// Now is the clock of catch-up, reconciliation and records (time.Now by
	// default). The cron runner itself follows the runtime clock, which
	// testing/synctest controls in tests.
	Now func() time.Time
	// Replica names this process in audit records (actor).
	Replica string
	// Observe, when set, hears about every firing and reconciliation
	// result by job (the schedule's name, or ReconcileJob).
	Observe func(job, result string)
	// ReconcileEvery is how often recorded mutes are compared with the IM
	// server's; one replica does it per period.
	ReconcileEvery time.Duration
	// CatchUp is how far back a firing missed while every replica was down
	// is still run when a replica starts, and how long after its instant a
	// firing the store was unavailable for is still tried again.
	CatchUp time.Duration
	// ReloadEvery is how often the rule source is asked whether the rules
	// changed.
	ReloadEvery time.Duration
}

// Scheduler runs the schedules of the rules in force and reconciliation.
type Scheduler struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	missed  map[string]missed // by firing id: firings to try again
	running map[string]bool   // firing ids in progress on this replica
}

// New returns a Scheduler. It fails when a required part is missing.
func New(cfg Config) (*Scheduler, error) {
	switch {
	case cfg.Rules == nil:
		return nil, errors.New("schedule: Config.Rules is nil")
	case cfg.Store == nil:
		return nil, errors.New("schedule: Config.Store is nil")
	case cfg.Audit == nil:
		return nil, errors.New("schedule: Config.Audit is nil")
	case cfg.ReconcileEvery < 0, cfg.CatchUp < 0, cfg.ReloadEvery < 0:
		return nil, fmt.Errorf("schedule: negative interval (reconcile every %v, catch up %v, reload every %v)",
			cfg.ReconcileEvery, cfg.CatchUp, cfg.ReloadEvery)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ReconcileEvery == 0 {
		cfg.ReconcileEvery = DefaultReconcileEvery
	}
	if cfg.CatchUp == 0 {
		cfg.CatchUp = DefaultCatchUp
	}
	if cfg.ReloadEvery == 0 {
		cfg.ReloadEvery = DefaultReloadEvery
	}
	return &Scheduler{cfg: cfg, log: cfg.Logger.With("component", "schedule"),
		missed: map[string]missed{}, running: map[string]bool{}}, nil
}

// Run runs the schedules, catches up what was missed, follows rule reloads
// and reconciles mutes until ctx is done. It then waits for the firings in
// progress and returns nil.
func (s *Scheduler) Run(ctx context.Context) error {
	set := s.cfg.Rules.Rules()
	cur := s.start(ctx, set)
	defer func() { cur.stop() }()
	// Catching up after the runner started leaves no gap: a firing both
	// would run is claimed once.
	s.catchUp(ctx, cur)

	reload := time.NewTicker(s.cfg.ReloadEvery)
	defer reload.Stop()
	retry := time.NewTicker(retryMissedEvery)
	defer retry.Stop()
	var reconcile <-chan time.Time
	if s.cfg.Client != nil {
		t := time.NewTicker(s.cfg.ReconcileEvery)
		defer t.Stop()
		reconcile = t.C
	}
	s.log.Info("scheduler started", "schedules", len(cur.entries), "reconcile", s.cfg.Client != nil,
		"reconcile_every", s.cfg.ReconcileEvery, "catch_up", s.cfg.CatchUp)
	for {
		select {
		case <-ctx.Done():
			s.log.Info("scheduler stopped")
			return nil
		case <-reload.C:
			next := s.cfg.Rules.Rules()
			if next == nil || next == set {
				continue
			}
			if set != nil && next.Version == set.Version {
				set = next // the same file loaded again: the same schedules
				continue
			}
			// The new runner starts before the old one stops: a firing
			// both see is claimed once.
			nc := s.start(ctx, next)
			cur.stop()
			cur, set = nc, next
			s.log.Info("schedules reloaded", "schedules", len(cur.entries), "version", next.Version)
		case <-retry.C:
			s.retryMissed(ctx, cur)
		case <-reconcile:
			s.reconcile(ctx)
		}
	}
}

// runner is one cron runner and the schedules it runs.
type runner struct {
	c       *cron.Cron
	entries []entry
}

type entry struct {
	sc    *rules.Schedule
	sched cron.Schedule
}

func (r *runner) stop() { <-r.c.Stop().Done() }

// start builds and starts a cron runner for set's schedules.
func (s *Scheduler) start(ctx context.Context, set *rules.Set) *runner {
	r := &runner{c: cron.New(cron.WithLocation(time.UTC), cron.WithLogger(cronLogger{s.log}),
		cron.WithChain(cron.Recover(cronLogger{s.log})))}
	if set == nil {
		r.c.Start()
		return r
	}
	for _, sc := range set.Schedules {
		sched, err := parse(sc)
		if err != nil {
			s.log.Error("schedule not run", "schedule", sc.Name, "err", err)
			continue
		}
		r.entries = append(r.entries, entry{sc: sc, sched: sched})
		var id cron.EntryID
		id = r.c.Schedule(sched, cron.FuncJob(func() {
			// Prev is the instant the runner fired this entry for, even
			// when the timer woke late.
			at := r.c.Entry(id).Prev
			if at.IsZero() {
				at, _ = lastFiring(sched, time.Now(), 24*time.Hour)
			}
			s.fire(ctx, sc, at, onTime)
		}))
	}
	r.c.Start()
	return r
}

// parse builds the cron schedule of sc. Schedules are validated when the
// rules load; this refuses only what the runner cannot run safely.
func parse(sc *rules.Schedule) (cron.Schedule, error) {
	loc := sc.Location
	if loc == nil {
		var err error
		if loc, err = rules.LoadTimezone(sc.Timezone); err != nil {
			return nil, err
		}
	}
	sched, err := rules.ParseCron(sc.Cron, loc)
	if err != nil {
		return nil, err
	}
	if d, ok := sched.(cron.ConstantDelaySchedule); ok {
		if d.Delay < MinEvery {
			return nil, fmt.Errorf("%q fires more often than every %v", sc.Cron, MinEvery)
		}
		return every{d.Delay}, nil
	}
	return sched, nil
}

// every is `@every D` aligned to the clock (multiples of D since the zero
// time), so that every replica fires at the same instants and the claim
// key names the same firing.
type every struct{ d time.Duration }

func (e every) Next(t time.Time) time.Time { return t.Truncate(e.d).Add(e.d) }

// lastFiring returns the most recent instant in [now-window, now] at which
// sched fires.
func lastFiring(sched cron.Schedule, now time.Time, window time.Duration) (time.Time, bool) {
	var last time.Time
	// Next returns instants after its argument, in whole seconds.
	for t := sched.Next(now.Add(-window - time.Second)); !t.IsZero() && !t.After(now); t = sched.Next(t) {
		last = t
	}
	return last, !last.IsZero()
}

// cronLogger sends robfig/cron's messages to slog; its routine messages are
// debug.
type cronLogger struct{ log *slog.Logger }

func (l cronLogger) Info(msg string, kv ...any) {
	l.log.Debug("cron: "+msg, kv...)
}

func (l cronLogger) Error(err error, msg string, kv ...any) {
	l.log.Error("cron: "+msg, append(kv, "err", err)...)
}
