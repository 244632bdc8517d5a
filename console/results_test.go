package console

import (
	"testing"
	"time"

	"github.com/timguard/timguard/audit"
)

// lines collects what ActionResults passes on.
type lines struct{ got [][]byte }

func (l *lines) WriteLine(line []byte) { l.got = append(l.got, line) }

// ActionResults keeps the last result of each action, whether it reads it
// from the record (WriteRecord, as the executor writes) or decodes it from
// the line (WriteLine), passes every line on unchanged, and forgets the
// oldest action beyond its limit.
func TestActionResultsKeepTheLastResultOfEachAction(t *testing.T) {
	at := time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)
	action := func(id, result, errText string, attempt int) *audit.Record {
		return &audit.Record{Time: at, Kind: audit.KindAction, Actions: []audit.ActionRef{{ID: id, Kind: "mute"}},
			Result: result, Error: errText, Attempt: attempt}
	}
	records := []*audit.Record{
		action("a1", audit.ResultRetry, "timeout", 1),
		{Time: at, Kind: audit.KindDecision, EventID: "e1", Actions: []audit.ActionRef{{ID: "a9", Kind: "mute"}}},
		action("a1", audit.ResultDone, "", 2),
		action("a2", audit.ResultDead, "10004: bad parameter", 1),
		action("a3", audit.ResultDone, "", 1),
		action("", audit.ResultDone, "", 1),
	}
	for _, how := range []string{"WriteRecord", "WriteLine"} {
		t.Run(how, func(t *testing.T) {
			next := &lines{}
			r := NewActionResults(next, 2)
			for _, rec := range records {
				line, err := audit.Encode(rec)
				if err != nil {
					t.Fatal(err)
				}
				if how == "WriteRecord" {
					r.WriteRecord(rec, line)
				} else {
					r.WriteLine(line)
				}
			}
			if len(next.got) != len(records) {
				t.Fatalf("%d lines passed on, want %d", len(next.got), len(records))
			}
			want := map[string]actionResult{
				"a2": {Result: audit.ResultDead, Error: "10004: bad parameter", Attempt: 1, Time: at},
				"a3": {Result: audit.ResultDone, Attempt: 1, Time: at},
			}
			for _, id := range []string{"a1", "a2", "a3", "a9", ""} {
				got, ok := r.lookup(id)
				w, wantOK := want[id]
				if ok != wantOK || got.Result != w.Result || got.Error != w.Error || got.Attempt != w.Attempt || !got.Time.Equal(w.Time) {
					t.Errorf("lookup(%q) = %+v, %v; want %+v, %v", id, got, ok, w, wantOK)
				}
			}
		})
	}
}
