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

	"github.com/timguard/timguard/audit"
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
	// old (at once with force). It returns at once.
	RefreshRoles(group, groupType string, force bool)
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
type FailMode string

// Fail modes.
const (
	// FailOpen evaluates with empty state: counters and strikes read 0,
	// so only rules that need no state can act.
	FailOpen FailMode = "open"
	// FailClosed refuses the event (reject, refuse, block); after-events
	// cannot be refused and fall back to FailOpen.
	FailClosed FailMode = "closed"
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
type Engine struct {
	cfg Config
	log *slog.Logger

	dryRun atomic.Bool
	spool  spool
	// downUntil (Unix nanoseconds) is set when the store fails: until then
	// callbacks do not wait for it again but decide without it at once.
	downUntil atomic.Int64

	budgetMu     sync.Mutex
	budgetWarned map[string]time.Time

	failMu     sync.Mutex
	failLogged map[string]*failLog // "rule NAME" or "counter NAME" -> its last log line
}

// failLog is when a failing rule or counter was last logged, and how often
// it failed since.
type failLog struct {
	at     time.Time
	missed int
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
	e := &Engine{cfg: cfg, log: cfg.Logger.With("component", "policy"), budgetWarned: map[string]time.Time{}, failLogged: map[string]*failLog{}}
	e.dryRun.Store(cfg.DryRun)
	e.spool.max = maxSpooledActions
	e.restore(cfg.Kept)
	return e
}

// Handle decides one callback: enrich, evaluate, commit, audit. The reply is
// always usable, even when the store fails.
func (e *Engine) Handle(ctx context.Context, ev *Event) Outcome {
	set := e.cfg.Rules.Rules()
	start := ev.Received
	if start.IsZero() {
		start = e.cfg.Now()
	}
	if ev.Kind == "" {
		e.other(ctx, ev, set, start)
		return Outcome{Reply: tim.OK()}
	}
	if e.ownMessage(ev) {
		e.audit(ev, set, start, "own_message", "")
		return Outcome{Reply: tim.OK()}
	}
	plan := set.Plan(ev.Kind)
	if len(plan.Rules) == 0 && len(plan.Counters) == 0 {
		out := Outcome{Reply: tim.OK()}
		// Recorded without state: no rule reads any, yet a candidate rule
		// set replayed later may.
		e.record(ev, set, nil, out, false)
		e.finish(ctx, ev, set, out, start, "", "")
		return out
	}

	if e.storeDown() {
		return e.degraded(ctx, ev, set, errStoreDown, start)
	}
	// One environment serves the counter keys and the evaluation.
	ev.prepare(plan)
	env := set.Env()
	defer env.Release()
	in := ev.Base
	env.Fill(&in)
	req, keys := e.enrichRequest(set, plan, ev, env)
	// The store bounds the call with its own timeout (store.Store's
	// contract); a second timer here would only cost.
	res, err := e.cfg.Store.Enrich(ctx, req)
	if err != nil {
		e.noteStoreError(err)
		return e.degraded(ctx, ev, set, err, start)
	}
	if res.Duplicate {
		e.audit(ev, set, start, audit.ResultDup, "")
		return Outcome{Reply: tim.OK()}
	}
	st := stateFrom(set, plan, ev, req, res, keys)
	e.roles(ctx, ev, res.RolesCached, st)
	out := evaluate(set, ev, st, Options{DryRun: e.dryRun.Load(), AppAdmin: e.cfg.AppAdmin}, env)
	e.record(ev, set, st, out, false)
	e.finish(ctx, ev, set, out, start, "", "")
	return out
}

// record hands an evaluated callback to the recorder, if there is one.
func (e *Engine) record(ev *Event, set *rules.Set, st *State, out Outcome, degraded bool) {
	if e.cfg.Recorder != nil {
		e.cfg.Recorder.Record(Recorded{Event: ev, Rules: set, State: st, Outcome: out, Degraded: degraded})
	}
}

// roleWait bounds the wait for a group's roles when an event finds none
// cached (the group's first event, or the first after the cache expired).
const roleWait = 300 * time.Millisecond

// roles makes sure the subjects' roles are known before the rules run: an
// empty cache is filled now (briefly waited for: with no roles the owner and
// admins would be judged as members), a cached one refreshed in the
// background when it is old.
func (e *Engine) roles(ctx context.Context, ev *Event, cached bool, st *State) {
	group := ev.Base.GroupID
	if e.cfg.Roles == nil || group == "" {
		return
	}
	if cached {
		e.cfg.Roles.RefreshRoles(group, ev.Base.GroupType, false)
		return
	}
	wctx, cancel := context.WithTimeout(ctx, roleWait)
	roles, err := e.cfg.Roles.FillRoles(wctx, group, ev.Base.GroupType)
	cancel()
	if err != nil {
		e.log.Warn("the group's roles are not known yet; its owner and admins are judged as members for this event",
			"group", group, "event_id", ev.ID, "err", err)
		return
	}
	for _, u := range ev.Subjects {
		if r, ok := roles[u]; ok {
			st.Roles[u] = r
		}
	}
}

// counterKey remembers which counter (by set index) a touched key feeds, per
// subject.
type counterKey struct {
	index   int
	subject int
	reqIdx  int
}

func (e *Engine) enrichRequest(set *rules.Set, plan *rules.Plan, ev *Event, env *rules.Env) (store.EnrichRequest, []counterKey) {
	req := store.EnrichRequest{
		Now:         ev.Received,
		EventID:     ev.ID,
		StrikeDecay: set.StrikeDecay,
		WithModes:   plan.UsesModes,
	}
	var keys []counterKey
	if len(plan.Counters) > 0 {
		byKey := make(map[string]int, len(plan.Counters))
		for si, user := range ev.Subjects {
			env.SetUser(user, "", 0)
			for _, cu := range plan.Counters {
				key, counts, err := cu.Counter.KeyFor(env)
				if err != nil {
					if missed, ok := e.failureToLog("counter "+cu.Counter.Name, ev.Received); ok {
						e.log.Warn("a counter failed while it ran; the event was not counted by it",
							"counter", cu.Counter.Name, "err", rules.Redact(err), "event_id", ev.ID, "since_last", missed)
					}
					if key == "" {
						continue
					}
				}
				i, seen := byKey[key]
				if !seen {
					i = len(req.Counters)
					byKey[key] = i
					req.Counters = append(req.Counters, store.CounterTouch{Key: key, Window: cu.Counter.Window})
				}
				if cu.Touch && counts {
					req.Counters[i].Add++
				}
				keys = append(keys, counterKey{index: cu.Counter.Index, subject: si, reqIdx: i})
			}
		}
	}
	for _, r := range plan.Budgeted {
		req.Counters = append(req.Counters, store.CounterTouch{Key: budgetKey(r.Name, ev.Base.GroupID), Window: r.Budget.Per})
	}
	if len(plan.Rules) > 0 {
		for _, user := range ev.Subjects {
			if user != "" {
				req.Strikes = append(req.Strikes, store.UserRef{Group: ev.Base.GroupID, User: user})
			}
		}
		if ev.Base.GroupID != "" {
			req.RoleGroup = ev.Base.GroupID
			req.RoleUsers = ev.Subjects
		}
	}
	if ev.Kind.IsAfter() {
		req.Dedupe = "dedupe|" + ev.ID
		req.DedupeTTL = e.cfg.DedupeTTL
	}
	return req, keys
}

func budgetKey(rule, group string) string { return "budget|" + rule + "|" + group }

// stateFrom spreads the store's answer over subjects and counters. With
// several subjects, a counter keyed by user differs per subject, so each
// subject gets its own values.
func stateFrom(set *rules.Set, plan *rules.Plan, ev *Event, req store.EnrichRequest, res store.EnrichResult, keys []counterKey) *State {
	st := &State{
		Counters: make([]int, len(set.Counters)),
		Strikes:  map[string]int{},
		Roles:    map[string]string{},
	}
	if len(ev.Subjects) > 1 {
		st.SubjectCounters = make(map[string][]int, len(ev.Subjects))
		for _, u := range ev.Subjects {
			st.SubjectCounters[u] = make([]int, len(set.Counters))
		}
	}
	for _, k := range keys {
		if k.reqIdx >= len(res.Counts) {
			continue
		}
		v := int(res.Counts[k.reqIdx])
		if k.subject == 0 {
			st.Counters[k.index] = v
		}
		if st.SubjectCounters != nil {
			st.SubjectCounters[ev.Subjects[k.subject]][k.index] = v
		}
	}
	base := len(req.Counters) - len(plan.Budgeted)
	if len(plan.Budgeted) > 0 {
		st.Budgets = map[string]int{}
		for i, r := range plan.Budgeted {
			if base+i < len(res.Counts) {
				st.Budgets[r.Name] = int(res.Counts[base+i])
			}
		}
	}
	for i, ref := range req.Strikes {
		if i < len(res.Strikes) {
			st.Strikes[ref.User] = int(res.Strikes[i])
		}
	}
	if res.RolesCached {
		for i, u := range req.RoleUsers {
			if i < len(res.Roles) && res.Roles[i] != "" {
				st.Roles[u] = res.Roles[i]
			}
		}
	}
	if len(res.Modes) > 0 {
		st.Modes = make(map[string]bool, len(res.Modes))
		for m, until := range res.Modes {
			if until.After(ev.Received) {
				st.Modes[m] = true
			}
		}
	}
	return st
}

// degraded decides without the store, as the kind's fail mode says.
func (e *Engine) degraded(ctx context.Context, ev *Event, set *rules.Set, cause error, start time.Time) Outcome {
	if e.cfg.Observer != nil {
		e.cfg.Observer.StoreError("enrich")
	}
	e.log.Warn("store unavailable; deciding without it", "event_id", ev.ID, "command", ev.Command, "err", cause)
	mode := e.cfg.FailModes[ev.Kind]
	if mode == FailClosed && !ev.Kind.IsAfter() {
		out := Outcome{Reply: tim.OK()}
		verdict := strictest(ev.Kind)
		for _, user := range ev.Subjects {
			out.Decisions = append(out.Decisions, Decision{
				EventID: ev.ID, Event: ev.Kind, Command: ev.Command, Group: ev.Base.GroupID, User: user,
				Verdict: verdict, Rules: []string{}, Actions: []PlannedAction{}, RulesVersion: set.Version,
				Errors: []string{"store unavailable: failed closed"},
			})
		}
		out.Reply = reply(ev, out.Decisions)
		e.record(ev, set, nil, out, true)
		e.finish(ctx, ev, set, out, start, audit.ResultDegraded, cause.Error())
		return out
	}
	st := &State{Counters: make([]int, len(set.Counters))}
	out := Evaluate(set, ev, st, Options{DryRun: e.dryRun.Load(), AppAdmin: e.cfg.AppAdmin})
	e.record(ev, set, st, out, true)
	e.finish(ctx, ev, set, out, start, audit.ResultDegraded, cause.Error())
	return out
}

// errStoreDown is the cause of decisions made without trying a store that
// failed moments ago.
var errStoreDown = fmt.Errorf("%w: it failed moments ago; not waiting for it again yet", store.ErrUnavailable)

// storeDownFor is how long callbacks skip a store that just failed.
const storeDownFor = 500 * time.Millisecond

func (e *Engine) storeDown() bool {
	until := e.downUntil.Load()
	return until != 0 && time.Now().UnixNano() < until
}

// noteStoreError opens the breaker on an outage, and closes it on success.
func (e *Engine) noteStoreError(err error) {
	switch {
	case err == nil:
		e.downUntil.Store(0)
	case errors.Is(err, store.ErrUnavailable):
		e.downUntil.Store(time.Now().Add(storeDownFor).UnixNano())
	}
}

// strictest is the verdict a kind fails closed with.
func strictest(k rules.Kind) rules.Verdict {
	vs := rules.VerdictsFor(k)
	for i := len(vs) - 1; i >= 0; i-- {
		if vs[i] != rules.Drop && vs[i].Refuses() {
			return vs[i]
		}
	}
	return rules.None
}

// ownMessage reports whether ev is a message the bot's own REST account
// sent; those never trigger rules.
func (e *Engine) ownMessage(ev *Event) bool {
	if ev.Kind != rules.Message && ev.Kind != rules.MessageSent {
		return false
	}
	return e.cfg.AppAdmin != "" && len(ev.Subjects) == 1 && ev.Subjects[0] == e.cfg.AppAdmin && strings.EqualFold(ev.Platform, "RESTAPI")
}

// other handles callbacks rules do not evaluate: they are recorded, and the
// role-change ones drop the group's role cache.
func (e *Engine) other(ctx context.Context, ev *Event, set *rules.Set, start time.Time) {
	switch ev.Command {
	case tim.CmdAfterMemberFieldChanged, tim.CmdAfterChangeGroupOwner:
		g := ev.Base.GroupID
		switch {
		case g == "":
		case !e.roleChanged(ctx, ev):
			// A name card changed: the roles the rules read did not.
		case e.cfg.Roles != nil:
			// Refresh, keeping the roles known until the new ones arrive.
			e.cfg.Roles.RefreshRoles(g, ev.Base.GroupType, true)
		default:
			sctx, cancel := context.WithTimeout(ctx, e.cfg.StoreTimeout)
			if err := e.cfg.Store.ForgetRoles(sctx, g); err != nil {
				e.log.Warn("forget cached roles", "group", g, "err", err)
			}
			cancel()
		}
	case tim.CmdRequestOverLimit:
		if ol, ok := ev.Callback.(*tim.RequestOverLimit); ok {
			e.log.Warn("the IM server reports the app went over a REST limit", "service", ol.ServiceName, "command", ol.Command,
				"request", ol.Request, "limit", ol.Limit)
		}
	}
	e.audit(ev, set, start, "not_evaluated", "")
}

// roleChanged reports whether a member-field or owner change may have
// changed the group's roles. A member-field change without Role changed
// something else (the name card); one whose Role is the role already cached
// changed nothing the rules read. Every other case, a failed read of the
// cache among them, counts as a change.
func (e *Engine) roleChanged(ctx context.Context, ev *Event) bool {
	fc, ok := ev.Callback.(*tim.AfterMemberFieldChanged)
	if !ok {
		return true
	}
	if fc.Role == "" {
		return false
	}
	if fc.Member == "" {
		return true
	}
	sctx, cancel := context.WithTimeout(ctx, e.cfg.StoreTimeout)
	defer cancel()
	res, err := e.cfg.Store.Enrich(sctx, store.EnrichRequest{Now: ev.Received, RoleGroup: fc.GroupID, RoleUsers: []string{fc.Member}})
	if err != nil || !res.RolesCached || len(res.Roles) != 1 {
		return true
	}
	return !strings.EqualFold(res.Roles[0], fc.Role)
}

// finish commits what the decisions imply (strikes, actions, budget use and
// the decisions themselves, in one round trip) and audits them.
func (e *Engine) finish(ctx context.Context, ev *Event, set *rules.Set, out Outcome, start time.Time, result, errText string) {
	if len(out.Decisions) == 0 {
		e.audit(ev, set, start, result, errText)
		e.observe(ev, out, start)
		return
	}
	lines := e.auditLines(ev, set, out, start, result, errText)
	req := e.commitRequest(set, ev, out)
	// The recent-decision log keeps decisions that did something (a
	// verdict, an action, a shadow match, an error); a clean message costs
	// no second round trip. The audit log has every decision.
	for i, d := range out.Decisions {
		if i < len(lines) && d.eventful() {
			req.Decisions = append(req.Decisions, store.DecisionRecord{Time: ev.Received, Group: d.Group, User: d.User, Body: lines[i]})
		}
	}
	// Without the store, only effects are worth a second try.
	worth := len(req.Actions) > 0 || len(req.Strikes) > 0 || len(req.Touch) > 0 || len(req.Decisions) > 0
	if worth && (result != audit.ResultDegraded || len(req.Actions) > 0 || len(req.Strikes) > 0) {
		var err error
		if e.storeDown() {
			err = errStoreDown
		} else {
			// Not cancelled with the request: a decision made is committed
			// even when the IM server hung up. The store bounds the call.
			err = e.cfg.Store.Commit(context.WithoutCancel(ctx), req)
			e.noteStoreError(err)
		}
		if err != nil {
			if e.cfg.Observer != nil {
				e.cfg.Observer.StoreError("commit")
			}
			// Whatever the error, the decision is kept (on disk with a
			// journal) before the callback is answered, and retried
			// (DrainSpool).
			kept := e.keep(req, err)
			e.log.Warn("commit decision: the store did not take it", "event_id", ev.ID,
				"actions", len(req.Actions), "strikes", len(req.Strikes), "kept", kept, "err", err)
			lines = e.auditLines(ev, set, out, start, result, joinErr(errText, "commit: "+err.Error()+" ("+kept+")"))
		}
	}
	for _, l := range lines {
		e.cfg.Audit.WriteLine(l)
	}
	e.observe(ev, out, start)
	for _, d := range out.Decisions {
		for _, r := range d.Budget {
			e.warnBudget(r, d.Group, ev.Received)
		}
	}
}

func (e *Engine) observe(ev *Event, out Outcome, start time.Time) {
	for _, d := range out.Decisions {
		for _, f := range d.failures {
			e.ruleFailed(ev, f)
		}
	}
	if e.cfg.Observer == nil {
		return
	}
	latency := e.cfg.Now().Sub(start)
	if len(out.Decisions) == 0 {
		e.cfg.Observer.Decided(ev.Command, rules.None, latency)
	}
	for _, d := range out.Decisions {
		e.cfg.Observer.Decided(ev.Command, d.Verdict, latency)
		for _, r := range d.Rules {
			e.cfg.Observer.RuleMatched(r, false)
		}
		for _, r := range d.Shadow {
			e.cfg.Observer.RuleMatched(r, true)
		}
	}
}

func joinErr(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// commitRequest gathers strikes, actions and budget use from the decisions.
func (e *Engine) commitRequest(set *rules.Set, ev *Event, out Outcome) store.CommitRequest {
	req := store.CommitRequest{Now: ev.Received, StrikeDecay: set.StrikeDecay, EventID: ev.ID}
	budgetUsed := map[string]int{}
	for si, d := range out.Decisions {
		for i, a := range d.Actions {
			if a.Shadow {
				continue
			}
			if r := set.Rule(a.Rule); r != nil && r.Budget != nil {
				budgetUsed[a.Rule]++
			}
			if a.Kind == rules.ActStrike {
				req.Strikes = append(req.Strikes, store.StrikeAdd{
					UserRef: store.UserRef{Group: d.Group, User: d.User}, N: a.N,
					ID: ActionID(ev.ID, si, a.Rule, i),
				})
				continue
			}
			sa := store.Action{
				ID: ActionID(ev.ID, si, a.Rule, i), Kind: a.Kind, Group: d.Group, GroupType: ev.Base.GroupType,
				Seconds: a.Seconds, Rule: a.Rule, EventID: ev.ID, Roles: a.Roles, Created: ev.Received,
				Text: a.Text,
			}
			switch a.Kind {
			case rules.ActMute, rules.ActUnmute, rules.ActKick, rules.ActBan, rules.ActUnban, rules.ActAdmit:
				sa.User = d.User
			case rules.ActWarn:
				sa.User = d.User // "" warns the whole group
			}
			if a.Announce != "" {
				sa.Text = a.Announce
			}
			req.Actions = append(req.Actions, sa)
		}
	}
	for rule, n := range budgetUsed {
		r := set.Rule(rule)
		key := budgetKey(rule, ev.Base.GroupID)
		req.Touch = append(req.Touch, store.CounterTouch{Key: key, Window: r.Budget.Per, Add: n})
	}
	return req
}

// ruleFailed counts a rule that failed while it ran and logs it: a rule
// whose expression fails on real events does nothing, and the audit
// record's error field alone is easy to miss.
func (e *Engine) ruleFailed(ev *Event, f ruleFailure) {
	if e.cfg.Observer != nil {
		e.cfg.Observer.RuleFailed(f.rule)
	}
	if missed, ok := e.failureToLog("rule "+f.rule, ev.Received); ok {
		e.log.Warn("a rule failed while it ran; the event was decided without it",
			"rule", f.rule, "err", f.reason, "event_id", ev.ID, "command", ev.Command, "since_last", missed)
	}
}

// failureToLog reports whether the failure of what (a rule or a counter)
// is to be logged now: at most once a minute each, saying how often it
// failed in between. Reasons are redacted: the log holds no message text.
func (e *Engine) failureToLog(what string, now time.Time) (missed int, ok bool) {
	e.failMu.Lock()
	defer e.failMu.Unlock()
	last, seen := e.failLogged[what]
	if seen && now.Sub(last.at) < time.Minute {
		last.missed++
		return 0, false
	}
	if seen {
		missed = last.missed
	}
	e.failLogged[what] = &failLog{at: now}
	for k, l := range e.failLogged {
		if now.Sub(l.at) > time.Hour {
			delete(e.failLogged, k)
		}
	}
	return missed, true
}

// warnBudget logs, at most once a minute per rule and group, that a rule
// ran out of budget and acts in shadow mode.
func (e *Engine) warnBudget(rule, group string, now time.Time) {
	key := rule + "|" + group
	e.budgetMu.Lock()
	last, seen := e.budgetWarned[key]
	if seen && now.Sub(last) < time.Minute {
		e.budgetMu.Unlock()
		return
	}
	e.budgetWarned[key] = now
	for k, t := range e.budgetWarned {
		if now.Sub(t) > time.Hour {
			delete(e.budgetWarned, k)
		}
	}
	e.budgetMu.Unlock()
	e.log.Warn("rule spent its action budget for this group and acts in shadow mode until its window passes",
		"rule", rule, "group", group)
}

// auditLines encodes one record per decision.
func (e *Engine) auditLines(ev *Event, set *rules.Set, out Outcome, start time.Time, result, errText string) [][]byte {
	lines := make([][]byte, 0, len(out.Decisions))
	latency := e.cfg.Now().Sub(start).Microseconds()
	for si, d := range out.Decisions {
		rec := decisionRecord(ev, set, &d, si, latency, result, errText)
		rec.ReplyCode = out.Reply.ErrorCode
		line, err := audit.Encode(rec)
		if err != nil {
			e.log.Error("encode audit record", "event_id", ev.ID, "err", err)
			continue
		}
		lines = append(lines, line)
	}
	return lines
}

func decisionRecord(ev *Event, set *rules.Set, d *Decision, subject int, latencyUS int64, result, errText string) *audit.Record {
	rec := &audit.Record{
		Time: ev.Received, Kind: audit.KindDecision, EventID: ev.ID, Command: ev.Command, Event: string(ev.Kind),
		Group: d.Group, User: d.User, Role: d.Role, Verdict: string(d.Verdict), Rules: d.Rules,
		RulesVersion: set.Version, Shadow: len(d.Shadow) > 0, ShadowRules: d.Shadow, Budget: d.Budget,
		Result: result, LatencyUS: latencyUS,
	}
	errs := make([]string, 0, len(d.Errors)+1)
	for _, e := range d.Errors {
		errs = append(errs, scrubText(e, ev))
	}
	if errText != "" {
		errs = append(errs, errText)
	}
	rec.Error = strings.Join(errs, "; ")
	for i, a := range d.Actions {
		ref := audit.ActionRef{Kind: a.Kind, Seconds: a.Seconds, Text: a.Text, N: a.N, Rule: a.Rule, Shadow: a.Shadow}
		if !a.Shadow && a.Kind != rules.ActStrike {
			ref.ID = ActionID(ev.ID, subject, a.Rule, i)
		}
		rec.Actions = append(rec.Actions, ref)
	}
	return rec
}

// scrubText cuts what the user wrote (the message text, in any case, and the
// application message) out of a rule's runtime error, which expr words with
// the values involved: the audit log holds no message text.
func scrubText(msg string, ev *Event) string {
	for _, s := range []string{ev.Base.Text, strings.ToLower(ev.Base.Text), ev.Base.ApplyMsg} {
		if len(s) >= 3 && strings.Contains(msg, s) {
			msg = strings.ReplaceAll(msg, s, "[message text]")
		}
	}
	return msg
}

// audit writes a record for an event with no decisions.
func (e *Engine) audit(ev *Event, set *rules.Set, start time.Time, result, errText string) {
	rec := &audit.Record{
		Time: ev.Received, Kind: audit.KindDecision, EventID: ev.ID, Command: ev.Command, Event: string(ev.Kind),
		Group: ev.Base.GroupID, RulesVersion: set.Version, Result: result, Error: errText,
		LatencyUS: e.cfg.Now().Sub(start).Microseconds(),
	}
	if len(ev.Subjects) == 1 {
		rec.User = ev.Subjects[0]
	}
	line, err := audit.Encode(rec)
	if err != nil {
		e.log.Error("encode audit record", "event_id", ev.ID, "err", err)
		return
	}
	e.cfg.Audit.WriteLine(line)
}
