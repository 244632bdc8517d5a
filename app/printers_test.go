//go:build unix

package app

import (
	"bytes"
	"encoding/json"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/tim"
	"github.com/timguard/timguard/tim/timtest"
)

const printerRules = `version: 1
lists: {spam: ["free crypto"]}
rules:
  - name: greeting
    on: message
    if: 'message.text startsWith "hello"'
    verdict: allow
  - name: spam
    on: message
    if: 'contains_any(message.text, lists.spam)'
    verdict: block
    reply: {code: 10101, text: "No spam here."}
    actions: [{strike: 1}, {mute: 10m}]
    tests:
      - name: crypto
        event: {GroupId: "@TGS#ops", user: frank, text: "win free crypto now", Random: 5}
        expect: {verdict: block}
  - {name: links-trial, on: message, if: 'message.text contains "crypto"', verdict: drop, shadow: true}
`

// TestEveryPrinterShowsTheSameDecision runs one callback through `bot
// simulate`, `bot replay --json`, `bot check -v` and POST /v1/simulate, and
// finds the same decision JSON in each (but for its time: each decides at
// its own moment). The record the bot audits for the same callback, which
// GET /v1/decisions returns, has the same shape and values, with the trace
// of the rules that matched.
func TestEveryPrinterShowsTheSameDecision(t *testing.T) {
	if !strings.Contains(printerRules, opsGroup) {
		t.Fatalf("the kept test's group must be the ops group %s", opsGroup)
	}
	o := startOps(t, printerRules, "")
	rulesPath := filepath.Join(o.dir, "rules.yaml")
	set, err := rules.Load(rulesPath)
	if err != nil {
		t.Fatal(err)
	}
	body := set.Rule("spam").Tests[0].Body
	eventPath := filepath.Join(t.TempDir(), "event.json")
	write(t, eventPath, string(body))

	printed := map[string]map[string]any{}
	run := botCommand(t)

	var stdout, stderr bytes.Buffer
	if code := run([]string{"simulate", "--config", filepath.Join(o.dir, "config.yaml"), "--event", eventPath}, &stdout, &stderr); code != 0 {
		t.Fatalf("simulate: exit %d: %s", code, stderr.String())
	}
	printed["bot simulate"] = firstDecision(t, stdout.Bytes())

	oldRules := filepath.Join(t.TempDir(), "old.yaml")
	write(t, oldRules, "version: 1\nrules:\n  - {name: greeting, on: message, if: 'message.text startsWith \"hello\"', verdict: allow}\n")
	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"replay", "--config", filepath.Join(o.dir, "config.yaml"), "--old", oldRules, "--rules", rulesPath, "--events", eventPath, "--json"}, &stdout, &stderr); code != 0 {
		t.Fatalf("replay: exit %d: %s", code, stderr.String())
	}
	var change struct {
		After map[string]any `json:"after"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &change); err != nil || change.After == nil {
		t.Fatalf("replay --json printed %q: %v", stdout.String(), err)
	}
	printed["bot replay --json"] = change.After

	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"check", "--rules", rulesPath, "-v"}, &stdout, &stderr); code != 0 {
		t.Fatalf("check -v: exit %d: %s", code, stderr.String())
	}
	_, line, ok := strings.Cut(stdout.String(), "rule spam test crypto:")
	if !ok {
		t.Fatalf("check -v printed no line for the kept test:\n%s", stdout.String())
	}
	lines := strings.Split(line, "\n")
	if len(lines) < 2 {
		t.Fatalf("check -v printed no decision after the test's line:\n%s", stdout.String())
	}
	printed["bot check -v"] = decodeObject(t, []byte(strings.TrimSpace(lines[1])))

	status, raw := o.do(http.MethodPost, o.base+"/v1/simulate", http.Header{"Authorization": {"Bearer " + e2eAdminTok}},
		[]byte(`{"event": `+string(body)+`, "state": {}}`))
	if status != http.StatusOK {
		t.Fatalf("POST /v1/simulate: %d %s", status, raw)
	}
	printed["POST /v1/simulate"] = firstDecision(t, raw)

	want := printed["bot simulate"]
	delete(want, "time")
	if want["verdict"] != "block" || want["event_id"] == nil || want["trace"] == nil || want["state"] == nil {
		t.Fatalf("simulate's decision is not the spam block with trace and state: %v", want)
	}
	for name, got := range printed {
		delete(got, "time")
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s printed another decision:\n got  %v\n want %v", name, got, want)
		}
	}

	t.Run("the audit record and GET /v1/decisions", func(t *testing.T) {
		u := timtest.SignedURL(o.base, "/callback", timtest.DefaultSDKAppID, tim.CmdBeforeSendMsg, e2eToken, time.Now())
		if status, out := o.do(http.MethodPost, u, nil, body); status != http.StatusOK || !bytes.Contains(out, []byte("10101")) {
			t.Fatalf("callback answered %d %s", status, out)
		}
		var rec map[string]any
		waitFor(t, 10*time.Second, "the decision in /v1/decisions", func() bool {
			status, out := o.adminCall(http.MethodGet, "/v1/decisions?user=frank", e2eAdminTok, "", nil)
			ds, _ := out["decisions"].([]any)
			if status != http.StatusOK || len(ds) == 0 {
				return false
			}
			rec, _ = ds[0].(map[string]any)
			return rec != nil
		})
		for _, k := range []string{"time", "latency_us", "trace"} {
			if _, ok := rec[k]; !ok {
				t.Errorf("the recorded decision has no %q: %v", k, rec)
			}
		}
		// The audit log's trace holds the rules that matched, without
		// their conditions: the full trace is for the what-if tools.
		var compact []any
		for _, s := range want["trace"].([]any) {
			step := s.(map[string]any)
			if step["matched"] == true || step["error"] != nil {
				delete(step, "if")
				delete(step, "detail")
				compact = append(compact, step)
			}
		}
		if !reflect.DeepEqual(rec["trace"], compact) {
			t.Errorf("recorded trace %v, want the matched steps of simulate's %v", rec["trace"], compact)
		}
		for k, v := range want {
			if k == "trace" || k == "latency_us" {
				continue
			}
			if !reflect.DeepEqual(rec[k], v) {
				t.Errorf("recorded %s = %v, simulate printed %v", k, rec[k], v)
			}
		}
		for k := range rec {
			if _, ok := want[k]; !ok && k != "time" {
				t.Errorf("the recorded decision has %q, which simulate does not print", k)
			}
		}
	})
}

func firstDecision(t *testing.T, out []byte) map[string]any {
	t.Helper()
	var sim struct {
		Decisions []json.RawMessage `json:"decisions"`
	}
	if err := json.Unmarshal(out, &sim); err != nil || len(sim.Decisions) == 0 {
		t.Fatalf("no decisions in %s: %v", out, err)
	}
	return decodeObject(t, sim.Decisions[0])
}

func decodeObject(t *testing.T, data []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("not a JSON object: %s: %v", data, err)
	}
	return m
}
