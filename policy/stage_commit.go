package policy

import (
	"context"
	"log/slog"
	"time"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/store"
)

// committer is the third stage: it writes what the decisions imply
// (strikes, actions, budget use and the eventful decisions' records) to the
// store in one round trip, and keeps the commit in the spool when the store
// does not take it, before the callback is answered.
type committer struct {
	store   Store
	breaker *breaker
	// keep spools a commit the store did not take and says where it is.
	keep     func(req store.CommitRequest, cause error) string
	observer Observer
	log      *slog.Logger
	now      func() time.Time
}

func (s *committer) exec(ctx context.Context, c *call) {
	if c.settled || len(c.out.Decisions) == 0 {
		return
	}
	ev := c.ev
	// The decisions are encoded before the commit: the store keeps the
	// eventful ones' records.
	c.lines = c.encode(s.now(), s.log)
	req := commitRequest(c.set, ev, c.out)
	// The recent-decision log keeps decisions that did something (a
	// verdict, an action, a shadow match, an error); a clean message costs
	// no second round trip. The audit log has every decision.
	for i, d := range c.out.Decisions {
		if i < len(c.lines) && d.eventful() {
			req.Decisions = append(req.Decisions, store.DecisionRecord{Time: ev.Received, Group: d.Group, User: d.User, Body: c.lines[i]})
		}
	}
	// Without the store, only effects are worth a second try.
	worth := len(req.Actions) > 0 || len(req.Strikes) > 0 || len(req.Touch) > 0 || len(req.Decisions) > 0
	if !worth || (c.result == audit.ResultDegraded && len(req.Actions) == 0 && len(req.Strikes) == 0) {
		return
	}
	var err error
	if s.breaker.down() {
		err = errStoreDown
	} else {
		// Not cancelled with the request: a decision made is committed
		// even when the IM server hung up. The store bounds the call.
		err = s.store.Commit(context.WithoutCancel(ctx), req)
		s.breaker.note(err)
	}
	if err == nil {
		return
	}
	if s.observer != nil {
		s.observer.StoreError("commit")
	}
	// Whatever the error, the decision is kept (on disk with a journal)
	// before the callback is answered, and retried (DrainSpool).
	kept := s.keep(req, err)
	s.log.Warn("commit decision: the store did not take it", "event_id", ev.ID,
		"actions", len(req.Actions), "strikes", len(req.Strikes), "kept", kept, "err", err)
	c.errText = joinErr(c.errText, "commit: "+err.Error()+" ("+kept+")")
	c.lines = nil
}

// commitRequest gathers strikes, actions and budget use from the decisions.
func commitRequest(set *rules.Set, ev *Event, out Outcome) store.CommitRequest {
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
				ID: ActionID(ev.ID, si, a.Rule, i), Kind: string(a.Kind), Group: d.Group, GroupType: ev.Base.GroupType,
				Seconds: a.Seconds, Rule: a.Rule, EventID: ev.ID, Roles: roleNames(a.Roles), Created: ev.Received,
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

// roleNames is roles as the store keeps them.
func roleNames(roles []rules.Role) []string {
	if roles == nil {
		return nil
	}
	out := make([]string, len(roles))
	for i, r := range roles {
		out[i] = string(r)
	}
	return out
}
