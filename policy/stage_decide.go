package policy

import (
	"context"
	"log/slog"
	"sync/atomic"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/rules"
)

// decider is the second stage: it evaluates the rules against the state
// enrich read (pure, in memory), or, when the store could not be read,
// decides as the kind's fail mode says.
type decider struct {
	dryRun    *atomic.Bool
	appAdmin  string
	failModes map[rules.Kind]FailMode
	observer  Observer
	log       *slog.Logger
	// recorder, when set, hears every evaluated callback (record:).
	recorder Recorder
}

func (s *decider) exec(_ context.Context, c *call) {
	if c.settled {
		if c.result == "" {
			// Nothing to evaluate: recorded without state, as a candidate
			// rule set replayed later may read some.
			s.record(c, nil, false)
		}
		return
	}
	opts := Options{DryRun: s.dryRun.Load(), AppAdmin: s.appAdmin}
	if c.cause == nil {
		c.out = evaluate(c.set, c.ev, c.state, opts, c.env)
		s.record(c, c.state, false)
		return
	}
	ev := c.ev
	if s.observer != nil {
		s.observer.StoreError("enrich")
	}
	s.log.Warn("store unavailable; deciding without it", "event_id", ev.ID, "command", ev.Command, "err", c.cause)
	c.result, c.errText = audit.ResultDegraded, c.cause.Error()
	if s.failModes[ev.Kind] == FailClosed && !ev.Kind.IsAfter() {
		c.out = failClosed(c.set, ev)
		s.record(c, nil, true)
		return
	}
	st := &State{Counters: make([]int, len(c.set.Counters))}
	c.out = Evaluate(c.set, ev, st, opts)
	s.record(c, st, true)
}

// record hands an evaluated callback to the recorder, if there is one.
func (s *decider) record(c *call, st *State, degraded bool) {
	if s.recorder != nil {
		s.recorder.Record(Recorded{Event: c.ev, Rules: c.set, State: st, Outcome: c.out, Degraded: degraded})
	}
}

// failClosed refuses every subject of ev with the kind's strictest verdict.
func failClosed(set *rules.Set, ev *Event) Outcome {
	out := Outcome{}
	verdict := strictest(ev.Kind)
	for _, user := range ev.Subjects {
		out.Decisions = append(out.Decisions, Decision{
			Time: ev.Received, Kind: audit.KindDecision,
			EventID: ev.ID, Event: ev.Kind, Command: ev.Command, Group: ev.Base.GroupID, User: user,
			Verdict: verdict, Rules: []string{}, RulesVersion: set.Version,
			Errors: []string{"store unavailable: failed closed"}, Error: "store unavailable: failed closed",
		})
	}
	out.Reply = reply(ev, out.Decisions)
	for i := range out.Decisions {
		out.Decisions[i].ReplyCode = out.Reply.ErrorCode
	}
	return out
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
