package policy

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/tim"
)

// This file runs the tests kept beside rules (rules/ruletests.go reads and
// compiles them): `bot check`, LoadRules and every reload run them against
// the whole set, with the state each assumes (assume.go).

// TestFailure is a test kept beside a rule that did not get what it expects.
type TestFailure struct {
	File  string
	Rule  string
	Test  string
	Line  int
	Diffs []string
}

func (f TestFailure) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s:%d: rule %q test %s failed:", f.File, f.Line, f.Rule, f.Test)
	for _, d := range f.Diffs {
		b.WriteString("\n    ")
		b.WriteString(d)
	}
	return b.String()
}

// TestsError lists every failing kept test.
type TestsError struct {
	Failures []TestFailure
	Total    int
}

func (e *TestsError) Error() string {
	lines := make([]string, 0, len(e.Failures)+1)
	for _, f := range e.Failures {
		lines = append(lines, f.String())
	}
	lines = append(lines, fmt.Sprintf("%d of %d rule tests failed", len(e.Failures), e.Total))
	return strings.Join(lines, "\n")
}

// testClock is the time kept tests run at unless they set state.now.
var testClock = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// RunTests runs every test kept beside the rules of set against the whole
// set, and returns how many ran and the failures.
func RunTests(set *rules.Set) (total int, failures []TestFailure) {
	for _, r := range set.Rules {
		for _, t := range r.Tests {
			total++
			if diffs := runTest(set, t); len(diffs) > 0 {
				failures = append(failures, TestFailure{File: set.File, Rule: r.Name, Test: t.Name, Line: t.Line, Diffs: diffs})
			}
		}
	}
	return total, failures
}

// TestResult is a kept test's outcome, for `bot check -v`.
type TestResult struct {
	Rule     string
	Test     string
	Decision Decision
	Reply    tim.Reply
}

func runTest(set *rules.Set, t *rules.Test) []string {
	out, d := EvaluateTest(set, t)
	var diffs []string
	ex := t.Expect
	if ex.Verdict != nil && *ex.Verdict != d.Verdict {
		diffs = append(diffs, fmt.Sprintf("verdict: want %s, got %s", verdictName(*ex.Verdict), verdictName(d.Verdict)))
	}
	if ex.Matched != nil {
		matched := slices.Contains(d.Rules, t.Rule.Name) || slices.Contains(d.ShadowRules, t.Rule.Name)
		if matched != *ex.Matched {
			diffs = append(diffs, fmt.Sprintf("matched: want %v, got %v (rule %s)", *ex.Matched, matched, t.Rule.Name))
		}
	}
	if ex.HasActions {
		want := make([]string, len(ex.Actions))
		for i, a := range ex.Actions {
			want[i] = a.String()
		}
		var got []string
		for _, a := range d.Actions {
			if !a.Shadow {
				got = append(got, a.Resolved.String())
			}
		}
		if !sameSet(want, got) {
			diffs = append(diffs, fmt.Sprintf("actions: want %s, got %s", list(want), list(got)))
		}
	}
	if ex.Rules != nil && !sameSet(ex.Rules, d.Rules) {
		diffs = append(diffs, fmt.Sprintf("rules: want %s, got %s", list(ex.Rules), list(d.Rules)))
	}
	if ex.Shadow != nil && !sameSet(ex.Shadow, d.ShadowRules) {
		diffs = append(diffs, fmt.Sprintf("shadow: want %s, got %s", list(ex.Shadow), list(d.ShadowRules)))
	}
	if ex.Reply != nil && (ex.Reply.Code != out.Reply.ErrorCode || ex.Reply.Text != out.Reply.ErrorInfo) {
		diffs = append(diffs, fmt.Sprintf("reply: want code %d %q, got code %d %q", ex.Reply.Code, ex.Reply.Text, out.Reply.ErrorCode, out.Reply.ErrorInfo))
	}
	if ex.Text != nil {
		got := strings.Join(tim.Texts(d.Rewritten), "\n")
		if d.Rewritten == nil {
			got = "(not rewritten)"
		}
		if got != *ex.Text {
			diffs = append(diffs, fmt.Sprintf("text: want %q, got %q", *ex.Text, got))
		}
	}
	for _, e := range d.Errors {
		diffs = append(diffs, "error: "+e)
	}
	if len(diffs) > 0 && len(d.Rules)+len(d.ShadowRules) > 0 {
		diffs = append(diffs, fmt.Sprintf("(matched rules: %s; shadow: %s)", list(d.Rules), list(d.ShadowRules)))
	}
	return diffs
}

// EvaluateTest evaluates a kept test's event with its state and returns the
// outcome and the decision for its first subject.
func EvaluateTest(set *rules.Set, t *rules.Test) (Outcome, Decision) {
	now := testClock
	if !t.State.Now.IsZero() {
		now = t.State.Now
	}
	ev := NewEvent(t.Event, t.Body, now)
	st, appAdmin, err := Assume(set, ev, Assumed{Counters: t.State.Counters, Strikes: t.State.Strikes, Role: t.State.Role, Modes: t.State.Modes,
		Messages: t.State.Messages, SeenFor: t.State.SeenFor})
	if err != nil {
		// The rule compiler checked the test's state already.
		panic(fmt.Sprintf("rule %s test %s: %v", t.Rule.Name, t.Name, err))
	}
	opts := Options{Trace: true, AppAdmin: appAdmin}
	out := Evaluate(set, ev, st, opts)
	var d Decision
	if len(out.Decisions) > 0 {
		d = out.Decisions[0]
	}
	return out, d
}

func verdictName(v rules.Verdict) string {
	if v == rules.None {
		return "none"
	}
	return string(v)
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	x, y := slices.Clone(a), slices.Clone(b)
	sort.Strings(x)
	sort.Strings(y)
	return slices.Equal(x, y)
}

func list(s []string) string {
	if len(s) == 0 {
		return "[]"
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// LoadRules reads and compiles a rule file and runs the tests kept beside its
// rules. It returns the set only when everything passed.
func LoadRules(path string) (*rules.Set, error) {
	set, err := rules.Load(path)
	if err != nil {
		return nil, err
	}
	return set, CheckTests(set)
}

// CheckTests runs the set's kept tests; the error lists every failure.
func CheckTests(set *rules.Set) error {
	total, failures := RunTests(set)
	if len(failures) > 0 {
		return &TestsError{Failures: failures, Total: total}
	}
	return nil
}
