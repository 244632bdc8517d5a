package policy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/tim"
)

// Store is what the engine needs from shared state.
type Store interface {
	Enrich(ctx context.Context, req store.EnrichRequest) (store.EnrichResult, error)
	Commit(ctx context.Context, req store.CommitRequest) error
	ForgetRoles(ctx context.Context, group string) error
}

// RuleSource gives the rule set in force; reloads swap it.
type RuleSource interface {
	Rules() *rules.Set
}

// AuditSink takes encoded audit records.
type AuditSink interface {
	WriteLine(line []byte)
}

// RoleFiller knows groups' owners and admins and keeps the store's role
// cache filled. groupType is the callback's group type ("" when it has
// none): how the IM server can be asked depends on it (an AVChatRoom group
// has no member list).
type RoleFiller interface {
	// FillRoles fills an empty cache and returns the group's owner and
	// admins (user -> role), waiting at most until ctx is done.
	FillRoles(ctx context.Context, group, groupType string) (map[string]string, error)
	// RefreshRoles refreshes cached roles in the background when they are
	// old: read from the IM server at cachedAt (EnrichResult.RolesAt; zero
	// when not known) too long ago. With force it refreshes at once. It
	// returns at once.
	RefreshRoles(group, groupType string, cachedAt time.Time, force bool)
}

// Observer hears about each decision, for metrics. All methods must be
// cheap and safe for concurrent use.
type Observer interface {
	Decided(command string, verdict rules.Verdict, latency time.Duration)
	RuleMatched(rule string, shadow bool)
	StoreError(op string)
	// RuleFailed hears of a rule that failed while it ran (an expression
	// error): the event was decided without it.
	RuleFailed(rule string)
}

// Recorder keeps evaluated callbacks with the state their rules read (the
// `record:` configuration), so that a replay can evaluate them as they were.
// Record is called on the callback path: it must not block, and it must
// copy what it keeps (ev.Raw is reused after the answer).
type Recorder interface {
	Record(r Recorded)
}

// Recorded is one evaluated callback handed to a Recorder.
type Recorded struct {
	Event *Event
	Rules *rules.Set
	// State is what the rules read; nil when nothing was read (no rule or
	// counter is on the event's kind, or the store was down and the kind
	// fails closed).
	State   *State
	Outcome Outcome
	// Degraded is true when the event was decided without the store.
	Degraded bool
}

// FailMode says what to decide when the store cannot be read.
type FailMode = rules.FailMode

// Fail modes.
const (
	FailOpen   = rules.FailOpen
	FailClosed = rules.FailClosed
)

// Config configures an Engine.
type Config struct {
	Rules  RuleSource
	Store  Store
	Audit  AuditSink
	Logger *slog.Logger
	// Now is the clock (time.Now by default).
	Now func() time.Time
	// DryRun puts every rule in shadow mode.
	DryRun bool
	// AppAdmin is the App admin account (tencent.admin).
	AppAdmin string
	// DedupeTTL is how long an "after" callback is remembered (default 10m).
	DedupeTTL time.Duration
	// StoreTimeout bounds the store calls made outside a callback (the
	// spool's retries, forgetting roles); a callback's own calls are
	// bounded by the store itself (default 250ms).
	StoreTimeout time.Duration
	// FailModes per event kind; missing kinds fail open.
	FailModes map[rules.Kind]FailMode
	Roles     RoleFiller
	Observer  Observer
	// Replica names this process in audit records.
	Replica string
	// Journal keeps the commits the store did not take on local disk
	// (state_dir); nil keeps them in memory only.
	Journal Journal
	// Kept are the commits read back from the Journal at start; they are
	// committed like the others.
	Kept []KeptCommit
	// Recorder, when set, hears every evaluated callback.
	Recorder Recorder
}

// Engine decides callbacks. It is safe for concurrent use.
//
// A callback goes through four stages, each with one job, in the manner of
// Alertmanager's notification pipeline: enrich reads what the rules need
// from the store (or notes why it could not), decide evaluates the rules
// (or applies the kind's fail mode), commit writes the decisions' effects
// to the store (or keeps them in the spool), record writes the audit
// records and tells the observer. Each stage works on a call and leaves
// its result in it for the next.
type Engine struct {
	cfg Config
	log *slog.Logger

	dryRun  atomic.Bool
	spool   spool
	breaker breaker

	stages []stage
}

// stage is one step of a callback's way through the engine.
type stage interface {
	exec(ctx context.Context, c *call)
}

// call is one callback on its way through the stages.
type call struct {
	ev    *Event
	set   *rules.Set
	plan  *rules.Plan
	start time.Time
	// env is the rule environment filled from the event, shared by the
	// counter keys and the evaluation; nil until enrich makes it.
	env *rules.Env
	// state is what the store said; nil when it was not read. stateBuf
	// holds it when enrich read it.
	state    *State
	stateBuf *stateBuf
	// cause is the store failure the event is decided without.
	cause error
	// settled: no rule is evaluated for the event (not evaluated, the
	// bot's own message, a duplicate, nothing to evaluate); decide and
	// commit pass it by and record writes one record for the event.
	settled bool
	// quiet: the event is recorded but not counted in the metrics.
	quiet bool
	// result and errText say how the decisions came about, for the record.
	result, errText string
	out             Outcome
	// lines are the decisions' encoded records; nil until encoded, and
	// again when a later stage changed the decisions.
	lines [][]byte
	// lineBuf holds lines for events with few subjects (most have one).
	lineBuf [2][]byte
	// keys is enrich's room for the counter keys it asked the store for;
	// kept with the call for the next callback.
	keys []counterKey
	// budgetsUnread: the plan has budgeted rules whose budgets enrich did
	// not read (decide has them read when it needs them).
	budgetsUnread bool
}

// SetDryRun switches dry run on or off (a configuration reload).
func (e *Engine) SetDryRun(on bool) { e.dryRun.Store(on) }

// New returns an Engine.
func New(cfg Config) *Engine {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.DedupeTTL == 0 {
		cfg.DedupeTTL = 10 * time.Minute
	}
	if cfg.StoreTimeout == 0 {
		cfg.StoreTimeout = 250 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Engine{cfg: cfg, log: cfg.Logger.With("component", "policy")}
	e.dryRun.Store(cfg.DryRun)
	e.spool.max = maxSpooledActions
	failures := &failureLog{logged: map[string]*failLog{}}
	enrich := &enricher{store: cfg.Store, roles: cfg.Roles, breaker: &e.breaker, failures: failures, log: e.log,
		appAdmin: cfg.AppAdmin, dedupeTTL: cfg.DedupeTTL, storeTimeout: cfg.StoreTimeout, eagerBudgets: cfg.Recorder != nil}
	e.stages = []stage{
		enrich,
		&decider{dryRun: &e.dryRun, appAdmin: cfg.AppAdmin, failModes: cfg.FailModes, observer: cfg.Observer, log: e.log,
			recorder: cfg.Recorder, readBudgets: enrich.readBudgets},
		&committer{store: cfg.Store, breaker: &e.breaker, keep: e.keep, observer: cfg.Observer, log: e.log, now: cfg.Now},
		&recorder{audit: cfg.Audit, now: cfg.Now, observer: cfg.Observer, log: e.log, failures: failures,
			budgets: &budgetWarner{warned: map[string]time.Time{}}},
	}
	e.restore(cfg.Kept)
	return e
}

// Handle decides one callback: enrich, decide, commit, record. The reply is
// always usable, even when the store fails.
func (e *Engine) Handle(ctx context.Context, ev *Event) Outcome {
	c, _ := calls.Get().(*call)
	if c == nil {
		c = &call{}
	}
	keys := c.keys
	*c = call{ev: ev, set: e.cfg.Rules.Rules(), start: ev.Received, out: Outcome{Reply: tim.OK()}, keys: keys[:0]}
	if c.start.IsZero() {
		c.start = e.cfg.Now()
	}
	defer func() {
		if c.env != nil {
			c.env.Release()
		}
		// The outcome holds copies of what it read of the state; only a
		// Recorder may keep the state itself (Recorded.State).
		if c.stateBuf != nil && e.cfg.Recorder == nil {
			c.stateBuf.release()
		}
		// Nothing keeps the call past Handle: the stages hand on its
		// parts (the outcome, the state, the lines), never the call.
		keys := c.keys
		*c = call{keys: keys[:0]}
		calls.Put(c)
	}()
	for _, s := range e.stages {
		s.exec(ctx, c)
	}
	return c.out
}

// calls are the calls of finished callbacks, for the next ones.
var calls sync.Pool

// encode encodes the decisions' records, with the latency so far, and how
// they came about.
func (c *call) encode(now time.Time, log *slog.Logger) [][]byte {
	lines := c.lineBuf[:0]
	if len(c.out.Decisions) > len(c.lineBuf) {
		lines = make([][]byte, 0, len(c.out.Decisions))
	}
	latency := now.Sub(c.start).Microseconds()
	for i := range c.out.Decisions {
		d := &c.out.Decisions[i]
		d.LatencyUS = latency
		d.Result = c.result
		d.Error = joinErr(strings.Join(d.Errors, "; "), c.errText)
		line, err := EncodeDecision(d)
		if err != nil {
			log.Error("encode audit record", "event_id", c.ev.ID, "err", err)
			continue
		}
		lines = append(lines, line)
	}
	return lines
}

func joinErr(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}

// breaker remembers that the store failed: for a moment callbacks do not
// wait for it again but decide without it at once.
type breaker struct {
	// downUntil is in Unix nanoseconds.
	downUntil atomic.Int64
}

// errStoreDown is the cause of decisions made without trying a store that
// failed moments ago.
var errStoreDown = fmt.Errorf("%w: it failed moments ago; not waiting for it again yet", store.ErrUnavailable)

// storeDownFor is how long callbacks skip a store that just failed.
const storeDownFor = 500 * time.Millisecond

func (b *breaker) down() bool {
	until := b.downUntil.Load()
	return until != 0 && time.Now().UnixNano() < until
}

// note opens the breaker on an outage, and closes it on success.
func (b *breaker) note(err error) {
	switch {
	case err == nil:
		b.downUntil.Store(0)
	case errors.Is(err, store.ErrUnavailable):
		b.downUntil.Store(time.Now().Add(storeDownFor).UnixNano())
	}
}

// failureLog limits the log lines about rules and counters that fail while
// they run: at most one a minute each.
type failureLog struct {
	mu     sync.Mutex
	logged map[string]*failLog // "rule NAME" or "counter NAME" -> its last log line
}

// failLog is when a failing rule or counter was last logged, and how often
// it failed since.
type failLog struct {
	at     time.Time
	missed int
}

// toLog reports whether the failure of what (a rule or a counter) is to be
// logged now: at most once a minute each, saying how often it failed in
// between. Reasons are redacted: the log holds no message text.
func (f *failureLog) toLog(what string, now time.Time) (missed int, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	last, seen := f.logged[what]
	if seen && now.Sub(last.at) < time.Minute {
		last.missed++
		return 0, false
	}
	if seen {
		missed = last.missed
	}
	f.logged[what] = &failLog{at: now}
	for k, l := range f.logged {
		if now.Sub(l.at) > time.Hour {
			delete(f.logged, k)
		}
	}
	return missed, true
}

// budgetWarner logs, at most once a minute per rule and group, that a rule
// ran out of budget and acts in shadow mode.
type budgetWarner struct {
	mu     sync.Mutex
	warned map[string]time.Time
}

func (b *budgetWarner) warn(log *slog.Logger, rule, group string, now time.Time) {
	key := rule + "|" + group
	b.mu.Lock()
	last, seen := b.warned[key]
	if seen && now.Sub(last) < time.Minute {
		b.mu.Unlock()
		return
	}
	b.warned[key] = now
	for k, t := range b.warned {
		if now.Sub(t) > time.Hour {
			delete(b.warned, k)
		}
	}
	b.mu.Unlock()
	log.Warn("rule spent its action budget for this group and acts in shadow mode until its window passes",
		"rule", rule, "group", group)
}
