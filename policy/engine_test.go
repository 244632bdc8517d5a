package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/store/memory"
	"github.com/timguard/timguard/tim"
)

// lines collects audit lines.
type lines struct {
	mu  sync.Mutex
	all []audit.Record
}

func (l *lines) WriteLine(b []byte) {
	var r audit.Record
	if err := json.Unmarshal(b, &r); err != nil {
		panic(fmt.Sprintf("audit line is not JSON: %s", b))
	}
	l.mu.Lock()
	l.all = append(l.all, r)
	l.mu.Unlock()
}

func (l *lines) last() audit.Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all[len(l.all)-1]
}

type fixedRules struct{ set *rules.Set }

func (f fixedRules) Rules() *rules.Set { return f.set }

// fakeFiller answers fills from roles, and records the groups (and their
// types) asked for.
type fakeFiller struct {
	mu        sync.Mutex
	groups    []string
	types     []string
	refreshed []string
	cachedAt  []time.Time // of the refreshes not forced
	roles     map[string]string
	err       error
}

func (f *fakeFiller) FillRoles(_ context.Context, g, typ string) (map[string]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.groups = append(f.groups, g)
	f.types = append(f.types, typ)
	return f.roles, f.err
}

func (f *fakeFiller) RefreshRoles(g, _ string, cachedAt time.Time, force bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if force {
		f.refreshed = append(f.refreshed, g)
	} else {
		f.cachedAt = append(f.cachedAt, cachedAt)
	}
}

const engineRules = `version: 1
lists: {spam: [spam]}
counters:
  - {name: msgs, on: [message], key: 'group.id + "/" + user.id', window: 10s}
  - {name: joins, on: [member_joined], key: group.id, window: 1m}
rules:
  - {name: spam, on: message, if: 'contains_any(message.text, lists.spam)', verdict: block, actions: [{strike: 1}]}
  - {name: out, on: message, if: 'user.strikes >= 3', verdict: block, actions: [{kick: "Repeated violations"}]}
  - {name: flood, on: message, if: 'counters.msgs > 3', actions: [{mute: 10m}]}
  - {name: raid, on: member_joined, if: 'counters.joins > 2', actions: [{mute_group: 15m}], budget: {actions: 1, per: 15m}}
`

type harness struct {
	engine *Engine
	store  *memory.Store
	audit  *lines
	filler *fakeFiller
	now    time.Time
}

func newHarness(t *testing.T, src string) *harness {
	t.Helper()
	h := &harness{store: memory.New(memory.Options{}), audit: &lines{}, filler: &fakeFiller{}, now: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)}
	h.engine = New(Config{
		Rules: fixedRules{mustRules(t, src)}, Store: h.store, Audit: h.audit, AppAdmin: "administrator",
		Now: func() time.Time { return h.now }, Roles: h.filler,
	})
	return h
}

func (h *harness) send(t *testing.T, ev *Event) Outcome {
	t.Helper()
	ev.Received = h.now
	ev.Base.Now = h.now
	return h.engine.Handle(context.Background(), ev)
}

func TestEngineCountersAcrossEvents(t *testing.T) {
	h := newHarness(t, engineRules)
	for i := 1; i <= 4; i++ {
		h.now = h.now.Add(time.Second)
		ev := msgEvent(t, "flooder", fmt.Sprintf("message %d", i))
		h.send(t, ev)
		rec := h.audit.last()
		wantMute := i == 4
		if got := len(rec.Actions) == 1 && rec.Actions[0].Kind == "mute"; got != wantMute {
			t.Fatalf("message %d: mute planned = %v, want %v (record %+v)", i, got, wantMute, rec)
		}
	}
	pending, err := h.store.Pending(context.Background(), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 1 || pending[0].Kind != "mute" || pending[0].User != "flooder" || pending[0].Seconds != 600 || pending[0].Rule != "flood" {
		t.Fatalf("outbox = %+v; want one 10 minute mute of flooder by rule flood", pending)
	}
	t.Run("the window slides: eleven seconds later the count starts again", func(t *testing.T) {
		h.now = h.now.Add(11 * time.Second)
		h.send(t, msgEvent(t, "flooder", "calm"))
		if rec := h.audit.last(); len(rec.Actions) != 0 {
			t.Errorf("actions %v after the window passed", rec.Actions)
		}
	})
}

func TestEngineStrikesAccumulateAndTheThirdRemoves(t *testing.T) {
	h := newHarness(t, engineRules)
	var verdicts []string
	for i := 0; i < 3; i++ {
		h.now = h.now.Add(time.Minute)
		out := h.send(t, msgEvent(t, "eve", fmt.Sprintf("spam %d", i)))
		verdicts = append(verdicts, string(out.Decisions[0].Verdict))
	}
	rec := h.audit.last()
	if !slices.Equal(rec.Rules, []string{"spam", "out"}) {
		t.Fatalf("third spam matched %v; want [spam out]", rec.Rules)
	}
	pending, _ := h.store.Pending(context.Background(), 10)
	if len(pending) != 1 || pending[0].Kind != "kick" || pending[0].Text != "Repeated violations" {
		t.Fatalf("outbox %+v; want one kick with the reason", pending)
	}
	if !slices.Equal(verdicts, []string{"block", "block", "block"}) {
		t.Errorf("verdicts %v", verdicts)
	}
}

func TestEngineDedupesAfterCallbacks(t *testing.T) {
	h := newHarness(t, engineRules)
	join := func() *Event {
		return eventFrom(t, tim.CmdAfterNewMemberJoin, map[string]any{
			"GroupId": "g", "Type": "Public", "JoinType": "Apply", "EventTime": 1,
			"NewMemberList": []any{map[string]any{"Member_Account": "a"}, map[string]any{"Member_Account": "b"}},
		})
	}
	h.send(t, join())
	h.send(t, join())
	if rec := h.audit.last(); rec.Result != audit.ResultDup {
		t.Fatalf("second delivery result %q, want duplicate", rec.Result)
	}
	// Two members joined once each: a third join is still below the raid
	// threshold of more than 2... and the next one crosses it.
	ev := eventFrom(t, tim.CmdAfterNewMemberJoin, map[string]any{
		"GroupId": "g", "Type": "Public", "JoinType": "Apply", "EventTime": 2,
		"NewMemberList": []any{map[string]any{"Member_Account": "c"}},
	})
	h.send(t, ev)
	if rec := h.audit.last(); len(rec.Actions) != 1 || rec.Actions[0].Kind != "mute_group" {
		t.Fatalf("third join (count 3) gave %+v; want a group mute", rec)
	}
	t.Run("the raid budget of one action keeps a fourth join from muting again", func(t *testing.T) {
		h.send(t, eventFrom(t, tim.CmdAfterNewMemberJoin, map[string]any{
			"GroupId": "g", "Type": "Public", "JoinType": "Apply", "EventTime": 3,
			"NewMemberList": []any{map[string]any{"Member_Account": "d"}},
		}))
		rec := h.audit.last()
		if !slices.Equal(rec.Budget, []string{"raid"}) || !rec.Shadow {
			t.Fatalf("fourth join record %+v; want raid over budget, in shadow", rec)
		}
		pending, _ := h.store.Pending(context.Background(), 10)
		if len(pending) != 1 {
			t.Errorf("outbox holds %d actions, want the one group mute", len(pending))
		}
	})
}

func TestEngineCommitIsIdempotent(t *testing.T) {
	h := newHarness(t, `version: 1
rules: [{name: w, on: message, if: 'true', actions: [{warn: hi}, {strike: 1}]}]
`)
	ev := msgEvent(t, "eve", "hello")
	h.send(t, ev)
	h.send(t, ev)
	pending, _ := h.store.Pending(context.Background(), 10)
	if len(pending) != 1 {
		t.Fatalf("the same event handled twice left %d actions, want 1: %+v", len(pending), pending)
	}
	res, err := h.store.Enrich(context.Background(), store.EnrichRequest{Now: h.now, Strikes: []store.UserRef{{Group: "@TGS#g1", User: "eve"}}, StrikeDecay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if res.Strikes[0] != 1 {
		t.Errorf("the same event handled twice gave %d strikes, want 1", res.Strikes[0])
	}
	h.send(t, msgEvent(t, "eve", "another"))
	if pending, _ = h.store.Pending(context.Background(), 10); len(pending) != 2 {
		t.Errorf("a different event left %d actions in all, want 2", len(pending))
	}
}

// failingStore fails every call as an unreachable backend would.
type failingStore struct{ forgot []string }

func (f *failingStore) Enrich(context.Context, store.EnrichRequest) (store.EnrichResult, error) {
	return store.EnrichResult{}, fmt.Errorf("redis enrich: %w: dial tcp: connection refused", store.ErrUnavailable)
}
func (f *failingStore) Commit(context.Context, store.CommitRequest) error {
	return fmt.Errorf("redis commit: %w", store.ErrUnavailable)
}
func (f *failingStore) ForgetRoles(_ context.Context, g string) error {
	f.forgot = append(f.forgot, g)
	return nil
}

func TestEngineWithoutTheStore(t *testing.T) {
	const src = `version: 1
lists: {spam: [spam]}
counters: [{name: msgs, on: [message], key: user.id, window: 10s}]
rules:
  - {name: spam, on: message, if: 'contains_any(message.text, lists.spam)', verdict: block}
  - {name: flood, on: message, if: 'counters.msgs > 0', verdict: drop}
  - {name: joiner, on: join_request, if: 'counters.msgs > 0', verdict: hold}
`
	set := mustRules(t, src)
	newEngine := func(modes map[rules.Kind]FailMode) (*Engine, *lines) {
		l := &lines{}
		return New(Config{Rules: fixedRules{set}, Store: &failingStore{}, Audit: l, FailModes: modes}), l
	}
	t.Run("fail open: rules that need no state still decide, the others see zeros", func(t *testing.T) {
		e, l := newEngine(nil)
		out := e.Handle(context.Background(), msgEvent(t, "u", "spam"))
		if out.Reply.ErrorCode != tim.CodeRefuse {
			t.Errorf("code %d, want the spam block (1)", out.Reply.ErrorCode)
		}
		rec := l.last()
		if rec.Result != audit.ResultDegraded || !strings.Contains(rec.Error, "store unavailable") {
			t.Errorf("audit result %q error %q; want degraded naming the store", rec.Result, rec.Error)
		}
	})
	t.Run("fail closed refuses a join request", func(t *testing.T) {
		e, _ := newEngine(map[rules.Kind]FailMode{rules.JoinRequest: FailClosed})
		ev := eventFrom(t, tim.CmdBeforeApplyJoinGroup, map[string]any{"GroupId": "g", "Type": "Public", "Requestor_Account": "u"})
		if out := e.Handle(context.Background(), ev); out.Reply.ErrorCode != tim.CodeRefuse {
			t.Errorf("code %d, want 1 (refused)", out.Reply.ErrorCode)
		}
	})
}

func TestEngineOtherCallbacks(t *testing.T) {
	set := mustRules(t, engineRules)
	fs := &failingStore{}
	l := &lines{}
	e := New(Config{Rules: fixedRules{set}, Store: fs, Audit: l})
	ev := eventFrom(t, tim.CmdAfterMemberFieldChanged, map[string]any{"GroupId": "@TGS#x", "Member_Account": "m", "Role": "Admin"})
	if out := e.Handle(context.Background(), ev); !out.Reply.IsPlainOK() {
		t.Errorf("reply %+v, want plain OK", out.Reply)
	}
	if !slices.Equal(fs.forgot, []string{"@TGS#x"}) {
		t.Errorf("role cache forgotten for %v, want [@TGS#x]", fs.forgot)
	}
	if rec := l.last(); rec.Result != "not_evaluated" || rec.Command != tim.CmdAfterMemberFieldChanged {
		t.Errorf("record %+v; want not_evaluated with the command", rec)
	}
}

func TestEngineSkipsOwnMessagesAndFillsRoles(t *testing.T) {
	h := newHarness(t, engineRules)
	ev := msgEvent(t, "administrator", "spam")
	ev.Platform = "RESTAPI"
	if out := h.send(t, ev); !out.Reply.IsPlainOK() {
		t.Errorf("the bot's own message was not let through: %+v", out.Reply)
	}
	if rec := h.audit.last(); rec.Result != "own_message" {
		t.Errorf("result %q, want own_message", rec.Result)
	}
	h.send(t, msgEvent(t, "someone", "hello"))
	if len(h.filler.groups) == 0 || h.filler.groups[0] != "@TGS#g1" || h.filler.types[0] != tim.GroupPublic {
		t.Errorf("role cache fill asked for %v of types %v, want @TGS#g1, Public (the callback's type)", h.filler.groups, h.filler.types)
	}
	readAt := h.now.Add(-time.Minute)
	if err := h.store.SetRoles(context.Background(), "@TGS#g1", map[string]string{"boss": "admin"}, readAt, time.Hour); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 6; i++ {
		h.now = h.now.Add(time.Second)
		h.send(t, msgEvent(t, "boss", "flood"))
	}
	if rec := h.audit.last(); rec.Role != "admin" || len(rec.Actions) != 0 {
		t.Errorf("an admin who floods got %+v; want role admin and no actions", rec)
	}
	// Each event with roles cached tells the filler when they were read,
	// so that it refreshes them only when they are old.
	if n := len(h.filler.cachedAt); n != 6 {
		t.Fatalf("%d refreshes asked for, want one per event with roles cached (6)", n)
	}
	for _, at := range h.filler.cachedAt {
		if !at.Equal(readAt.Truncate(time.Millisecond)) {
			t.Errorf("the filler was told the roles were read at %v, want %v", at, readAt)
		}
	}
}

func TestAnEventThatDoesNotCountStillReadsTheCount(t *testing.T) {
	h := newHarness(t, `version: 1
counters: [{name: links, on: [message], key: user.id, if: 'len(message.urls) > 0', window: 1h}]
rules: [{name: link-heavy, on: message, if: 'counters.links >= 3', verdict: block}]
`)
	texts := []string{"see a.com/x", "see b.com/y", "see c.com/z", "no link at all", "and d.com/w"}
	var codes []int
	for _, text := range texts {
		h.now = h.now.Add(time.Second)
		codes = append(codes, h.send(t, msgEvent(t, "lenny", text)).Reply.ErrorCode)
	}
	if !slices.Equal(codes, []int{0, 0, 1, 1, 1}) {
		t.Errorf("reply codes %v; want the third link and everything after it blocked (the linkless message reads 3)", codes)
	}
}

func TestTheOwnerIsExemptEvenOnTheGroupsFirstEvent(t *testing.T) {
	h := newHarness(t, engineRules)
	h.filler.roles = map[string]string{"olga": "owner"}
	out := h.send(t, msgEvent(t, "olga", "free spam for all"))
	if out.Reply.ErrorCode != 0 {
		t.Fatalf("the owner's message on a cold role cache was refused (code %d)", out.Reply.ErrorCode)
	}
	if rec := h.audit.last(); rec.Role != "owner" || len(rec.Rules) != 0 {
		t.Errorf("record %+v; want role owner and no rule", rec)
	}
	t.Run("when the roles cannot be had in time the user is judged as a member", func(t *testing.T) {
		h := newHarness(t, engineRules)
		h.filler.err = context.DeadlineExceeded
		if out := h.send(t, msgEvent(t, "olga", "spam")); out.Reply.ErrorCode != 1 {
			t.Errorf("code %d, want the spam block", out.Reply.ErrorCode)
		}
	})
	t.Run("a reported role change refreshes the cache instead of dropping it", func(t *testing.T) {
		h.send(t, eventFrom(t, tim.CmdAfterChangeGroupOwner, map[string]any{"GroupId": "@TGS#g1"}))
		if !slices.Equal(h.filler.refreshed, []string{"@TGS#g1"}) {
			t.Errorf("forced refreshes %v, want [@TGS#g1]", h.filler.refreshed)
		}
	})
}

func TestRuleErrorsInTheAuditLogHoldNoMessageText(t *testing.T) {
	const text = "PRIVATEWORD1 secretword(x 4111 see evil.com/zz -5s"
	tests := []struct {
		name, cond string
		// keep is what the error must still say: the rule and expr's reason.
		keep string
	}{
		{"the whole text", "int(message.text) > 3", "invalid operation: int("},
		{"one word of the text", `int(split(message.text, " ")[0]) > 0`, "invalid operation: int("},
		{"a word in capitals", `int(upper(split(message.text, " ")[1])) > 0`, "invalid operation: int("},
		{"a link", "int(message.urls[0]) > 0", "invalid operation: int("},
		{"a duration", `duration(split(message.text, " ")[5]) < duration("1s") && int(split(message.text, " ")[5]) > 0`, "invalid operation: int("},
		{"a quoted value", `duration(message.text) > duration("1s")`, "time: invalid duration"},
		{"a date", "date(message.text) > now", "invalid date"},
		{"a time zone", "timezone(message.text) == nil", "unknown time zone"},
		{"a regular expression", `"x" matches message.text`, "error parsing regexp"},
		{"a JSON character", "len(fromJSON(message.text)) > 0", "invalid character"},
		{"a number", `split(message.text, " ")[int(split(message.text, " ")[2])] == "a"`, "index out of range:"},
		{"a length", `split(message.text, " ")[9] == "a"`, "index out of range: 9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, "version: 1\nrules: [{name: numeric, on: message, if: '"+tt.cond+"', verdict: block}]\n")
			h.send(t, msgEvent(t, "u", text))
			rec := h.audit.last()
			if !strings.Contains(rec.Error, "rule numeric") || !strings.Contains(rec.Error, tt.keep) {
				t.Errorf("error %q; want the rule named and %q", rec.Error, tt.keep)
			}
			for _, word := range []string{"PRIVATEWORD", "secretword", "4111", "evil", "zz", "-5s", "see", "'P'", "array length is 6"} {
				if strings.Contains(rec.Error, word) || strings.Contains(strings.ToLower(rec.Error), strings.ToLower(word)) {
					t.Errorf("error %q holds %q from the message", rec.Error, word)
				}
			}
		})
	}
}

func TestEngineDedupesAnAfterCallbackByItsIdentityNotItsBytes(t *testing.T) {
	h := newHarness(t, `version: 1
rules:
  - {name: sent, on: message_sent, if: 'message.text contains "spam"', actions: [{mute: 10m}, {warn: "no spam"}]}
  - {name: wave, on: member_joined, if: 'true', actions: [{warn: "welcome"}]}
`)
	send := func(cmd, body string) audit.Record {
		t.Helper()
		cb, err := tim.DecodeCallback(cmd, []byte(body))
		if err != nil {
			t.Fatalf("decode %s: %v", body, err)
		}
		h.send(t, NewEvent(cb, []byte(body), h.now))
		return h.audit.last()
	}
	const sent = `{"CallbackCommand":"Group.CallbackAfterSendMsg","GroupId":"@TGS#g1","Type":"Public","From_Account":"eve","Random":77,"MsgSeq":501,"MsgTime":1700000000,"EventTime":1700000000123,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"spam"}}]}`
	const joined = `{"CallbackCommand":"Group.CallbackAfterNewMemberJoin","GroupId":"@TGS#g1","Type":"Public","JoinType":"Apply","Operator_Account":"ann","EventTime":1700000000200,"NewMemberList":[{"Member_Account":"ann"},{"Member_Account":"bob"}]}`
	if rec := send(tim.CmdAfterSendMsg, sent); rec.Result != "" || len(rec.Actions) != 2 {
		t.Fatalf("first delivery: %+v; want a mute and a warning", rec)
	}
	if rec := send(tim.CmdAfterNewMemberJoin, joined); rec.Result != "" || len(rec.Actions) != 1 {
		t.Fatalf("first join delivery: %+v; want a welcome", rec)
	}
	again := []struct {
		name, cmd, body string
	}{
		{"the same bytes", tim.CmdAfterSendMsg, sent},
		{"keys in another order, with spaces", tim.CmdAfterSendMsg, `{ "MsgBody": [ {"MsgContent": {"Text": "spam"}, "MsgType": "TIMTextElem"} ], "EventTime": 1700000000123, "MsgTime": 1700000000, "MsgSeq": 501, "Random": 77, "From_Account": "eve", "Type": "Public", "GroupId": "@TGS#g1", "CallbackCommand": "Group.CallbackAfterSendMsg" }`},
		{"EventTime as a string and the text escaped", tim.CmdAfterSendMsg, `{"CallbackCommand":"Group.CallbackAfterSendMsg","GroupId":"@TGS#g1","Type":"Public","From_Account":"eve","Random":77,"MsgSeq":501,"MsgTime":1700000000,"EventTime":"1700000000123","MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"\u0073pam"}}]}`},
		{"a join with its members in another order", tim.CmdAfterNewMemberJoin, `{"NewMemberList":[{"Member_Account":"bob"},{"Member_Account":"ann"}],"EventTime":"1700000000200","Operator_Account":"ann","JoinType":"Apply","Type":"Public","GroupId":"@TGS#g1","CallbackCommand":"Group.CallbackAfterNewMemberJoin"}`},
	}
	for _, tc := range again {
		t.Run(tc.name+" is a duplicate", func(t *testing.T) {
			if rec := send(tc.cmd, tc.body); rec.Result != audit.ResultDup {
				t.Errorf("redelivery result %q (actions %v), want duplicate", rec.Result, rec.Actions)
			}
		})
	}
	pending, err := h.store.Pending(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, a := range pending {
		kinds = append(kinds, string(a.Kind)+" "+a.User)
	}
	slices.Sort(kinds)
	if want := []string{"mute eve", "warn ann", "warn bob", "warn eve"}; !slices.Equal(kinds, want) {
		t.Errorf("outbox %q, want each action once: %q", kinds, want)
	}
	t.Run("another message of the same sender is not a duplicate", func(t *testing.T) {
		next := strings.Replace(sent, `"MsgSeq":501`, `"MsgSeq":502`, 1)
		if rec := send(tim.CmdAfterSendMsg, next); rec.Result != "" || len(rec.Actions) != 2 {
			t.Errorf("the next message: %+v; want it decided", rec)
		}
	})
}

func TestAMemberFieldChangeLooksRolesUpOnlyWhenTheRoleChanged(t *testing.T) {
	const group = "@TGS#g1"
	changed := func(fields map[string]any) *Event {
		body := map[string]any{"GroupId": group, "Type": "Public", "Operator_Account": "olga", "Member_Account": "mia", "EventTime": 1700000000000}
		for k, v := range fields {
			body[k] = v
		}
		return eventFrom(t, tim.CmdAfterMemberFieldChanged, body)
	}
	tests := []struct {
		name    string
		cached  map[string]string // nil: the group's roles are not cached
		fields  map[string]any
		refresh bool
	}{
		{"a new name card alone", map[string]string{"olga": "owner"}, map[string]any{"NameCard": "Mia the Great"}, false},
		{"a new name card with no roles cached", nil, map[string]any{"NameCard": "Mia"}, false},
		{"a member made admin", map[string]string{"olga": "owner"}, map[string]any{"Role": "Admin"}, true},
		{"an admin made member", map[string]string{"olga": "owner", "mia": "admin"}, map[string]any{"Role": "Member"}, true},
		{"a role given that the cache already has", map[string]string{"olga": "owner", "mia": "admin"}, map[string]any{"Role": "Admin", "NameCard": "Mia"}, false},
		{"a member's role given as member, as known", map[string]string{"olga": "owner"}, map[string]any{"Role": "Member", "NameCard": "Mia"}, false},
		{"a role given with no roles cached", nil, map[string]any{"Role": "Member"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, engineRules)
			if tt.cached != nil {
				if err := h.store.SetRoles(context.Background(), group, tt.cached, h.now, time.Hour); err != nil {
					t.Fatal(err)
				}
			}
			h.send(t, changed(tt.fields))
			if got := len(h.filler.refreshed) > 0; got != tt.refresh {
				t.Errorf("roles refreshed: %v, want %v", got, tt.refresh)
			}
			if rec := h.audit.last(); rec.Result != "not_evaluated" || rec.Command != tim.CmdAfterMemberFieldChanged {
				t.Errorf("record %+v; want not_evaluated with the command", rec)
			}
		})
	}
	t.Run("300 name card changes cost no role lookup", func(t *testing.T) {
		h := newHarness(t, engineRules)
		for i := range 300 {
			h.send(t, changed(map[string]any{"NameCard": fmt.Sprintf("name %d", i), "EventTime": 1700000000000 + i}))
		}
		if len(h.filler.refreshed) != 0 || len(h.filler.groups) != 0 {
			t.Errorf("%d refreshes and %d fills for name card changes, want none", len(h.filler.refreshed), len(h.filler.groups))
		}
	})
}

// countingObserver records what the engine reports.
type countingObserver struct {
	mu     sync.Mutex
	failed []string
}

func (o *countingObserver) Decided(string, rules.Verdict, time.Duration) {}
func (o *countingObserver) RuleMatched(string, bool)                     {}
func (o *countingObserver) StoreError(string)                            {}
func (o *countingObserver) RuleFailed(rule string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.failed = append(o.failed, rule)
}

func TestARuleThatFailsWhileItRunsIsCountedAndLogged(t *testing.T) {
	var logs bytes.Buffer
	obs := &countingObserver{}
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	e := New(Config{
		Rules: fixedRules{mustRules(t, `version: 1
rules:
  - {name: numeric, on: message, if: 'int(message.text) > 3', verdict: block}
  - {name: slow, on: message, if: 'true', actions: [{mute: 'duration(message.text)'}]}
`)},
		Store: memory.New(memory.Options{}), Audit: &lines{}, Observer: obs,
		Logger: slog.New(slog.NewJSONHandler(&logs, nil)), Now: func() time.Time { return now },
	})
	send := func(text string) {
		ev := msgEvent(t, "u", text)
		ev.Received, ev.Base.Now = now, now
		e.Handle(context.Background(), ev)
	}
	for i := range 3 {
		send(fmt.Sprintf("SECRET%d words", i))
	}
	if want := []string{"numeric", "slow", "numeric", "slow", "numeric", "slow"}; !slices.Equal(obs.failed, want) {
		t.Errorf("rule failures reported %q, want %q", obs.failed, want)
	}
	failures := func() []map[string]any {
		var out []map[string]any
		for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "a rule failed while it ran; the event was decided without it" {
				out = append(out, m)
			}
		}
		return out
	}
	got := failures()
	if len(got) != 2 || got[0]["rule"] != "numeric" || got[1]["rule"] != "slow" {
		t.Fatalf("log lines %v; want one line per failing rule in the first minute", got)
	}
	if !strings.Contains(fmt.Sprint(got[0]["err"]), "invalid operation: int(") || got[0]["event_id"] == "" {
		t.Errorf("log line %v; want the reason and the event id", got[0])
	}
	if strings.Contains(logs.String(), "SECRET") {
		t.Errorf("the log holds message text:\n%s", logs.String())
	}
	now = now.Add(time.Minute)
	send("SECRET3 words")
	got = failures()
	if len(got) != 4 || got[2]["rule"] != "numeric" || got[2]["since_last"] != float64(2) {
		t.Errorf("log lines after a minute %v; want a line per rule again, counting the 2 failures not logged", got)
	}
}

func TestACounterThatFailsIsLoggedWithoutMessageText(t *testing.T) {
	var logs bytes.Buffer
	e := New(Config{
		Rules: fixedRules{mustRules(t, `version: 1
counters: [{name: by_number, on: [message], key: 'group.id + string(int(message.text))', window: 1m}]
rules: [{name: many, on: message, if: 'counters.by_number > 5', verdict: block}]
`)},
		Store: memory.New(memory.Options{}), Audit: &lines{}, Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
	})
	for range 3 {
		e.Handle(context.Background(), msgEvent(t, "u", "PRIVATEWORD1 hello"))
	}
	if n := strings.Count(logs.String(), "a counter failed while it ran"); n != 1 {
		t.Errorf("%d log lines about the failing counter, want 1 (one a minute):\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "invalid operation: int([value])") || strings.Contains(logs.String(), "PRIVATEWORD1") {
		t.Errorf("the log line lacks the redacted reason or holds message text:\n%s", logs.String())
	}
}

func TestARedeliveredAfterCallbackCountsOnce(t *testing.T) {
	h := newHarness(t, `version: 1
counters: [{name: joins, on: [member_joined], key: group.id, window: 1h}]
rules: [{name: raid, on: member_joined, if: 'counters.joins > 2', actions: [{mute_group: 15m}]}]
`)
	join := func(body string) audit.Record {
		t.Helper()
		cb, err := tim.DecodeCallback(tim.CmdAfterNewMemberJoin, []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		h.send(t, NewEvent(cb, []byte(body), h.now))
		return h.audit.last()
	}
	join(`{"GroupId":"g","Type":"Public","JoinType":"Apply","EventTime":1700000000001,"NewMemberList":[{"Member_Account":"ann"}]}`)
	join(`{"EventTime":"1700000000001","NewMemberList":[{"Member_Account":"ann"}],"JoinType":"Apply","Type":"Public","GroupId":"g"}`)
	if rec := join(`{"GroupId":"g","Type":"Public","JoinType":"Apply","EventTime":1700000000002,"NewMemberList":[{"Member_Account":"bob"}]}`); len(rec.Actions) != 0 {
		t.Errorf("the second distinct join acted (%v): the redelivered first join was counted twice", rec.Actions)
	}
	if rec := join(`{"GroupId":"g","Type":"Public","JoinType":"Apply","EventTime":1700000000003,"NewMemberList":[{"Member_Account":"cid"}]}`); len(rec.Actions) != 1 {
		t.Errorf("the third distinct join did not act (%v); the counter must read 3", rec.Actions)
	}
}
