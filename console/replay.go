package console

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/timguard/timguard/policy"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/tim"
)

// Replayer replays recorded callbacks under the rules in force and under a
// candidate rule set, and reports the decisions that would change. The
// recorder's replay package implements it; the console shows its report
// side by side.
type Replayer interface {
	Replay(ctx context.Context, current, candidate *rules.Set) (ReplayReport, error)
}

// ReplayReport is what a replay found.
type ReplayReport struct {
	// Source says what was replayed ("recorded callbacks of the last 24h").
	Source                     string
	Events, Decisions, Skipped int
	Changes                    []ReplayChange
}

// ReplayChange is one decision the candidate rules would make differently.
type ReplayChange struct {
	Time          time.Time
	Event         string
	Group, User   string
	Before, After Outline
	// What lists the differences in words.
	What []string
}

// Outline is the part of a decision a replay compares.
type Outline struct {
	Verdict string
	Reply   string
	Rules   []string
	Actions []string
}

// outlineOf outlines a decision and the reply the event got.
func outlineOf(d policy.Decision, reply tim.Reply) Outline {
	o := Outline{Verdict: string(d.Verdict), Rules: slices.Clone(d.Rules)}
	if reply.ErrorCode != 0 {
		o.Reply = strconv.Itoa(reply.ErrorCode) + " " + reply.ErrorInfo
	}
	for _, a := range d.Actions {
		if !a.Shadow {
			o.Actions = append(o.Actions, a.Resolved.String())
		}
	}
	slices.Sort(o.Actions)
	return o
}

// diff lists how b differs from a.
func (a Outline) diff(b Outline) []string {
	var out []string
	none := func(s string) string {
		if s == "" {
			return "none"
		}
		return s
	}
	if a.Verdict != b.Verdict {
		out = append(out, fmt.Sprintf("verdict %s → %s", none(a.Verdict), none(b.Verdict)))
	}
	if a.Reply != b.Reply {
		out = append(out, fmt.Sprintf("reply %s → %s", none(a.Reply), none(b.Reply)))
	}
	if !slices.Equal(a.Rules, b.Rules) {
		out = append(out, fmt.Sprintf("rules [%s] → [%s]", strings.Join(a.Rules, " "), strings.Join(b.Rules, " ")))
	}
	if !slices.Equal(a.Actions, b.Actions) {
		out = append(out, fmt.Sprintf("actions [%s] → [%s]", strings.Join(a.Actions, ", "), strings.Join(b.Actions, ", ")))
	}
	return out
}

// replayBodies replays callback bodies, one JSON object a line, under both
// sets with the store state every counter the event touches at 1 and no
// strikes: the state `bot replay` assumes when no recorder kept the real
// one.
func replayBodies(data []byte, current, candidate *rules.Set, appAdmin string, now time.Time) ReplayReport {
	rep := ReplayReport{Source: "the callbacks pasted below, with every counter the event touches at 1 and no strikes"}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		body := bytes.TrimSpace(sc.Bytes())
		if len(body) == 0 {
			continue
		}
		cb, err := tim.DecodeCallback("", body)
		if err != nil {
			rep.Skipped++
			continue
		}
		before, bReply := evaluateAssumed(current, cb, body, appAdmin, now)
		after, aReply := evaluateAssumed(candidate, cb, body, appAdmin, now)
		if after == nil && before == nil {
			rep.Skipped++
			continue
		}
		rep.Events++
		for i := range max(len(before), len(after)) {
			rep.Decisions++
			var b, a policy.Decision
			if i < len(before) {
				b = before[i]
			}
			if i < len(after) {
				a = after[i]
			}
			ob, oa := outlineOf(b, bReply), outlineOf(a, aReply)
			what := ob.diff(oa)
			if len(what) == 0 {
				continue
			}
			ch := ReplayChange{Time: now, Event: string(cmp(a.Event, b.Event)), Group: cmp(a.Group, b.Group), User: cmp(a.User, b.User),
				Before: ob, After: oa, What: what}
			rep.Changes = append(rep.Changes, ch)
		}
	}
	return rep
}

func cmp[T ~string](a, b T) T {
	if a != "" {
		return a
	}
	return b
}

// evaluateAssumed decides one callback under set, with no side effects.
func evaluateAssumed(set *rules.Set, cb tim.Event, body []byte, appAdmin string, now time.Time) ([]policy.Decision, tim.Reply) {
	ev := policy.NewEvent(cb, body, now)
	if ev.Kind == "" {
		return nil, tim.OK()
	}
	st, subjectAdmin, err := policy.Assume(set, ev, policy.Assumed{TouchedCountsOne: true})
	if err != nil {
		return nil, tim.OK()
	}
	if subjectAdmin != "" {
		appAdmin = subjectAdmin
	}
	out := policy.Evaluate(set, ev, st, policy.Options{AppAdmin: appAdmin, Trace: true})
	return out.Decisions, out.Reply
}
