package policy

import (
	"context"
	"log/slog"
	"time"

	"github.com/timguard/timguard/rules"
)

// recorder is the last stage: it writes one audit record per decision (one
// for the event when no rule was evaluated), tells the observer, and logs
// the rules that failed while they ran and those out of budget.
type recorder struct {
	audit    AuditSink
	now      func() time.Time
	observer Observer
	log      *slog.Logger
	failures *failureLog
	budgets  *budgetWarner
}

func (s *recorder) exec(_ context.Context, c *call) {
	ev := c.ev
	if len(c.out.Decisions) == 0 {
		d := eventDecision(ev, c.set, c.result, c.errText)
		d.LatencyUS = s.now().Sub(c.start).Microseconds()
		if line, err := EncodeDecision(&d); err != nil {
			s.log.Error("encode audit record", "event_id", ev.ID, "err", err)
		} else {
			s.audit.WriteLine(line)
		}
	} else {
		if c.lines == nil {
			c.lines = c.encode(s.now(), s.log)
		}
		for _, l := range c.lines {
			s.audit.WriteLine(l)
		}
	}
	if c.quiet {
		return
	}
	s.observe(c)
	for _, d := range c.out.Decisions {
		for _, r := range d.Budget {
			s.budgets.warn(s.log, r, d.Group, ev.Received)
		}
	}
}

func (s *recorder) observe(c *call) {
	ev := c.ev
	for _, d := range c.out.Decisions {
		for _, f := range d.failures {
			s.ruleFailed(ev, f)
		}
	}
	if s.observer == nil {
		return
	}
	latency := s.now().Sub(c.start)
	if len(c.out.Decisions) == 0 {
		s.observer.Decided(ev.Command, rules.None, latency)
	}
	for _, d := range c.out.Decisions {
		s.observer.Decided(ev.Command, d.Verdict, latency)
		for _, r := range d.Rules {
			s.observer.RuleMatched(r, false)
		}
		for _, r := range d.ShadowRules {
			s.observer.RuleMatched(r, true)
		}
	}
}

// ruleFailed counts a rule that failed while it ran and logs it: a rule
// whose expression fails on real events does nothing, and the audit
// record's error field alone is easy to miss.
func (s *recorder) ruleFailed(ev *Event, f ruleFailure) {
	if s.observer != nil {
		s.observer.RuleFailed(f.rule)
	}
	if missed, ok := s.failures.toLog("rule "+f.rule, ev.Received); ok {
		s.log.Warn("a rule failed while it ran; the event was decided without it",
			"rule", f.rule, "err", f.reason, "event_id", ev.ID, "command", ev.Command, "since_last", missed)
	}
}
