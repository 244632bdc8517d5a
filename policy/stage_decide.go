package policy

import (
	"context"
	"log/slog"
	"sync/atomic"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/rules"
)

// decider is the second stage: it evaluates the rules against the state
// enrich read (in memory), or, when the store could not be read, decides as
// the kind's fail mode says. When a budgeted rule matched with actions and
// enrich did not read the budgets, it has every budget of the kind read
// (readBudgets, a second round trip: the second evaluation may reach
// budgeted rules the first did not, past a stop rule now over budget) and
// evaluates again from the event's own fields; should that read fail, the
// first evaluation stands, its actions as if within budget, as in a
// degraded decision, and the record says so.
type decider struct {
	dryRun    *atomic.Bool
	appAdmin  string
	failModes map[rules.Kind]FailMode
	observer  Observer
	log       *slog.Logger
	// recorder, when set, hears every evaluated callback (record:).
	recorder Recorder
	// readBudgets reads the kind's budgets into the call's state
	// (enricher).
	readBudgets func(ctx context.Context, c *call) error
}

func (s *decider) exec(ctx context.Context, c *call) {
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
		out, needed := evaluateBudgets(c.set, c.ev, c.state, opts, c.env, c.budgetsUnread)
		if needed {
			// Not cancelled with the request, as commit is not: a
			// budget must not give way because the IM server hung up.
			if err := s.readBudgets(context.WithoutCancel(ctx), c); err != nil {
				if s.observer != nil {
					s.observer.StoreError("budgets")
				}
				s.log.Warn("budgets unreadable; the rules' actions go as if within budget", "event_id", c.ev.ID, "command", c.ev.Command, "err", err)
				c.result, c.errText = audit.ResultDegraded, "read budgets: "+err.Error()
			} else {
				// Evaluation changed the environment (a rewrite sets
				// message.text for the rules after it): start again
				// from the event.
				in := c.ev.Base
				c.env.Fill(&in)
				out, _ = evaluateBudgets(c.set, c.ev, c.state, opts, c.env, false)
			}
		}
		c.out = out
		s.record(c, c.state, c.result == audit.ResultDegraded)
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
