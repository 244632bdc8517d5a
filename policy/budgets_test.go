package policy

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/store/memory"
	"github.com/timguard/timguard/tim"
)

// enrichLog is a memory store that keeps the keys of the counters each
// Enrich read, and fails the reads of budgets alone when failBudgets is set.
type enrichLog struct {
	*memory.Store
	mu          sync.Mutex
	reads       [][]string
	failBudgets bool
}

func (s *enrichLog) Enrich(ctx context.Context, req store.EnrichRequest) (store.EnrichResult, error) {
	keys := make([]string, 0, len(req.Counters))
	for _, c := range req.Counters {
		keys = append(keys, c.Key)
	}
	s.mu.Lock()
	s.reads = append(s.reads, keys)
	fail := s.failBudgets && len(req.Strikes) == 0 && len(keys) > 0 && strings.HasPrefix(keys[0], budgetPrefix)
	s.mu.Unlock()
	if fail {
		return store.EnrichResult{}, errors.New("budgets: connection reset")
	}
	return s.Store.Enrich(ctx, req)
}

// take returns the reads since the last take.
func (s *enrichLog) take() [][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.reads
	s.reads = nil
	return r
}

func budgetKeys(keys []string) []string {
	var out []string
	for _, k := range keys {
		if strings.HasPrefix(k, budgetPrefix) {
			out = append(out, k)
		}
	}
	return out
}

func joinEvent(t *testing.T, at int64, users ...string) *Event {
	t.Helper()
	members := make([]any, len(users))
	for i, u := range users {
		members[i] = map[string]any{"Member_Account": u}
	}
	return eventFrom(t, tim.CmdAfterNewMemberJoin, map[string]any{
		"GroupId": "g", "Type": "Public", "JoinType": "Apply", "EventTime": at, "NewMemberList": members,
	})
}

// A budget is read only when a budgeted rule matched with actions: in a
// second round trip, after which the rules are evaluated again with it. With
// a Recorder, every event reads its budgets in the first, as the records keep
// them.
func TestBudgetsAreReadWhenABudgetedRuleMatches(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	newEngine := func(st *enrichLog, rec Recorder) (*Engine, *lines) {
		l := &lines{}
		return New(Config{Rules: fixedRules{mustRules(t, engineRules)}, Store: st, Audit: l, Recorder: rec,
			Now: func() time.Time { return now }}), l
	}
	send := func(e *Engine, ev *Event) {
		ev.Received, ev.Base.Now = now, now
		e.Handle(context.Background(), ev)
	}
	want := budgetKey("raid", "g")

	t.Run("without a Recorder", func(t *testing.T) {
		st := &enrichLog{Store: memory.New(memory.Options{})}
		e, l := newEngine(st, nil)
		// joins 1..3: raid matches at the third (more than 2).
		for i, wantReads := range []int{1, 1, 2, 2} {
			send(e, joinEvent(t, int64(i+1), "u"+string(rune('a'+i))))
			reads := st.take()
			if len(reads) != wantReads {
				t.Fatalf("join %d: %d store reads %v, want %d", i+1, len(reads), reads, wantReads)
			}
			if got := budgetKeys(reads[0]); len(got) != 0 {
				t.Errorf("join %d: the first read has the budgets %v", i+1, got)
			}
			if wantReads == 2 && !slices.Equal(reads[1], []string{want}) {
				t.Errorf("join %d: the second read is %v, want only %q", i+1, reads[1], want)
			}
		}
		rec := l.last()
		if !slices.Equal(rec.Budget, []string{"raid"}) || !rec.Shadow || len(l.all) != 4 {
			t.Fatalf("fourth join %+v; want raid over budget (its one action taken by the third), in shadow", rec)
		}
		if pending, _ := st.Pending(context.Background(), 10); len(pending) != 1 || pending[0].Kind != "mute_group" {
			t.Errorf("outbox %+v, want the third join's one group mute", pending)
		}
	})

	t.Run("with a Recorder", func(t *testing.T) {
		st := &enrichLog{Store: memory.New(memory.Options{})}
		e, _ := newEngine(st, &keptRecords{})
		send(e, joinEvent(t, 1, "a"))
		reads := st.take()
		if len(reads) != 1 || !slices.Equal(budgetKeys(reads[0]), []string{want}) {
			t.Errorf("reads %v, want one with the budget %q", reads, want)
		}
	})

	t.Run("a budget that cannot be read", func(t *testing.T) {
		st := &enrichLog{Store: memory.New(memory.Options{}), failBudgets: true}
		e, l := newEngine(st, nil)
		for i, u := range []string{"a", "b", "c"} {
			send(e, joinEvent(t, int64(i+1), u))
		}
		rec := l.last()
		if rec.Result != audit.ResultDegraded || !strings.Contains(rec.Error, "read budgets: budgets: connection reset") {
			t.Errorf("record result %q error %q; want degraded, naming the failed read", rec.Result, rec.Error)
		}
		if len(rec.Budget) != 0 || len(rec.Actions) != 1 || rec.Actions[0].Kind != "mute_group" {
			t.Errorf("record %+v; want the group mute, as within budget", rec)
		}
		if pending, _ := st.Pending(context.Background(), 10); len(pending) != 1 {
			t.Errorf("outbox %+v, want the group mute", pending)
		}
	})
}

// The second evaluation sees what the first saw: the event's own text
// (the first's rewrites had changed message.text for the rules after
// them), and every budget of the kind, also those of rules the first
// evaluation never reached (past a budgeted stop rule it took as within
// budget).
func TestTheSecondEvaluationStartsAfresh(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	run := func(t *testing.T, src string, rec Recorder, events []*Event) (*lines, *memory.Store) {
		t.Helper()
		st := memory.New(memory.Options{})
		l := &lines{}
		e := New(Config{Rules: fixedRules{mustRules(t, src)}, Store: st, Audit: l, Recorder: rec, Now: func() time.Time { return now }})
		for _, ev := range events {
			ev.Received, ev.Base.Now = now, now
			e.Handle(context.Background(), ev)
		}
		return l, st
	}
	t.Run("rewritten text", func(t *testing.T) {
		const src = `version: 1
rules:
  - {name: r1, on: message, if: 'message.text contains "bad"', verdict: rewrite, rewrite: {text: 'replace(message.text, "bad", "good")'}}
  - {name: r2, on: message, if: 'true', verdict: rewrite, rewrite: {text: 'message.text + "!"'}}
  - {name: b, on: message, if: 'message.text contains "bad"', actions: [{mute: 1m}], budget: {actions: 5, per: 1m}}
`
		for _, rec := range []Recorder{nil, &keptRecords{}} {
			l, _ := run(t, src, rec, []*Event{msgEvent(t, "eve", "bad word")})
			got := l.last()
			if !slices.Equal(got.Rules, []string{"r1", "r2", "b"}) || len(got.Actions) != 1 || got.Actions[0].Kind != "mute" {
				t.Errorf("recorder %v: rules %v actions %+v; want r1, r2 and b with its mute", rec != nil, got.Rules, got.Actions)
			}
		}
	})
	t.Run("a budget the first evaluation did not reach", func(t *testing.T) {
		const src = `version: 1
rules:
  - {name: a, on: member_joined, if: 'true', actions: [{mute_group: 1m}], budget: {actions: 1, per: 15m}, stop: true}
  - {name: b, on: member_joined, if: 'true', actions: [{mute_group: 2m}], budget: {actions: 1, per: 15m}}
`
		for _, rec := range []Recorder{nil, &keptRecords{}} {
			// Join 1: a acts and stops. Join 2: a is over budget (shadow,
			// no stop), b acts. Join 3: both are over budget.
			l, st := run(t, src, rec, []*Event{joinEvent(t, 1, "a"), joinEvent(t, 2, "b"), joinEvent(t, 3, "c")})
			if got := l.last(); !slices.Equal(got.Budget, []string{"a", "b"}) {
				t.Errorf("recorder %v: the third join's budget_exceeded is %v, want [a b]", rec != nil, got.Budget)
			}
			if pending, _ := st.Pending(context.Background(), 10); len(pending) != 2 {
				t.Errorf("recorder %v: %d group mutes in the outbox, want 2 (one per budget)", rec != nil, len(pending))
			}
		}
	})
}
