package audit

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/records.golden")

var at = time.Date(2026, 11, 21, 12, 0, 4, 250_000_000, time.UTC)

// goldenRecords are records of every kind but decisions (policy.Decision,
// pinned by policy's golden test), as their writers fill them.
var goldenRecords = []*Record{
	{ // an action carried out (actions.Executor)
		Time: at, Kind: KindAction, EventID: "fd0db80d2ec9ec9c68db0b95", Command: "forbid_send_msg", Group: "@TGS#g1", User: "flooder",
		Rules:   []string{"flood"},
		Actions: []ActionRef{{ID: "fd0db80d2ec9ec9c68db0b95/0/flood/0", Kind: "mute", Group: "@TGS#g1", User: "flooder", Seconds: 600, Rule: "flood"}},
		Result:  ResultDone, Attempt: 1, Actor: "bot-1/4242", LatencyUS: 8123,
	},
	{ // an action that will be retried
		Time: at, Kind: KindAction, EventID: "2959cd69afd623d1b0f54c62", Command: "modify_group_base_info", Group: "@TGS#g1",
		Rules:   []string{"raid"},
		Actions: []ActionRef{{ID: "2959cd69afd623d1b0f54c62/0/raid/0", Kind: "mute_group", Group: "@TGS#g1", Seconds: 900, Rule: "raid"}},
		Result:  ResultRetry, Error: "the IM server is busy (code 10002): retry in 2s", Attempt: 2, Actor: "bot-1/4242", LatencyUS: 20511,
	},
	{ // an action lost (policy's spool)
		Time: at, Kind: KindAction, EventID: "4d5f0a68ad03974c289d69de", Group: "@TGS#g1", User: "jared",
		Rules:   []string{"spam"},
		Actions: []ActionRef{{ID: "4d5f0a68ad03974c289d69de/0/spam/1", Kind: "warn", Group: "@TGS#g1", User: "jared", Text: "Please <keep> it clean & kind.", Rule: "spam"}},
		Result:  ResultLost, Error: "the process stopped before the store took the decision: store unavailable", Actor: "bot-1/4242",
	},
	{ // an admin lift (handlers)
		Time: at, Kind: KindAdmin, Group: "@TGS#g1", User: "jared",
		Actions: []ActionRef{{Kind: "unmute", Group: "@TGS#g1", User: "jared"}},
		Result:  ResultDone, Actor: "rita@10.0.0.5", LatencyUS: 15020,
	},
	{ // a moderator's action from the console (console)
		Time: at, Kind: KindAdmin, Group: "@TGS#g1", User: "jared",
		Actions: []ActionRef{{ID: "console/3f9c2a7d01b4e6a8/mute", Kind: "mute", Group: "@TGS#g1", User: "jared", Seconds: 3600, Rule: "console"}},
		Result:  ResultDone, Actor: "rita@10.0.0.5", Reason: "spam links after a warning",
	},
	{ // a reload (cmd/bot)
		Time: at, Kind: KindReload, RulesVersion: "4e29b353ed36", Result: ResultFailed,
		Error: "rules.yaml:12: rule \"flood\": if: unknown name counters.msg",
	},
	{ // a schedule firing (schedule)
		Time: at, Kind: KindSchedule, Command: "schedule", EventID: "quiet-hours@2026-11-21T15:00:00Z", Group: "@TGS#g1",
		Rules: []string{"quiet-hours"}, Result: ResultDone, Actor: "bot-2/77",
	},
}

// TestRecordGolden pins the bytes of the audit records other than decisions.
func TestRecordGolden(t *testing.T) {
	var got []byte
	for _, r := range goldenRecords {
		line, err := Encode(r)
		if err != nil {
			t.Fatal(err)
		}
		got = append(append(got, line...), '\n')
	}
	path := filepath.Join("testdata", "records.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -run TestRecordGolden -update writes it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("records differ from %s (-update rewrites it after a deliberate change):\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}
