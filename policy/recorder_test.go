package policy

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/tim"
)

// keptRecords is a Recorder that keeps what it is handed.
type keptRecords struct{ got []Recorded }

func (k *keptRecords) Record(r Recorded) { k.got = append(k.got, r) }

func TestTheRecorderHearsEachEvaluatedEventWithTheStateItsRulesRead(t *testing.T) {
	h := newHarness(t, engineRules)
	rec := &keptRecords{}
	cfg := h.engine.cfg
	cfg.Recorder = rec
	h.engine = New(cfg)
	for i := 1; i <= 4; i++ {
		h.now = h.now.Add(time.Second)
		h.send(t, msgEvent(t, "flooder", fmt.Sprintf("message %d", i)))
	}
	if len(rec.got) != 4 {
		t.Fatalf("recorded %d events, want 4", len(rec.got))
	}
	last := rec.got[3]
	set := last.Rules
	msgs := -1
	for _, c := range set.Counters {
		if c.Name == "msgs" {
			msgs = last.State.Counters[c.Index]
		}
	}
	if msgs != 4 || last.Degraded || len(last.Event.Raw) == 0 {
		t.Errorf("the 4th message was recorded with msgs %d, degraded %v, %d body bytes; want 4, false, the body", msgs, last.Degraded, len(last.Event.Raw))
	}
	if len(last.Outcome.Decisions) != 1 || last.Outcome.Decisions[0].Rules[0] != "flood" {
		t.Errorf("recorded outcome %+v, want the flood decision", last.Outcome)
	}
}

func TestTheRecorderHearsDegradedEventsAndThoseNoRuleReadsStateFor(t *testing.T) {
	set := mustRules(t, "version: 1\nrules: [{name: spam, on: message, if: 'message.text == \"spam\"', verdict: block}]\n")
	rec := &keptRecords{}
	e := New(Config{Rules: fixedRules{set}, Store: &failingStore{}, Audit: &lines{}, Recorder: rec,
		FailModes: map[rules.Kind]FailMode{rules.Message: FailClosed}})
	e.Handle(context.Background(), msgEvent(t, "u", "hello"))
	join := eventFrom(t, tim.CmdBeforeApplyJoinGroup, map[string]any{"GroupId": "g", "Type": "Public", "Requestor_Account": "u"})
	e.Handle(context.Background(), join)
	if len(rec.got) != 2 {
		t.Fatalf("recorded %d events, want 2", len(rec.got))
	}
	if r := rec.got[0]; !r.Degraded || r.State != nil {
		t.Errorf("a message refused without the store: degraded %v, state %+v; want degraded with no state read", r.Degraded, r.State)
	}
	if r := rec.got[1]; r.Degraded || r.State != nil || r.Event.Kind != rules.JoinRequest {
		t.Errorf("a join request no rule is on: %+v; want recorded with no state", r)
	}
}
