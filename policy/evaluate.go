package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/timguard/timguard/audit"
	"strconv"
	"strings"

	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/tim"
)

// State is what the store told us about an event: the values rules read.
type State struct {
	// Counters by counter index in the rule set, after this event's touch.
	Counters []int
	// SubjectCounters overrides Counters per subject for events with
	// several subjects (a counter keyed by user differs per member).
	SubjectCounters map[string][]int
	// Strikes and Roles per subject.
	Strikes map[string]int
	Roles   map[string]string
	// Modes switched on.
	Modes map[string]bool
	// Budgets maps a budgeted rule to the actions it took in its window in
	// this group.
	Budgets map[string]int
	// FirstSeen and Messages are the subjects' activity in the group, when
	// the rules read it: user.first_seen (zero: first seen now) and
	// user.messages. Without them (the store could not be read) a subject
	// reads first seen at the zero time and no messages.
	FirstSeen map[string]time.Time
	Messages  map[string]int
}

// firstSeen is user.first_seen of user: when the store never saw them
// before, now.
func (st *State) firstSeen(user string, now time.Time) time.Time {
	if st.FirstSeen == nil {
		return time.Time{}
	}
	if t := st.FirstSeen[user]; !t.IsZero() {
		return t
	}
	return now
}

// Options tune evaluation.
type Options struct {
	// DryRun puts every rule in shadow mode.
	DryRun bool
	// AppAdmin is the App admin account; it has the app_admin role.
	AppAdmin string
	// Trace records every rule evaluated, not only those that matched.
	Trace bool
}

// Decision is what the rules decided about one subject of one event. It is
// data, and it has one JSON shape wherever it is printed: the audit log's
// decision record is a Decision as it is, and `bot simulate`, `bot replay
// --json`, `bot check -v`, POST /v1/simulate and GET /v1/decisions print
// the same value. The field names are part of timguard's contract
// (docs/audit.md); the first ones are the audit record's since its first
// version.
type Decision struct {
	// Time is when the callback arrived.
	Time time.Time `json:"time"`
	// Kind is always "decision" (audit.KindDecision).
	Kind    string     `json:"kind"`
	EventID string     `json:"event_id,omitempty"`
	Command string     `json:"command,omitempty"`
	Event   rules.Kind `json:"event,omitempty"`
	Group   string     `json:"group,omitempty"`
	User    string     `json:"user,omitempty"`
	Role    rules.Role `json:"role,omitempty"`
	// Verdict is the strictest verdict of the rules that took effect.
	Verdict rules.Verdict `json:"verdict,omitempty"`
	// Rules are the rules that matched and took effect.
	Rules        []string        `json:"rules"`
	RulesVersion string          `json:"rules_version,omitempty"`
	Actions      []PlannedAction `json:"actions,omitempty"`
	// Shadow is true when a rule matched in shadow (or dry_run is on).
	Shadow      bool     `json:"shadow"`
	ShadowRules []string `json:"shadow_rules,omitempty"`
	// Budget names rules that were switched to shadow because their
	// budget for this group was spent.
	Budget []string `json:"budget_exceeded,omitempty"`
	// Words are the list entries the matched rules found in the event's
	// text (as the lists write them: words managers wrote, not the
	// message), sorted, each once.
	Words []string `json:"words,omitempty"`
	// Result says how the decision came about when not in the usual way
	// (audit.ResultDegraded, audit.ResultDup, ...).
	Result string `json:"result,omitempty"`
	// Error joins the rules' runtime errors (redacted: no values, no
	// message text) and any store failure.
	Error string `json:"error,omitempty"`
	// LatencyUS is the time from the callback's arrival to the decision,
	// measured by the engine (0 where nothing was measured).
	LatencyUS int64 `json:"latency_us"`
	// ReplyCode is the ErrorCode answered to the IM server, when not 0.
	ReplyCode int `json:"reply_code,omitempty"`
	// Reply is the winning rule's custom answer.
	Reply *rules.Reply `json:"reply,omitempty"`
	// ShadowVerdict is the strictest verdict the rules matched in shadow
	// would have given.
	ShadowVerdict rules.Verdict `json:"shadow_verdict,omitempty"`
	// State is what the store said about the subject when it was decided.
	State *StateRead `json:"state,omitempty"`
	// Trace is the rules evaluated: those that matched or failed, and with
	// Options.Trace every rule of the event's kind.
	Trace []Step `json:"trace,omitempty"`

	// Errors are the rules' runtime errors, redacted, one each.
	Errors []string `json:"-"`
	// Rewritten is the message after a rewrite verdict. It is message
	// text, so it is never printed with the decision (the reply holds it).
	Rewritten []tim.MsgElem `json:"-"`
	// failures are the rules that failed while they ran, for the metric
	// and the log line the engine writes about them.
	failures []ruleFailure
}

// StateRead is the stored state a decision read.
type StateRead struct {
	// Counters are the values of the counters the event's kind reads or
	// touches, after this event's touch, in the rule file's order.
	Counters Counts `json:"counters,omitempty"`
	Strikes  int    `json:"strikes"`
	// Modes are the modes on, when a rule of the kind depends on one.
	Modes []string `json:"modes,omitempty"`
}

// Count is one counter's value.
type Count struct {
	Name  string
	Value int
}

// Counts prints as a JSON object from counter name to value, in order.
type Counts []Count

// MarshalJSON writes {"name": value, ...}.
func (c Counts) MarshalJSON() ([]byte, error) {
	return appendCounts(nil, c), nil
}

// UnmarshalJSON reads {"name": value, ...}, keeping the order.
func (c *Counts) UnmarshalJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return fmt.Errorf("counters: want an object from name to count")
	}
	out := Counts{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("counters: %w", err)
		}
		name, _ := tok.(string)
		var v int
		if err := dec.Decode(&v); err != nil {
			return fmt.Errorf("counters.%s: %w", name, err)
		}
		out = append(out, Count{Name: name, Value: v})
	}
	*c = out
	return nil
}

// eventful reports whether the decision did or would have done anything.
func (d *Decision) eventful() bool {
	return d.Verdict != rules.None || len(d.Actions) > 0 || len(d.ShadowRules) > 0 || len(d.Errors) > 0 || len(d.Rules) > 0
}

// PlannedAction is an action a rule decided, with the rule's name.
type PlannedAction struct {
	// ID names the action in the outbox (ActionID); empty for strikes and
	// shadow actions, which are never enqueued.
	ID string `json:"id,omitempty"`
	rules.Resolved
	Rule string `json:"rule,omitempty"`
	// Shadow actions are audited but not carried out.
	Shadow bool `json:"shadow,omitempty"`
	// Roles are the privileged roles the rule may act on.
	Roles []rules.Role `json:"-"`
}

// Step is one rule evaluated for one subject.
type Step struct {
	Rule    string `json:"rule"`
	Matched bool   `json:"matched"`
	// Shadow is true when the rule matched in shadow: it took no effect.
	Shadow bool `json:"shadow,omitempty"`
	// Verdict is the verdict a matched rule gave, or would have given in
	// shadow.
	Verdict rules.Verdict `json:"verdict,omitempty"`
	// If is the rule's condition, in a full trace.
	If string `json:"if,omitempty"`
	// Skipped says why the rule was not evaluated (exempt: admin, mode
	// night is off, stopped by rule X).
	Skipped string `json:"skipped,omitempty"`
	// Error is the rule's runtime error with every value replaced by
	// [value].
	Error string `json:"error,omitempty"`
	// Detail is the whole error, values included, in a full trace only:
	// never in the audit log.
	Detail string `json:"detail,omitempty"`
}

// Outcome is the answer to the IM server and the decisions behind it.
type Outcome struct {
	Reply     tim.Reply
	Decisions []Decision
}

// Evaluate decides ev against set with the state read from the store. It is
// pure: no I/O, no clock.
func Evaluate(set *rules.Set, ev *Event, st *State, opts Options) Outcome {
	out := Outcome{Reply: tim.OK()}
	if ev.Kind == "" {
		return out
	}
	ev.prepare(set.Plan(ev.Kind))
	env := set.Env()
	defer env.Release()
	in := ev.Base
	env.Fill(&in)
	return evaluate(set, ev, st, opts, env)
}

// evaluate is Evaluate with an environment already filled from ev.Base.
func evaluate(set *rules.Set, ev *Event, st *State, opts Options, env *rules.Env) Outcome {
	out, _ := evaluateBudgets(set, ev, st, opts, env, false)
	return out
}

// evaluateBudgets is evaluate; with unread, st.Budgets was not read: a
// budgeted rule that matches with actions is taken as within its budget,
// and the second result says one did, for the caller to read the budgets
// and evaluate again. The outcome stands only when it is false.
func evaluateBudgets(set *rules.Set, ev *Event, st *State, opts Options, env *rules.Env, unread bool) (Outcome, bool) {
	out := Outcome{Reply: tim.OK()}
	plan := set.Plan(ev.Kind)
	env.SetCounters(st.Counters)
	budgets := &budgetUse{spent: st.Budgets, unread: unread}
	out.Decisions = make([]Decision, 0, len(ev.Subjects))
	for si, user := range ev.Subjects {
		role := roleOf(user, st.Roles, opts.AppAdmin)
		strikes := st.Strikes[user]
		env.SetUser(user, role, strikes)
		env.SetActivity(st.firstSeen(user, ev.Received), st.Messages[user])
		if sc, ok := st.SubjectCounters[user]; ok {
			env.SetCounters(sc)
		}
		d := decide(set, plan, ev, env, si, user, role, strikes, st, budgets, opts)
		out.Decisions = append(out.Decisions, d)
	}
	out.Reply = reply(ev, out.Decisions)
	for i := range out.Decisions {
		out.Decisions[i].ReplyCode = out.Reply.ErrorCode
	}
	return out, budgets.needed
}

// budgetUse is the actions budgeted rules took in their window: those the
// store counted (spent, which evaluation leaves as it is) and those this
// event's earlier subjects decided (added, made on the first). With
// unread, spent is not known: needed says a budget decided something.
type budgetUse struct {
	spent, added   map[string]int
	unread, needed bool
}

func (b *budgetUse) used(rule string) int { return b.spent[rule] + b.added[rule] }

func (b *budgetUse) add(rule string, n int) {
	if b.added == nil {
		b.added = map[string]int{}
	}
	b.added[rule] += n
}

func roleOf(user string, roles map[string]string, appAdmin string) rules.Role {
	if user != "" && user == appAdmin {
		return rules.RoleAppAdmin
	}
	if r := rules.Role(roles[user]); r.Valid() {
		return r
	}
	return rules.RoleMember
}

// decide evaluates every rule of the plan for subject number si.
func decide(set *rules.Set, plan *rules.Plan, ev *Event, env *rules.Env, si int, user string, role rules.Role, strikes int, st *State, budgets *budgetUse, opts Options) Decision {
	d := Decision{
		Time: ev.Received, Kind: audit.KindDecision,
		EventID: ev.ID, Event: ev.Kind, Command: ev.Command, Group: ev.Base.GroupID,
		User: user, Role: role, RulesVersion: set.Version,
		State: stateRead(plan, st, user, strikes),
	}
	var winner *rules.Rule
	var rewriters []*rules.Rule
	for ri, r := range plan.Rules {
		if r.Mode != "" && !st.Modes[r.Mode] {
			if opts.Trace {
				d.Trace = append(d.Trace, Step{Rule: r.Name, If: r.Source, Skipped: "mode " + r.Mode + " is off"})
			}
			continue
		}
		if r.IsExempt(role) {
			if opts.Trace {
				d.Trace = append(d.Trace, Step{Rule: r.Name, If: r.Source, Skipped: "exempt: " + string(role)})
			}
			continue
		}
		matched, err := r.Match(env)
		if err != nil {
			d.addError(ev, r, err, opts.Trace)
			continue
		}
		if !matched {
			if opts.Trace {
				d.Trace = append(d.Trace, Step{Rule: r.Name, If: r.Source})
			}
			continue
		}
		var words []string
		if r.LooksUpWords() {
			words = r.MatchedWords(env)
			d.Words = mergeWords(d.Words, words)
		}
		actions := resolveActions(ev, r, env, &d, opts.Trace, rules.Placeholders{User: user, Rule: r.Name, Words: words})
		shadow := r.Shadow || opts.DryRun
		if !shadow && r.Budget != nil && len(actions) > 0 {
			budgets.needed = budgets.unread
			if budgets.used(r.Name)+len(actions) > r.Budget.Actions {
				shadow = true
				d.Budget = append(d.Budget, r.Name)
			} else {
				budgets.add(r.Name, len(actions))
			}
		}
		step := Step{Rule: r.Name, Matched: true, Shadow: shadow, Verdict: r.Verdict}
		if opts.Trace {
			step.If = r.Source
		}
		d.Trace = append(d.Trace, step)
		if shadow {
			d.ShadowRules = append(d.ShadowRules, r.Name)
			if r.Verdict != rules.None && (d.ShadowVerdict == rules.None || r.Verdict.Stricter(d.ShadowVerdict, ev.Kind)) {
				d.ShadowVerdict = r.Verdict
			}
			for _, a := range actions {
				a.Shadow = true
				d.Actions = append(d.Actions, a)
			}
			continue
		}
		d.Rules = append(d.Rules, r.Name)
		for _, a := range actions {
			if a.Kind == rules.ActStrike {
				// Later rules see the strikes earlier rules gave.
				strikes += a.N
				env.SetUser(user, role, strikes)
			}
			d.Actions = append(d.Actions, a)
		}
		if r.Verdict != rules.None && (winner == nil || r.Verdict.Stricter(winner.Verdict, ev.Kind)) {
			winner = r
		}
		if r.Verdict == rules.Rewrite {
			rewriters = append(rewriters, r)
		}
		if r.Stop {
			if opts.Trace {
				for _, rest := range plan.Rules[ri+1:] {
					d.Trace = append(d.Trace, Step{Rule: rest.Name, If: rest.Source, Skipped: "stopped by rule " + r.Name})
				}
			}
			break
		}
	}
	d.Shadow = len(d.ShadowRules) > 0
	if winner != nil {
		d.Verdict = winner.Verdict
		d.Reply = winner.Reply
		if winner.HasPlaceholders() {
			d.Reply = winner.FillReply(placeholdersOf(winner, env, user, d.Actions, ev.Received))
		}
	}
	if d.Verdict == rules.Rewrite {
		body := ev.Body
		for i, r := range rewriters {
			if i > 0 {
				env.SetText(strings.Join(tim.Texts(body), "\n"))
			}
			next, err := r.Rewrite.Apply(env, body)
			if err != nil {
				d.addError(ev, r, err, opts.Trace)
				continue
			}
			body = next
		}
		d.Rewritten = body
	}
	if d.Verdict == rules.Reject || d.Verdict == rules.Hold {
		// A rejected or held applicant is not admitted, whatever another
		// matching rule's actions say.
		d.Actions = slices.DeleteFunc(d.Actions, func(a PlannedAction) bool { return !a.Shadow && a.Kind == rules.ActAdmit })
	}
	if d.Verdict == rules.Approve && ev.Kind == rules.JoinRequest {
		d.Actions = append(d.Actions, PlannedAction{Resolved: rules.Resolved{Kind: rules.ActAdmit}, Rule: winner.Name, Roles: winner.AppliesToRoles()})
	}
	d.Actions = mergeActions(d.Actions)
	for i := range d.Actions {
		if a := &d.Actions[i]; !a.Shadow && a.Kind != rules.ActStrike {
			a.ID = ActionID(ev.ID, si, a.Rule, i)
		}
	}
	if d.Rules == nil {
		d.Rules = []string{}
	}
	if len(d.Errors) > 0 {
		d.Error = strings.Join(d.Errors, "; ")
	}
	return d
}

// stateRead is what the rules of plan read about one subject.
func stateRead(plan *rules.Plan, st *State, user string, strikes int) *StateRead {
	if len(plan.Rules) == 0 && len(plan.Counters) == 0 {
		return nil
	}
	// The StateRead and its counts in one allocation when they fit.
	buf := &stateReadCounts{}
	sr := &buf.StateRead
	sr.Strikes = strikes
	if len(plan.Counters) > 0 {
		values := st.Counters
		if sc, ok := st.SubjectCounters[user]; ok {
			values = sc
		}
		if len(plan.Counters) <= len(buf.counts) {
			sr.Counters = buf.counts[:0:len(plan.Counters)]
		} else {
			sr.Counters = make(Counts, 0, len(plan.Counters))
		}
		for _, cu := range plan.Counters {
			v := 0
			if i := cu.Counter.Index; i < len(values) {
				v = values[i]
			}
			sr.Counters = append(sr.Counters, Count{Name: cu.Counter.Name, Value: v})
		}
	}
	if plan.UsesModes {
		for m, on := range st.Modes {
			if on {
				sr.Modes = append(sr.Modes, m)
			}
		}
		slices.Sort(sr.Modes)
	}
	return sr
}

// stateReadCounts is a StateRead with room for the counts of most kinds.
type stateReadCounts struct {
	StateRead
	counts [3]Count
}

// resolveActions works out the durations of r's actions for the subject,
// and fills the placeholders of its warn texts with p ({until} from the
// rule's own mute).
func resolveActions(ev *Event, r *rules.Rule, env *rules.Env, d *Decision, trace bool, p rules.Placeholders) []PlannedAction {
	if len(r.Actions) == 0 {
		return nil
	}
	out := make([]PlannedAction, 0, len(r.Actions))
	var from []*rules.Action
	for _, a := range r.Actions {
		res, err := a.Resolve(env)
		if err != nil {
			d.addError(ev, r, err, trace)
			continue
		}
		out = append(out, PlannedAction{Resolved: res, Rule: r.Name, Roles: r.AppliesToRoles()})
		from = append(from, a)
	}
	if r.HasPlaceholders() {
		resolved := make([]rules.Resolved, len(out))
		for i := range out {
			resolved[i] = out[i].Resolved
		}
		p.Until, p.Forever = rules.UntilOf(resolved, ev.Received)
		for i := range out {
			from[i].Fill(&out[i].Resolved, p)
		}
	}
	return out
}

// placeholdersOf works out the placeholders of rule r's reply for the
// subject: {until} from the rule's own actions among those decided.
func placeholdersOf(r *rules.Rule, env *rules.Env, user string, decided []PlannedAction, now time.Time) rules.Placeholders {
	p := rules.Placeholders{User: user, Rule: r.Name}
	if r.LooksUpWords() {
		p.Words = r.MatchedWords(env)
	}
	var own []rules.Resolved
	for _, a := range decided {
		if a.Rule == r.Name && !a.Shadow {
			own = append(own, a.Resolved)
		}
	}
	p.Until, p.Forever = rules.UntilOf(own, now)
	return p
}

// mergeWords adds words to have, sorted, each once.
func mergeWords(have, words []string) []string {
	if len(words) == 0 {
		return have
	}
	out := append(have, words...)
	slices.Sort(out)
	return slices.Compact(out)
}

// ruleFailure is one rule that failed while it ran, with its redacted
// reason.
type ruleFailure struct{ rule, reason string }

// addError records that rule r failed while it ran. Errors and the trace
// step hold the reason without the values involved and without what the
// user wrote (they reach the audit log, which holds no message text); a
// full trace (trace) keeps the whole reason in the step's detail for the
// person testing the rule.
func (d *Decision) addError(ev *Event, r *rules.Rule, err error, trace bool) {
	redacted := scrubText(rules.Redact(err), ev)
	d.Errors = append(d.Errors, "rule "+r.Name+": "+redacted)
	d.failures = append(d.failures, ruleFailure{rule: r.Name, reason: redacted})
	step := Step{Rule: r.Name, Error: redacted}
	if trace {
		step.If, step.Detail = r.Source, err.Error()
	}
	d.Trace = append(d.Trace, step)
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

// mergeActions folds actions of several rules on one subject into what will
// be done: the longest mute, ban and group mute; strikes added up; one kick
// (which makes a mute of the same user pointless); texts deduplicated.
// Shadow actions are kept as they are, for the audit.
func mergeActions(in []PlannedAction) []PlannedAction {
	if len(in) < 2 {
		return in
	}
	out := make([]PlannedAction, 0, len(in))
	index := map[string]int{}
	kicked := false
	for _, a := range in {
		if !a.Shadow && a.Kind == rules.ActKick {
			kicked = true
		}
	}
	for _, a := range in {
		if a.Shadow {
			out = append(out, a)
			continue
		}
		if kicked && (a.Kind == rules.ActMute || a.Kind == rules.ActUnmute) {
			continue
		}
		key := string(a.Kind)
		if a.Kind == rules.ActWarn {
			key += "|" + a.Text
		}
		i, seen := index[key]
		if !seen {
			index[key] = len(out)
			out = append(out, a)
			continue
		}
		switch a.Kind {
		case rules.ActMute, rules.ActBan, rules.ActMuteGroup:
			if a.Seconds > out[i].Seconds {
				out[i] = a
			}
		case rules.ActStrike:
			out[i].N += a.N
		}
	}
	return out
}

// reply merges the subjects' decisions into the answer to the IM server.
func reply(ev *Event, ds []Decision) tim.Reply {
	r := tim.OK()
	switch ev.Kind {
	case rules.JoinRequest, rules.Message:
		if len(ds) == 0 {
			return r
		}
		d := ds[0]
		switch d.Verdict {
		case rules.Reject, rules.Block:
			setRefusal(&r, d.Reply)
		case rules.Drop:
			r.ErrorCode = tim.CodeDrop
		case rules.Rewrite:
			r.MsgBody = d.Rewritten
			if len(r.MsgBody) == 0 {
				// An empty message cannot be delivered: drop it.
				r.MsgBody = nil
				r.ErrorCode = tim.CodeDrop
			}
		}
	case rules.Invite:
		var refused []string
		var first *rules.Reply
		for _, d := range ds {
			if d.Verdict == rules.Refuse {
				if len(refused) == 0 {
					first = d.Reply
				}
				refused = append(refused, d.User)
			}
		}
		switch {
		case len(refused) == 0:
		case len(refused) == len(ds):
			setRefusal(&r, first)
		default:
			r.RefusedMembers = refused
		}
	}
	return r
}

func setRefusal(r *tim.Reply, custom *rules.Reply) {
	r.ErrorCode = tim.CodeRefuse
	if custom != nil {
		r.ErrorCode = custom.Code
		r.ErrorInfo = custom.Text
	}
}

// ActionID names the i-th action decided for subject n of an event. It is
// deterministic, so a decision committed twice enqueues each action once.
func ActionID(eventID string, subject int, rule string, i int) string {
	return eventID + "/" + strconv.Itoa(subject) + "/" + rule + "/" + strconv.Itoa(i)
}
