package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/timguard/timguard/rules"
	memstore "github.com/timguard/timguard/store/memory"
	"github.com/timguard/timguard/tim"
)

var trickyStrings = []string{
	"", "plain", "@TGS#g1", `quote " and \ backslash`, "<b>&amp;</b>", "tab\there\nnewline", "\x00\x1f\x7f",
	"invalid \xff utf-8", "\u2028\u2029", "中文 🚀", "\xed\xa0\x80",
}

func randText(r *rand.Rand) string {
	if r.IntN(3) == 0 {
		return ""
	}
	var b strings.Builder
	for range r.IntN(3) + 1 {
		b.WriteString(trickyStrings[r.IntN(len(trickyStrings))])
	}
	return b.String()
}

func randTexts(r *rand.Rand) []string {
	switch r.IntN(3) {
	case 0:
		return nil
	case 1:
		return []string{}
	}
	out := make([]string, r.IntN(3)+1)
	for i := range out {
		out[i] = randText(r)
	}
	return out
}

func randDecision(r *rand.Rand) *Decision {
	zones := []*time.Location{time.UTC, time.FixedZone("CST", 8*3600), time.FixedZone("far", 24*3600)}
	d := &Decision{
		Time: time.Date(1990+r.IntN(50), 3, 4, 5, 6, 7, r.IntN(2)*r.IntN(1e9), zones[r.IntN(len(zones))]),
		Kind: randText(r), EventID: randText(r), Command: randText(r), Event: rules.Kind(randText(r)), Group: randText(r),
		User: randText(r), Role: rules.Role(randText(r)), Verdict: rules.Verdict(randText(r)), Rules: randTexts(r), RulesVersion: randText(r),
		Shadow: r.IntN(2) == 0, ShadowRules: randTexts(r), Budget: randTexts(r), Result: randText(r), Error: randText(r),
		LatencyUS: r.Int64N(1e6) - 5, ReplyCode: r.IntN(3) * 10100, ShadowVerdict: rules.Verdict(randText(r)),
		Errors: randTexts(r), Rewritten: []tim.MsgElem{{MsgType: "TIMTextElem"}},
	}
	if r.IntN(10) == 0 {
		d.Time = time.Date(10001, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if r.IntN(2) == 0 {
		d.Reply = &rules.Reply{Code: r.IntN(3) * 10101, Text: randText(r)}
	}
	for range r.IntN(3) {
		d.Actions = append(d.Actions, PlannedAction{ID: randText(r), Resolved: rules.Resolved{
			Kind: rules.ActionKind(randText(r)), Seconds: r.Int64N(3) * 60, Text: randText(r), N: r.IntN(2), Announce: randText(r),
		}, Rule: randText(r), Shadow: r.IntN(2) == 0, Roles: []rules.Role{rules.Role(randText(r))}})
	}
	if r.IntN(2) == 0 {
		d.State = &StateRead{Strikes: r.IntN(4), Modes: randTexts(r)}
		for range r.IntN(3) {
			d.State.Counters = append(d.State.Counters, Count{Name: randText(r), Value: r.IntN(100) - 1})
		}
		if r.IntN(4) == 0 {
			d.State.Counters = Counts{}
		}
	}
	for range r.IntN(4) {
		d.Trace = append(d.Trace, Step{Rule: randText(r), Matched: r.IntN(2) == 0, Shadow: r.IntN(2) == 0,
			Verdict: rules.Verdict(randText(r)), If: randText(r), Skipped: randText(r), Error: randText(r), Detail: randText(r)})
	}
	return d
}

// TestDecisionAppendJSONIsMarshalByteForByte holds the decision encoder to
// encoding/json on many random decisions.
func TestDecisionAppendJSONIsMarshalByteForByte(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 20000 {
		d := randDecision(r)
		want, wantErr := json.Marshal(d)
		got, gotErr := d.AppendJSON(nil)
		if (wantErr != nil) != (gotErr != nil) || !bytes.Equal(got, want) {
			t.Fatalf("decision %d:\nAppendJSON %s (err %v)\nMarshal    %s (err %v)", i, got, gotErr, want, wantErr)
		}
	}
}

// TestEngineDecisionsEncodeAsMarshalDoes compares the two encoders on the
// decisions of the golden events, as the engine makes them.
func TestEngineDecisionsEncodeAsMarshalDoes(t *testing.T) {
	set := mustRules(t, goldenRules)
	for _, ge := range goldenEvents {
		h := &goldenHarness{now: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC), audit: &rawLines{}}
		h.engine = New(Config{Rules: fixedRules{set}, Store: memstore.New(memstore.Options{}), Audit: h.audit, AppAdmin: "administrator"})
		ge.send(t, h)
		for _, line := range bytes.Split(bytes.TrimSpace(h.audit.take()), []byte("\n")) {
			var d Decision
			if err := json.Unmarshal(line, &d); err != nil {
				t.Fatal(err)
			}
			want, _ := json.Marshal(&d)
			if !bytes.Equal(line, want) {
				t.Errorf("%s:\nengine  %s\nMarshal %s", ge.name, line, want)
			}
		}
	}
}

func FuzzDecisionJSON(f *testing.F) {
	for _, s := range trickyStrings {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		d := &Decision{Time: time.Unix(1700000000, 5), Kind: "decision", User: a, Rules: []string{b}, Error: a,
			Reply: &rules.Reply{Code: 10101, Text: b}, State: &StateRead{Counters: Counts{{Name: a, Value: 1}}},
			Trace: []Step{{Rule: b, Detail: a}}, Actions: []PlannedAction{{Resolved: rules.Resolved{Kind: "warn", Text: a}}}}
		want, _ := json.Marshal(d)
		if got, _ := d.AppendJSON(nil); !bytes.Equal(got, want) {
			t.Errorf("AppendJSON %s\nMarshal    %s", got, want)
		}
	})
}

// benchDecision is a message decision with a match, as the engine records
// it.
func benchDecision(b *testing.B) *Decision {
	set := mustRules(b, goldenRules)
	e := New(Config{Rules: fixedRules{set}, Store: memstore.New(memstore.Options{}), Audit: &rawLines{}})
	ev := msgEvent(b, "jared", "win free crypto now")
	out := e.Handle(context.Background(), ev)
	d := out.Decisions[0]
	d.LatencyUS = 812
	return &d
}

// BenchmarkEncodeDecision compares encoding/json (before) with the append
// encoder the engine uses (after).
func BenchmarkEncodeDecision(b *testing.B) {
	d := benchDecision(b)
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(d); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := EncodeDecision(d); err != nil {
				b.Fatal(err)
			}
		}
	})
}
