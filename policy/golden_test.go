package policy

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/timguard/timguard/rules"
	memstore "github.com/timguard/timguard/store/memory"
	"github.com/timguard/timguard/tim"
)

var update = flag.Bool("update", false, "rewrite testdata/audit/*.golden from what the engine writes")

// rawLines keeps audit lines byte for byte.
type rawLines struct {
	mu  sync.Mutex
	all [][]byte
}

func (l *rawLines) WriteLine(b []byte) {
	l.mu.Lock()
	l.all = append(l.all, bytes.Clone(b))
	l.mu.Unlock()
}

func (l *rawLines) take() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []byte
	for _, b := range l.all {
		out = append(append(out, b...), '\n')
	}
	l.all = nil
	return out
}

const goldenRules = `version: 1
lists:
  spam: [spam, "free crypto"]
  banned: [mallory]
counters:
  - {name: msgs, on: [message], key: 'group.id + "/" + user.id', window: 10s}
  - {name: joins, on: [member_joined], key: group.id, window: 1m}
rules:
  - name: spam
    on: message
    if: 'contains_any(message.text, lists.spam)'
    verdict: block
    reply: {code: 10101, text: "Blocked words are not allowed here."}
    actions: [{strike: 1}]
  - {name: flood, on: message, if: 'counters.msgs > 3', actions: [{mute: 10m}]}
  - {name: trial-links, on: message, if: 'message.text contains "http"', verdict: drop, shadow: true, actions: [{mute: 1h}]}
  - {name: numeric, on: message, if: 'user.id == "writer" && int(message.text) > 3', verdict: block}
  - {name: welcome, on: join_request, if: 'user.id not in lists.banned', verdict: approve}
  - {name: banned, on: join_request, if: 'user.id in lists.banned', verdict: reject}
  - {name: no-banned-invites, on: invite, if: 'user.id in lists.banned', verdict: refuse}
  - {name: raid, on: member_joined, if: 'counters.joins > 1', actions: [{mute_group: 15m}], budget: {actions: 1, per: 15m}}
  - {name: seen, on: message_sent, if: 'message.text contains "spam"', actions: [{warn: "Please keep it clean."}]}
`

// goldenEvent is one representative callback and the audit lines it gives.
type goldenEvent struct {
	name string
	// send runs the callback(s) through the engine.
	send func(t *testing.T, h *goldenHarness)
	// texts are what the user wrote: never in the audit log.
	texts []string
}

type goldenHarness struct {
	engine *Engine
	now    time.Time
	audit  *rawLines
}

func (h *goldenHarness) handle(t *testing.T, cmd string, body map[string]any, platform string) {
	t.Helper()
	ev := eventFrom(t, cmd, body)
	h.now = h.now.Add(time.Second)
	ev.Received, ev.Base.Now, ev.Platform = h.now, h.now, platform
	h.engine.Handle(context.Background(), ev)
}

func message(from, text string) map[string]any {
	return map[string]any{
		"GroupId": "@TGS#g1", "Type": "Public", "From_Account": from, "Random": 7, "MsgSeq": 3,
		"MsgBody": []any{map[string]any{"MsgType": "TIMTextElem", "MsgContent": map[string]any{"Text": text}}},
	}
}

var goldenEvents = []goldenEvent{
	{name: "message-blocked", texts: []string{"win free crypto now"}, send: func(t *testing.T, h *goldenHarness) {
		h.handle(t, tim.CmdBeforeSendMsg, message("jared", "win free crypto now"), "Android")
	}},
	{name: "message-flood", texts: []string{"hello there"}, send: func(t *testing.T, h *goldenHarness) {
		for i := range 4 {
			body := message("flooder", "hello there")
			body["Random"] = 100 + i
			h.handle(t, tim.CmdBeforeSendMsg, body, "iOS")
		}
	}},
	{name: "message-shadow", texts: []string{"see http://x.example"}, send: func(t *testing.T, h *goldenHarness) {
		h.handle(t, tim.CmdBeforeSendMsg, message("linker", "see http://x.example"), "Web")
	}},
	{name: "message-rule-error", texts: []string{"lorem ipsum <b>"}, send: func(t *testing.T, h *goldenHarness) {
		h.handle(t, tim.CmdBeforeSendMsg, message("writer", "lorem ipsum <b>"), "Web")
	}},
	{name: "join-request", send: func(t *testing.T, h *goldenHarness) {
		for _, u := range []string{"newcomer", "mallory"} {
			h.handle(t, tim.CmdBeforeApplyJoinGroup, map[string]any{
				"GroupId": "@TGS#g1", "Type": "Public", "Requestor_Account": u, "ApplyMsg": "let me in please",
			}, "")
		}
	}, texts: []string{"let me in please"}},
	{name: "invite", send: func(t *testing.T, h *goldenHarness) {
		h.handle(t, tim.CmdBeforeInviteJoinGroup, map[string]any{
			"GroupId": "@TGS#g1", "Type": "Public", "Operator_Account": "owner1",
			"DestinationMembers": []any{map[string]any{"Member_Account": "friend"}, map[string]any{"Member_Account": "mallory"}},
		}, "")
	}},
	{name: "members-joined-raid", send: func(t *testing.T, h *goldenHarness) {
		for _, u := range []string{"a1", "a2", "a3"} {
			h.handle(t, tim.CmdAfterNewMemberJoin, map[string]any{
				"GroupId": "@TGS#g1", "Type": "Public", "JoinType": "Apply", "Operator_Account": u, "EventTime": 1700000000000,
				"NewMemberList": []any{map[string]any{"Member_Account": u}},
			}, "")
		}
	}},
	{name: "after-message-duplicate", texts: []string{"spam spam"}, send: func(t *testing.T, h *goldenHarness) {
		body := message("repeater", "spam spam")
		body["EventTime"] = 1700000000123
		body["MsgId"] = "144115233-1"
		h.handle(t, tim.CmdAfterSendMsg, body, "Android")
		h.handle(t, tim.CmdAfterSendMsg, body, "Android")
	}},
	{name: "own-message", texts: []string{"rules reminder"}, send: func(t *testing.T, h *goldenHarness) {
		h.handle(t, tim.CmdBeforeSendMsg, message("administrator", "rules reminder"), "RESTAPI")
	}},
	{name: "not-evaluated", send: func(t *testing.T, h *goldenHarness) {
		h.handle(t, tim.CmdAfterMemberFieldChanged, map[string]any{
			"GroupId": "@TGS#g1", "Type": "Public", "Operator_Account": "owner1", "EventTime": 1700000000456,
			"MemberList": []any{map[string]any{"Member_Account": "bob", "NameCard": "Bob"}},
		}, "")
	}},
}

// TestAuditGolden pins the bytes of the audit records the engine writes for
// representative callbacks. Run with -update to rewrite them after a
// deliberate change, and check docs/audit.md with the new lines.
func TestAuditGolden(t *testing.T) {
	set := mustRules(t, goldenRules)
	for _, ge := range goldenEvents {
		t.Run(ge.name, func(t *testing.T) {
			h := &goldenHarness{now: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC), audit: &rawLines{}}
			h.engine = New(Config{
				Rules: fixedRules{set}, Store: memstore.New(memstore.Options{}), Audit: h.audit, AppAdmin: "administrator",
				Now: func() time.Time { return h.now.Add(1500 * time.Microsecond) },
			})
			ge.send(t, h)
			got := h.audit.take()
			for _, text := range ge.texts {
				if bytes.Contains(got, []byte(text)) {
					t.Errorf("the audit log holds the message text %q:\n%s", text, got)
				}
			}
			checkGolden(t, filepath.Join("testdata", "audit", ge.name+".golden"), got)
		})
	}
	t.Run("store-down", func(t *testing.T) {
		for _, mode := range []FailMode{FailOpen, FailClosed} {
			l := &rawLines{}
			now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
			e := New(Config{Rules: fixedRules{set}, Store: &failingStore{}, Audit: l,
				FailModes: map[rules.Kind]FailMode{rules.Message: mode}, Now: func() time.Time { return now }})
			ev := eventFrom(t, tim.CmdBeforeSendMsg, message("jared", "win free crypto now"))
			ev.Received, ev.Base.Now = now, now
			e.Handle(context.Background(), ev)
			checkGolden(t, filepath.Join("testdata", "audit", "store-down-"+string(mode)+".golden"), l.take())
		}
	})
}

func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestAuditGolden -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("audit records differ from %s (go test -run TestAuditGolden -update rewrites it after a deliberate change):\ngot:\n%s\nwant:\n%s",
			path, got, want)
	}
}

// goldenLines returns every line of every golden file.
func goldenLines(t *testing.T) map[string]bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "audit", "*.golden"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	out := map[string]bool{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			out[l] = true
		}
	}
	return out
}
