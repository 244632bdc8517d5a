package policy

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/tim"
)

// Each stage is tested on its own here, on a call as the stage before
// leaves it; engine_test.go tests them together.

// countingStore counts the calls a stage makes.
type countingStore struct {
	enriches, commits int
	commitErr         error
}

func (s *countingStore) Enrich(context.Context, store.EnrichRequest) (store.EnrichResult, error) {
	s.enriches++
	return store.EnrichResult{}, nil
}
func (s *countingStore) Commit(context.Context, store.CommitRequest) error {
	s.commits++
	return s.commitErr
}
func (s *countingStore) ForgetRoles(context.Context, string) error { return nil }

func stageCall(t *testing.T, set *rules.Set, ev *Event) *call {
	return &call{ev: ev, set: set, start: ev.Received, out: Outcome{Reply: tim.OK()}}
}

func TestEnrichSettlesWhatNoRuleEvaluatesWithoutTheStore(t *testing.T) {
	set := mustRules(t, engineRules)
	st := &countingStore{}
	s := &enricher{store: st, breaker: &breaker{}, failures: &failureLog{logged: map[string]*failLog{}}, log: slog.New(slog.DiscardHandler), appAdmin: "administrator"}
	tests := []struct {
		name   string
		ev     *Event
		result string
	}{
		{"a callback rules do not evaluate is recorded as not evaluated", eventFrom(t, tim.CmdRequestOverLimit, map[string]any{"ServiceName": "x"}), "not_evaluated"},
		{"the bot's own message is recorded as such", func() *Event {
			ev := msgEvent(t, "administrator", "rules reminder")
			ev.Platform = "RESTAPI"
			return ev
		}(), "own_message"},
		{"an event kind no rule or counter is on is settled with no result", eventFrom(t, tim.CmdAfterGroupDestroyed, map[string]any{"GroupId": "@TGS#g1"}), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := stageCall(t, set, tt.ev)
			s.exec(context.Background(), c)
			if !c.settled || c.result != tt.result {
				t.Errorf("settled %v result %q, want settled with %q", c.settled, c.result, tt.result)
			}
		})
	}
	if st.enriches != 0 {
		t.Errorf("%d store reads, want none", st.enriches)
	}
}

func TestDecideAppliesTheFailModeWhenTheStoreWasNotRead(t *testing.T) {
	set := mustRules(t, engineRules)
	for _, mode := range []FailMode{FailOpen, FailClosed} {
		t.Run(string(mode), func(t *testing.T) {
			s := &decider{dryRun: &atomic.Bool{}, failModes: map[rules.Kind]FailMode{rules.Message: mode}, log: slog.New(slog.DiscardHandler)}
			c := stageCall(t, set, msgEvent(t, "u", "spam here"))
			c.cause = errStoreDown
			s.exec(context.Background(), c)
			if len(c.out.Decisions) != 1 || c.result != "degraded" || !strings.Contains(c.errText, "failed moments ago") {
				t.Fatalf("decisions %d result %q error %q", len(c.out.Decisions), c.result, c.errText)
			}
			d := c.out.Decisions[0]
			switch mode {
			case FailClosed:
				if d.Verdict != rules.Block || len(d.Rules) != 0 {
					t.Errorf("failed closed with %q by %v, want block by no rule", d.Verdict, d.Rules)
				}
			case FailOpen:
				if d.Verdict != rules.Block || len(d.Rules) != 1 || d.Rules[0] != "spam" {
					t.Errorf("failed open with %q by %v, want the spam rule, which needs no state", d.Verdict, d.Rules)
				}
			}
		})
	}
}

func TestCommitKeepsWhatTheStoreRefusesAndSaysSo(t *testing.T) {
	set := mustRules(t, engineRules)
	st := &countingStore{commitErr: errors.New("redis commit: OOM")}
	var kept []store.CommitRequest
	s := &committer{store: st, breaker: &breaker{}, log: slog.New(slog.DiscardHandler), now: time.Now,
		keep: func(req store.CommitRequest, _ error) string { kept = append(kept, req); return "kept in memory" }}
	c := stageCall(t, set, msgEvent(t, "u", "spam here"))
	c.state = emptyState(set)
	c.out = Evaluate(set, c.ev, c.state, Options{})
	s.exec(context.Background(), c)
	if st.commits != 1 || len(kept) != 1 || len(kept[0].Strikes) != 1 {
		t.Fatalf("%d commits, kept %+v; want one commit, kept with its strike", st.commits, kept)
	}
	if !strings.Contains(c.errText, "commit: redis commit: OOM (kept in memory)") || c.lines != nil {
		t.Errorf("error %q, lines %d: want the commit's failure in the record, encoded again", c.errText, len(c.lines))
	}
}

func TestRecordWritesOneRecordForASettledEvent(t *testing.T) {
	set := mustRules(t, engineRules)
	l := &rawLines{}
	s := &recorder{audit: l, now: time.Now, log: slog.New(slog.DiscardHandler),
		failures: &failureLog{logged: map[string]*failLog{}}, budgets: &budgetWarner{warned: map[string]time.Time{}}}
	c := stageCall(t, set, msgEvent(t, "u", "hello"))
	c.settled, c.quiet, c.result = true, true, "duplicate"
	s.exec(context.Background(), c)
	got := string(l.take())
	if strings.Count(got, "\n") != 1 || !strings.Contains(got, `"result":"duplicate"`) {
		t.Errorf("records %q, want one duplicate record", got)
	}
}
