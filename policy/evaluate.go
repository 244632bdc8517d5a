package policy

import (
	"slices"
	"strconv"
	"strings"
	"time"

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
// data: the audit record, `bot simulate` and the admin API print it as is.
type Decision struct {
	EventID      string          `json:"event_id"`
	Event        rules.Kind      `json:"event"`
	Command      string          `json:"command"`
	Group        string          `json:"group"`
	User         string          `json:"user,omitempty"`
	Role         string          `json:"role,omitempty"`
	Verdict      rules.Verdict   `json:"verdict"`
	Reply        *rules.Reply    `json:"reply,omitempty"`
	Rules        []string        `json:"rules"`
	Shadow       []string        `json:"shadow,omitempty"`
	Actions      []PlannedAction `json:"actions"`
	Rewritten    []tim.MsgElem   `json:"rewritten,omitempty"`
	Trace        []Step          `json:"trace,omitempty"`
	RulesVersion string          `json:"rules_version"`
	Errors       []string        `json:"errors,omitempty"`
	// Words are the list entries the matched rules found in the event's
	// text (as the lists write them: words managers wrote, not the
	// message), sorted, each once.
	Words []string `json:"words,omitempty"`
	// failures are the rules that failed while they ran, for the metric
	// and the log line the engine writes about them.
	failures []ruleFailure
	// Budget names rules that were switched to shadow because their
	// budget for this group was spent.
	Budget []string `json:"budget_exceeded,omitempty"`
}

// eventful reports whether the decision did or would have done anything.
func (d *Decision) eventful() bool {
	return d.Verdict != rules.None || len(d.Actions) > 0 || len(d.Shadow) > 0 || len(d.Errors) > 0 || len(d.Rules) > 0
}

// PlannedAction is an action a rule decided, with the rule's name.
type PlannedAction struct {
	rules.Resolved
	Rule string `json:"rule"`
	// Shadow actions are audited but not carried out.
	Shadow bool `json:"shadow,omitempty"`
	// Roles are the privileged roles the rule may act on.
	Roles []string `json:"-"`
}

// Step is one rule evaluated for one subject.
type Step struct {
	Rule    string `json:"rule"`
	Matched bool   `json:"matched"`
	Shadow  bool   `json:"shadow,omitempty"`
	// Skipped says why the rule was not evaluated (exempt: admin, mode
	// night is off).
	Skipped string `json:"skipped,omitempty"`
	Error   string `json:"error,omitempty"`
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
	out := Outcome{Reply: tim.OK()}
	plan := set.Plan(ev.Kind)
	env.SetCounters(st.Counters)
	budgets := budgetUse(st.Budgets)
	out.Decisions = make([]Decision, 0, len(ev.Subjects))
	for _, user := range ev.Subjects {
		role := roleOf(user, st.Roles, opts.AppAdmin)
		strikes := st.Strikes[user]
		env.SetUser(user, role, strikes)
		env.SetActivity(st.firstSeen(user, ev.Received), st.Messages[user])
		if sc, ok := st.SubjectCounters[user]; ok {
			env.SetCounters(sc)
		}
		d := decide(set, plan, ev, env, user, role, strikes, st, budgets, opts)
		out.Decisions = append(out.Decisions, d)
	}
	out.Reply = reply(ev, out.Decisions)
	return out
}

func budgetUse(in map[string]int) map[string]int {
	out := make(map[string]int, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}

func roleOf(user string, roles map[string]string, appAdmin string) string {
	if user != "" && user == appAdmin {
		return rules.RoleAppAdmin
	}
	if r := roles[user]; r != "" {
		return r
	}
	return rules.RoleMember
}

// decide evaluates every rule of the plan for one subject.
func decide(set *rules.Set, plan *rules.Plan, ev *Event, env *rules.Env, user, role string, strikes int, st *State, budgets map[string]int, opts Options) Decision {
	d := Decision{
		EventID: ev.ID, Event: ev.Kind, Command: ev.Command, Group: ev.Base.GroupID,
		User: user, Role: role, RulesVersion: set.Version,
	}
	var winner *rules.Rule
	var rewriters []*rules.Rule
	for _, r := range plan.Rules {
		if r.Mode != "" && !st.Modes[r.Mode] {
			if opts.Trace {
				d.Trace = append(d.Trace, Step{Rule: r.Name, Skipped: "mode " + r.Mode + " is off"})
			}
			continue
		}
		if r.IsExempt(role) {
			if opts.Trace {
				d.Trace = append(d.Trace, Step{Rule: r.Name, Skipped: "exempt: " + role})
			}
			continue
		}
		matched, err := r.Match(env)
		if err != nil {
			d.addError(r, err, true)
			continue
		}
		if !matched {
			if opts.Trace {
				d.Trace = append(d.Trace, Step{Rule: r.Name})
			}
			continue
		}
		var words []string
		if r.LooksUpWords() {
			words = r.MatchedWords(env)
			d.Words = mergeWords(d.Words, words)
		}
		actions := resolveActions(r, env, &d, opts.Trace, rules.Placeholders{User: user, Rule: r.Name, Words: words}, ev.Received)
		shadow := r.Shadow || opts.DryRun
		if !shadow && r.Budget != nil && len(actions) > 0 {
			if budgets[r.Name]+len(actions) > r.Budget.Actions {
				shadow = true
				d.Budget = append(d.Budget, r.Name)
			} else {
				budgets[r.Name] += len(actions)
			}
		}
		d.Trace = append(d.Trace, Step{Rule: r.Name, Matched: true, Shadow: shadow})
		if shadow {
			d.Shadow = append(d.Shadow, r.Name)
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
			break
		}
	}
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
				d.addError(r, err, opts.Trace)
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
	if d.Rules == nil {
		d.Rules = []string{}
	}
	if d.Actions == nil {
		d.Actions = []PlannedAction{}
	}
	return d
}

// resolveActions works out the durations of r's actions for the subject,
// and fills the placeholders of its warn texts with p ({until} from the
// rule's own mute).
func resolveActions(r *rules.Rule, env *rules.Env, d *Decision, trace bool, p rules.Placeholders, now time.Time) []PlannedAction {
	if len(r.Actions) == 0 {
		return nil
	}
	out := make([]PlannedAction, 0, len(r.Actions))
	var from []*rules.Action
	for _, a := range r.Actions {
		res, err := a.Resolve(env)
		if err != nil {
			d.addError(r, err, trace)
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
		p.Until, p.Forever = rules.UntilOf(resolved, now)
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

// addError records that rule r failed while it ran. Errors holds the reason
// without the values involved (it reaches the audit log, which holds no
// message text); with trace, a step of the trace keeps the whole reason for
// the person testing the rule.
func (d *Decision) addError(r *rules.Rule, err error, trace bool) {
	redacted := rules.Redact(err)
	d.Errors = append(d.Errors, "rule "+r.Name+": "+redacted)
	d.failures = append(d.failures, ruleFailure{rule: r.Name, reason: redacted})
	if trace {
		d.Trace = append(d.Trace, Step{Rule: r.Name, Error: err.Error()})
	}
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
		key := a.Kind
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
