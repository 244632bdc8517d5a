package audit

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// trickyStrings are the strings where JSON encoders differ: HTML
// characters, control characters, invalid UTF-8, U+2028 and U+2029, escapes.
var trickyStrings = []string{
	"", "plain", "@TGS#2J4SZEAEL", `quote " and \ backslash`, "<b>&amp;</b>", "tab\there\nnewline\rcr",
	"\x00\x01\x1f\x7f", "\b\f", "invalid \xff\xfe utf-8", "cut \xe4\xb8", "\u2028 and \u2029", "中文 ünïcödé 🚀",
	"\ufffd", "\xed\xa0\x80 surrogate", strings.Repeat("long ", 50),
}

func randString(r *rand.Rand) string {
	var b strings.Builder
	for range r.IntN(3) + 1 {
		b.WriteString(trickyStrings[r.IntN(len(trickyStrings))])
	}
	if r.IntN(4) == 0 {
		return ""
	}
	return b.String()
}

func randStrings(r *rand.Rand) []string {
	switch r.IntN(3) {
	case 0:
		return nil
	case 1:
		return []string{}
	}
	out := make([]string, r.IntN(4)+1)
	for i := range out {
		out[i] = randString(r)
	}
	return out
}

var zones = []*time.Location{time.UTC, time.FixedZone("CST", 8*3600), time.FixedZone("odd", -(3*3600 + 30*60 + 15)), time.FixedZone("far", 25*3600)}

func randTime(r *rand.Rand) time.Time {
	t := time.Date(2000+r.IntN(60), time.Month(r.IntN(12)+1), r.IntN(28)+1, r.IntN(24), r.IntN(60), r.IntN(60), r.IntN(3)*r.IntN(1e9), zones[r.IntN(len(zones))])
	switch r.IntN(20) {
	case 0:
		return time.Time{}
	case 1:
		return time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	case 2:
		return time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	return t
}

func randRecord(r *rand.Rand) *Record {
	rec := &Record{
		Time: randTime(r), Kind: randString(r), EventID: randString(r), Command: randString(r), Event: randString(r),
		Group: randString(r), User: randString(r), Role: randString(r), Verdict: randString(r), Rules: randStrings(r),
		RulesVersion: randString(r), Shadow: r.IntN(2) == 0, ShadowRules: randStrings(r), Budget: randStrings(r),
		Result: randString(r), Error: randString(r), LatencyUS: r.Int64N(1e7) - 10, Actor: randString(r),
		Reason: randString(r), Attempt: r.IntN(3) - 1, ReplyCode: r.IntN(3) * 10100,
	}
	for range r.IntN(3) {
		rec.Actions = append(rec.Actions, ActionRef{
			ID: randString(r), Kind: randString(r), Group: randString(r), User: randString(r), Seconds: r.Int64N(3) * 600,
			Text: randString(r), N: r.IntN(3), Rule: randString(r), Shadow: r.IntN(2) == 0,
		})
	}
	if r.IntN(5) == 0 {
		rec.Actions = []ActionRef{}
	}
	return rec
}

// TestAppendJSONIsMarshalByteForByte holds the hand-written encoder to
// encoding/json on many random records, every tricky string among them.
func TestAppendJSONIsMarshalByteForByte(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		rec := randRecord(r)
		want, wantErr := json.Marshal(rec)
		got, gotErr := rec.AppendJSON(nil)
		if (wantErr != nil) != (gotErr != nil) || !bytes.Equal(got, want) {
			t.Fatalf("record %d:\nAppendJSON %s (err %v)\nMarshal    %s (err %v)", i, got, gotErr, want, wantErr)
		}
	}
}

func TestAppendStringIsMarshal(t *testing.T) {
	for _, s := range trickyStrings {
		want, _ := json.Marshal(s)
		if got := AppendString(nil, s); !bytes.Equal(got, want) {
			t.Errorf("AppendString(%q) = %s, Marshal gives %s", s, got, want)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range trickyStrings {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := AppendString(nil, s); !bytes.Equal(got, want) {
			t.Errorf("AppendString(%q) = %s, Marshal gives %s", s, got, want)
		}
		rec := &Record{Time: time.Unix(1700000000, 123), Kind: KindAction, User: s, Rules: []string{s},
			Actions: []ActionRef{{Kind: "warn", Text: s}}}
		want, _ = json.Marshal(rec)
		if got, _ := rec.AppendJSON(nil); !bytes.Equal(got, want) {
			t.Errorf("AppendJSON = %s, Marshal gives %s", got, want)
		}
	})
}

// benchRecord is an action record as the executor writes it.
func benchRecord() *Record {
	return &Record{
		Time: time.Date(2026, 11, 21, 12, 0, 4, 250_000_000, time.UTC), Kind: KindAction, EventID: "fd0db80d2ec9ec9c68db0b95",
		Command: "forbid_send_msg", Group: "@TGS#g1", User: "flooder", Rules: []string{"flood"},
		Actions: []ActionRef{{ID: "fd0db80d2ec9ec9c68db0b95/0/flood/0", Kind: "mute", Group: "@TGS#g1", User: "flooder", Seconds: 600, Rule: "flood"}},
		Result:  ResultDone, Attempt: 1, Actor: "bot-1/4242", LatencyUS: 8123,
	}
}

// BenchmarkEncodeRecord compares encoding/json (before) with the append
// encoder Encode uses (after).
func BenchmarkEncodeRecord(b *testing.B) {
	rec := benchRecord()
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Encode(rec); err != nil {
				b.Fatal(err)
			}
		}
	})
}
