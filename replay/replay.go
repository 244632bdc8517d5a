// Package replay evaluates recorded callbacks against rule sets with the
// state recorded with them (counters, strikes, roles, modes, budgets), so
// rate and escalation rules decide as they did, and lists the decisions
// that a candidate rule set would make differently from the rules in force:
// verdict, reply code and text, matched rules, shadow matches, actions,
// rewrites and errors. Nothing is read from or written to the store and
// nothing is called.
package replay

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/timguard/timguard/policy"
	"github.com/timguard/timguard/record"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/tim"
)

// Options tune a replay.
type Options struct {
	// AppAdmin is the App admin account (tencent.admin).
	AppAdmin string
	// Now is the arrival time of callback bodies that have none (lines of
	// callback bodies alone); time.Now when zero.
	Now time.Time
	// Since and Until, when set, leave out entries that arrived before
	// Since or at or after Until.
	Since, Until time.Time
	// Trace keeps every rule evaluated in the views, not only matches.
	Trace bool
	// MaxChanges bounds the changes Compare keeps (Summary.Changed counts
	// them all); 0 keeps every one.
	MaxChanges int
}

// Result is one callback evaluated under one rule set.
type Result struct {
	Event   *policy.Event
	Outcome policy.Outcome
	// Assumed is true when the callback carries no recorded state: the
	// counters the event touches read 1, strikes 0, every subject is a
	// member and no mode is on.
	Assumed bool
	// Unrecorded names the counters the rules read that the recording
	// does not hold; they read 1 when the event touches them, else 0.
	Unrecorded []string
}

// Evaluate decides one recorded callback under set with the state recorded
// with it. known, when not nil, tells which counters the recording holds
// values for (by name); a counter it maps to false is treated as
// unrecorded even if the entry holds a value for it (the rule set counts
// something else under that name).
func Evaluate(set *rules.Set, e record.Entry, opts Options, known map[string]bool) (Result, error) {
	cb, err := tim.DecodeCallback(e.Command, e.Body)
	if err != nil {
		return Result{}, err
	}
	at := e.Time
	if at.IsZero() {
		at = opts.Now
		if at.IsZero() {
			at = time.Now()
		}
	}
	ev := policy.NewEvent(cb, e.Body, at)
	ev.Platform = e.Platform
	if e.EventID != "" {
		ev.ID = e.EventID
	}
	res := Result{Event: ev}
	if ev.Kind == "" {
		res.Outcome = policy.Outcome{Reply: tim.OK()}
		return res, nil
	}
	var st *policy.State
	appAdmin := opts.AppAdmin
	if e.State == nil {
		res.Assumed = true
		st, _, err = policy.Assume(set, ev, policy.Assumed{TouchedCountsOne: true})
		if err != nil {
			return Result{}, err
		}
	} else {
		st, res.Unrecorded = stateFor(set, ev, e.State, known)
	}
	res.Outcome = policy.Evaluate(set, ev, st, policy.Options{AppAdmin: appAdmin, Trace: opts.Trace})
	return res, nil
}

// stateFor builds the policy state of ev under set from what was recorded.
func stateFor(set *rules.Set, ev *policy.Event, rec *record.State, known map[string]bool) (*policy.State, []string) {
	st := &policy.State{
		Counters: make([]int, len(set.Counters)),
		Strikes:  make(map[string]int, len(ev.Subjects)),
		Roles:    make(map[string]string, len(ev.Subjects)),
		Modes:    make(map[string]bool, len(rec.Modes)),
	}
	for _, m := range rec.Modes {
		st.Modes[m] = true
	}
	if len(rec.Budgets) > 0 {
		st.Budgets = make(map[string]int, len(rec.Budgets))
		for k, v := range rec.Budgets {
			st.Budgets[k] = v
		}
	}
	if len(ev.Subjects) > 1 {
		st.SubjectCounters = make(map[string][]int, len(ev.Subjects))
	}
	var unrecorded []string
	plan := set.Plan(ev.Kind)
	for si, u := range ev.Subjects {
		s := rec.Subjects[u]
		st.Strikes[u] = s.Strikes
		if s.Role != "" {
			st.Roles[u] = s.Role
		}
		if s.FirstSeen != nil || plan.Users.Read {
			// Activity not recorded reads as Assume has it: first seen
			// now, the event's own message counted.
			if st.FirstSeen == nil {
				st.FirstSeen = make(map[string]time.Time, len(ev.Subjects))
				st.Messages = make(map[string]int, len(ev.Subjects))
			}
			switch {
			case s.FirstSeen != nil:
				st.FirstSeen[u], st.Messages[u] = *s.FirstSeen, s.Messages
			case plan.Users.Count:
				st.FirstSeen[u], st.Messages[u] = ev.Received, 1
			default:
				st.FirstSeen[u] = ev.Received
			}
		}
		vals := st.Counters
		if st.SubjectCounters != nil {
			vals = make([]int, len(set.Counters))
			st.SubjectCounters[u] = vals
		}
		for _, cu := range plan.Counters {
			name := cu.Counter.Name
			v, ok := s.Counters[name]
			if ok && known != nil && !known[name] {
				ok = false
			}
			if !ok {
				if !slices.Contains(unrecorded, name) {
					unrecorded = append(unrecorded, name)
				}
				v = 0
				if cu.Touch {
					v = 1
				}
			}
			vals[cu.Counter.Index] = v
		}
		if si == 0 && st.SubjectCounters != nil {
			copy(st.Counters, vals)
		}
	}
	return st, unrecorded
}

// View is one decision as a replay shows it, side by side with the other
// rule set's.
type View struct {
	Verdict string `json:"verdict"`
	// ReplyCode and ReplyText are what the IM server is answered for this
	// subject (0 and "" when it is let through).
	ReplyCode int           `json:"reply_code,omitempty"`
	ReplyText string        `json:"reply_text,omitempty"`
	Rules     []string      `json:"rules"`
	Shadow    []string      `json:"shadow,omitempty"`
	Actions   []string      `json:"actions"`
	Rewritten []tim.MsgElem `json:"rewritten,omitempty"`
	Errors    []string      `json:"errors,omitempty"`
	Trace     []policy.Step `json:"trace,omitempty"`
}

// ViewOf shows decision i of a result.
func ViewOf(r Result, i int) View {
	if i >= len(r.Outcome.Decisions) {
		return View{Verdict: "none", Rules: []string{}, Actions: []string{}}
	}
	d := r.Outcome.Decisions[i]
	v := View{
		Verdict: verdictName(d.Verdict), Rules: slices.Clone(d.Rules), Shadow: d.ShadowRules,
		Rewritten: d.Rewritten, Errors: d.Errors, Trace: d.Trace, Actions: []string{},
	}
	if v.Rules == nil {
		v.Rules = []string{}
	}
	for _, a := range d.Actions {
		if !a.Shadow {
			v.Actions = append(v.Actions, a.Resolved.String())
		}
	}
	slices.Sort(v.Actions)
	v.ReplyCode, v.ReplyText = replyOf(r, d)
	return v
}

// replyOf is what the IM server is answered for d's subject.
func replyOf(r Result, d policy.Decision) (int, string) {
	switch r.Event.Kind {
	case rules.JoinRequest, rules.Message:
		return r.Outcome.Reply.ErrorCode, r.Outcome.Reply.ErrorInfo
	}
	if !d.Verdict.Refuses() {
		return 0, ""
	}
	if d.Reply != nil {
		return d.Reply.Code, d.Reply.Text
	}
	return tim.CodeRefuse, ""
}

func verdictName(v rules.Verdict) string {
	if v == rules.None {
		return "none"
	}
	return string(v)
}

// Change is one decision that the candidate rules make differently from
// the current ones.
type Change struct {
	File    string    `json:"file,omitempty"`
	Line    int       `json:"line"`
	Time    time.Time `json:"time,omitzero"`
	EventID string    `json:"event_id"`
	Event   string    `json:"event"`
	Command string    `json:"command"`
	Group   string    `json:"group"`
	User    string    `json:"user,omitempty"`
	// Subject is the decision's position among the event's subjects.
	Subject int `json:"subject"`
	// Fields names what changed: verdict, reply, rules, shadow, actions,
	// rewrite, errors.
	Fields []string `json:"fields"`
	// Changes says how, one phrase per field ("verdict none -> block").
	Changes   []string `json:"changes"`
	Current   View     `json:"current"`
	Candidate View     `json:"candidate"`
	// Before and After are the whole decisions under the current and the
	// candidate rules, in the shape the audit log, `bot simulate`, `bot
	// check -v` and the admin API print. Before is nil when the current
	// rules made no decision for this subject.
	Before *policy.Decision `json:"before"`
	After  *policy.Decision `json:"after"`
	// AssumedState is true when no state was recorded with the event.
	AssumedState bool `json:"assumed_state,omitempty"`
	// TextHashed is true when the recording holds hashes of the texts:
	// rules reading words in them cannot match as they did.
	TextHashed bool `json:"text_hashed,omitempty"`
}

// Compare diffs views a (current) and b (candidate): the fields that
// changed and a phrase for each.
func Compare(a, b View) (fields, changes []string) {
	add := func(field, format string, args ...any) {
		fields = append(fields, field)
		changes = append(changes, fmt.Sprintf(format, args...))
	}
	if a.Verdict != b.Verdict {
		add("verdict", "verdict %s -> %s", a.Verdict, b.Verdict)
	}
	if a.ReplyCode != b.ReplyCode || a.ReplyText != b.ReplyText {
		add("reply", "reply %s -> %s", replyText(a), replyText(b))
	}
	if !slices.Equal(a.Rules, b.Rules) {
		add("rules", "rules %v -> %v", a.Rules, b.Rules)
	}
	if !slices.Equal(a.Shadow, b.Shadow) {
		add("shadow", "shadow %v -> %v", orEmpty(a.Shadow), orEmpty(b.Shadow))
	}
	if !slices.Equal(a.Actions, b.Actions) {
		add("actions", "actions %v -> %v", a.Actions, b.Actions)
	}
	if ra, rb := texts(a.Rewritten), texts(b.Rewritten); !sameBody(a.Rewritten, b.Rewritten) {
		add("rewrite", "rewrite %q -> %q", ra, rb)
	}
	if !slices.Equal(a.Errors, b.Errors) {
		add("errors", "errors %q -> %q", orEmpty(a.Errors), orEmpty(b.Errors))
	}
	return fields, changes
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func replyText(v View) string {
	if v.ReplyCode == 0 && v.ReplyText == "" {
		return "ok"
	}
	if v.ReplyText == "" {
		return fmt.Sprint(v.ReplyCode)
	}
	return fmt.Sprintf("%d %q", v.ReplyCode, v.ReplyText)
}

func texts(body []tim.MsgElem) string {
	if body == nil {
		return ""
	}
	return strings.Join(tim.Texts(body), "\n")
}

func sameBody(a, b []tim.MsgElem) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && string(ja) == string(jb)
}

// Summary counts what a replay went through.
type Summary struct {
	// CurrentVersion and CandidateVersion are the rule sets' versions.
	CurrentVersion   string `json:"current_version"`
	CandidateVersion string `json:"candidate_version"`
	// Events were evaluated; Decisions counts their subjects.
	Events    int `json:"events"`
	Decisions int `json:"decisions"`
	// Changed decisions differ between the two rule sets.
	Changed int `json:"changed"`
	// Skipped lines were neither entries nor callbacks, or did not decode.
	Skipped int `json:"skipped"`
	// Assumed events had no recorded state (callback bodies alone, or
	// events no rule read state for when they were recorded).
	Assumed int `json:"assumed_state"`
	// Hashed events hold hashes of their texts.
	Hashed int `json:"text_hashed"`
	// Degraded events were decided without the store when recorded.
	Degraded int `json:"degraded"`
	// Unrecorded names the counters a rule set read that the recording
	// holds no value for, or that the candidate counts differently from
	// the current rules.
	Unrecorded []string `json:"unrecorded_counters,omitempty"`
	// Mismatched counts decisions recorded under the current rules (same
	// version, texts kept) that the replay of the current rules does not
	// reproduce: the recording lacks something they read.
	Mismatched int `json:"mismatched"`
	// First and Last are the arrival times of the first and last entry.
	First time.Time `json:"first,omitzero"`
	Last  time.Time `json:"last,omitzero"`
}

// Report is a whole replay: the summary and the changes kept.
type Report struct {
	Summary Summary  `json:"summary"`
	Changes []Change `json:"changes"`
	// Truncated is true when more changes were found than MaxChanges.
	Truncated bool `json:"truncated,omitempty"`
}

// Run replays src under the current and the candidate rule sets and
// collects the changes (at most opts.MaxChanges of them).
func Run(current, candidate *rules.Set, src Source, opts Options) (*Report, error) {
	rep := &Report{Changes: []Change{}}
	sum, err := Diff(current, candidate, src, opts, func(c Change) {
		if opts.MaxChanges > 0 && len(rep.Changes) >= opts.MaxChanges {
			rep.Truncated = true
			return
		}
		rep.Changes = append(rep.Changes, c)
	})
	rep.Summary = sum
	return rep, err
}

// Diff replays src under the current and the candidate rule sets and calls
// each for every decision that changes, in the order of the source.
func Diff(current, candidate *rules.Set, src Source, opts Options, each func(Change)) (Summary, error) {
	sum := Summary{CurrentVersion: current.Version, CandidateVersion: candidate.Version}
	curKnown, candKnown := knownCounters(current, current), knownCounters(current, candidate)
	unrecorded := map[string]bool{}
	for {
		it, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var le *record.LineError
			if errors.As(err, &le) {
				sum.Skipped++
				continue
			}
			return sum, err
		}
		e := it.Entry
		if !e.Time.IsZero() {
			if (!opts.Since.IsZero() && e.Time.Before(opts.Since)) || (!opts.Until.IsZero() && !e.Time.Before(opts.Until)) {
				continue
			}
		}
		before, err := Evaluate(current, e, opts, curKnown)
		if err != nil {
			sum.Skipped++
			continue
		}
		if before.Event.Kind == "" {
			continue
		}
		after, err := Evaluate(candidate, e, opts, candKnown)
		if err != nil {
			sum.Skipped++
			continue
		}
		sum.Events++
		if !e.Time.IsZero() {
			if sum.First.IsZero() || e.Time.Before(sum.First) {
				sum.First = e.Time
			}
			if e.Time.After(sum.Last) {
				sum.Last = e.Time
			}
		}
		if before.Assumed {
			sum.Assumed++
		}
		hashed := e.Text == record.TextHash
		if hashed {
			sum.Hashed++
		}
		if e.Degraded {
			sum.Degraded++
		}
		for _, n := range slices.Concat(before.Unrecorded, after.Unrecorded) {
			unrecorded[n] = true
		}
		if !hashed && !before.Assumed && e.RulesVersion == current.Version {
			sum.Mismatched += mismatches(before, e.Decided)
		}
		ev := before.Event
		for i := range after.Outcome.Decisions {
			sum.Decisions++
			a, b := ViewOf(before, i), ViewOf(after, i)
			if !opts.Trace {
				a.Trace, b.Trace = nil, nil
			}
			fields, changes := Compare(a, b)
			if len(fields) == 0 {
				continue
			}
			sum.Changed++
			d := after.Outcome.Decisions[i]
			var was *policy.Decision
			if i < len(before.Outcome.Decisions) {
				was = &before.Outcome.Decisions[i]
			}
			each(Change{
				Before: was, After: &after.Outcome.Decisions[i],
				File: it.File, Line: it.Line, Time: e.Time, EventID: ev.ID, Event: string(ev.Kind), Command: ev.Command,
				Group: d.Group, User: d.User, Subject: i, Fields: fields, Changes: changes, Current: a, Candidate: b,
				AssumedState: before.Assumed, TextHashed: hashed,
			})
		}
	}
	for n := range unrecorded {
		sum.Unrecorded = append(sum.Unrecorded, n)
	}
	slices.Sort(sum.Unrecorded)
	return sum, nil
}

// knownCounters says, for each counter of set, whether a recording made
// under the current rules holds its values: a counter the current rules
// declare the same way.
func knownCounters(current, set *rules.Set) map[string]bool {
	defs := make(map[string]string, len(current.Counters))
	for _, c := range current.Counters {
		defs[c.Name] = c.Definition()
	}
	out := make(map[string]bool, len(set.Counters))
	for _, c := range set.Counters {
		def, ok := defs[c.Name]
		out[c.Name] = ok && def == c.Definition()
	}
	return out
}

// mismatches counts the decisions of r that differ from those recorded.
func mismatches(r Result, recorded []record.Decided) int {
	if len(recorded) == 0 {
		return 0
	}
	n := 0
	for i, d := range r.Outcome.Decisions {
		if i >= len(recorded) {
			n++
			continue
		}
		rd := recorded[i]
		var actions []string
		for _, a := range d.Actions {
			if !a.Shadow {
				actions = append(actions, a.Resolved.String())
			}
		}
		if string(d.Verdict) != rd.Verdict || !slices.Equal(d.Rules, orEmpty(rd.Rules)) || !slices.Equal(actions, rd.Actions) {
			n++
		}
	}
	return n
}
