package console

import (
	"bytes"
	"context"
	"slices"
	"time"

	"github.com/timguard/timguard/policy"
	"github.com/timguard/timguard/replay"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/tim"
)

// Replayer replays the recorded callbacks under the rules in force and a
// candidate rule set. The app implements it over the recorder's files.
type Replayer interface {
	// Replay returns the report and a few words on what was replayed.
	Replay(ctx context.Context, current, candidate *rules.Set) (*replay.Report, string, error)
}

// replayView is a replay as the rules page shows it.
type replayView struct {
	Source string
	*replay.Report
}

// maxChanges bounds the changes a page shows.
const maxChanges = 500

// replayPasted replays callback bodies pasted in the playground, one JSON
// object a line, with no recorded state: the counters the event touches
// read 1, strikes 0.
func replayPasted(data []byte, current, candidate *rules.Set, appAdmin string, now time.Time) (*replay.Report, error) {
	src := replay.NewReader("pasted", bytes.NewReader(data))
	return replay.Run(current, candidate, src, replay.Options{AppAdmin: appAdmin, Now: now, MaxChanges: maxChanges})
}

// actionsOf lists a decision's actions that are carried out.
func actionsOf(d policy.Decision) []string {
	var out []string
	for _, a := range d.Actions {
		if !a.Shadow {
			out = append(out, a.Resolved.String())
		}
	}
	slices.Sort(out)
	return out
}

// evaluateAssumed decides one callback under set with no side effects, the
// counters the event touches at 1 and no strikes (as `bot simulate` does
// without --state).
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
