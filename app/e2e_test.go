package app

// End-to-end tests: the whole bot built by New from a config file, with
// real Redis, the fake IM server as the REST API, and signed callbacks over
// real HTTP. Each test asserts the exact REST calls the fake received and
// the audit records the bot wrote, and that no secret reached the log or
// the audit file.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/internal/redistest"
	"github.com/timguard/timguard/tim"
	"github.com/timguard/timguard/tim/timtest"
)

const (
	e2eToken    = "e2e-callback-token-5f1c9a"
	e2eAdminTok = "e2e-admin-token-77aa01"
	e2eGroup    = "@TGS#e2e"
	e2eWave     = "@TGS#wave"
)

const e2eRules = `version: 1
lists:
  spam_words: ["free crypto", "airdrop"]
counters:
  - name: user_msgs_10s
    on: [message]
    key: group.id + "/" + user.id
    window: 10s
rules:
  - name: spam-words
    on: message
    if: 'any(lists.spam_words, {lower(message.text) contains #})'
    verdict: block
    reply: {code: 10101, text: "Blocked words are not allowed here."}
    actions: [{strike: 1}]
  - name: repeat-offender
    on: message
    if: user.strikes >= 3
    verdict: block
    actions: [{kick: "Repeated violations"}]
  - name: flood
    on: message
    if: counters.user_msgs_10s > 5
    actions: [{mute: 10m}]
  - name: newcomers-listen-first
    on: member_joined
    if: group.id startsWith "@TGS#wave"
    actions: [{mute: 5m}]
`

// e2eOptions tune one bot.
type e2eOptions struct {
	rateLimit int
	// fakeLimit is the fake IM server's own limit (0: none).
	fakeLimit int
	// executor is the executor: section of the config.
	executor string
}

func startBot(t *testing.T, opts e2eOptions) *bot {
	t.Helper()
	if opts.rateLimit == 0 {
		opts.rateLimit = 20
	}
	if opts.executor == "" {
		opts.executor = fastRetries
	}
	im := timtest.New(timtest.Options{RateLimit: opts.fakeLimit})
	t.Cleanup(im.Close)
	url := redistest.URL(t)
	b := startApp(t, im, botConfig{
		token: e2eToken, imURL: im.URL(), rateLimit: opts.rateLimit, redisURL: url, prefix: keyPrefix(t, url),
		adminToken: e2eAdminTok, executor: opts.executor,
	}, e2eRules, nil, nil)
	t.Cleanup(func() {
		b.stop()
		b.checkNoSecrets()
	})
	return b
}

// callback posts a signed callback and returns the decoded reply.
func (b *bot) callback(command string, body map[string]any) tim.Reply {
	b.t.Helper()
	status, out := b.signed(command, e2eToken, body)
	if status != http.StatusOK {
		b.t.Fatalf("%s answered %d: %s", command, status, out)
	}
	var r tim.Reply
	if err := json.Unmarshal(out, &r); err != nil {
		b.t.Fatalf("reply %s: %v", out, err)
	}
	return r
}

// message sends a BeforeSendMsg callback from user with text in a Public
// group.
func (b *bot) message(group, user, text string) tim.Reply {
	b.t.Helper()
	return b.messageIn(group, tim.GroupPublic, user, text)
}

// messageIn sends a BeforeSendMsg callback from user with text in a group
// of type typ.
func (b *bot) messageIn(group, typ, user, text string) tim.Reply {
	b.t.Helper()
	b.seq++
	return b.callback(tim.CmdBeforeSendMsg, map[string]any{
		"GroupId": group, "Type": typ, "From_Account": user, "Operator_Account": user,
		"Random": b.seq, "MsgId": fmt.Sprintf("msg-%d", b.seq), "OnlineOnlyFlag": 0,
		"MsgBody":   []map[string]any{{"MsgType": "TIMTextElem", "MsgContent": map[string]any{"Text": text}}},
		"EventTime": time.Now().UnixMilli(),
	})
}

// joined sends an AfterNewMemberJoin callback for users.
func (b *bot) joined(group string, users []string) {
	b.t.Helper()
	list := make([]map[string]any, len(users))
	for i, u := range users {
		list[i] = map[string]any{"Member_Account": u}
	}
	b.callback(tim.CmdAfterNewMemberJoin, map[string]any{
		"GroupId": group, "Type": "Public", "JoinType": "Apply", "Operator_Account": users[0],
		"NewMemberList": list, "EventTime": time.Now().UnixMilli(),
	})
}

// settle waits until the outbox has nothing waiting or claimed and cond
// holds.
func (b *bot) settle(within time.Duration, cond func() bool) {
	b.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		st, err := b.app.store.Stats(context.Background(), time.Now())
		if err == nil && st.Ready == 0 && st.Claimed == 0 && (cond == nil || cond()) {
			// One more poll interval: nothing must come back.
			time.Sleep(150 * time.Millisecond)
			if st, err := b.app.store.Stats(context.Background(), time.Now()); err == nil && st.Ready == 0 && st.Claimed == 0 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	st, err := b.app.store.Stats(context.Background(), time.Now())
	b.t.Fatalf("the bot did not settle within %v: outbox %+v, %v; calls %v", within, st, err, b.commands())
}

// commands lists the commands the fake received, in order.
func (b *bot) commands() []string {
	var out []string
	for _, c := range b.im.Calls() {
		out = append(out, c.Command)
	}
	return out
}

// flushAudit waits until the in-process bot's audit writer has handed
// every record written so far to the file (the writer never makes a
// callback wait for its output).
func (b *bot) flushAudit() {
	b.t.Helper()
	if b.app == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.app.audit.Flush(ctx); err != nil {
		b.t.Fatal(err)
	}
}

// records reads the audit file.
func (b *bot) records() []audit.Record {
	b.t.Helper()
	b.flushAudit()
	f, err := os.Open(b.audit)
	if err != nil {
		b.t.Fatal(err)
	}
	defer f.Close()
	var out []audit.Record
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var r audit.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			b.t.Fatalf("audit line %s: %v", sc.Bytes(), err)
		}
		out = append(out, r)
	}
	return out
}

// actionRecords maps action id to its action records.
func (b *bot) actionRecords() map[string][]audit.Record {
	out := map[string][]audit.Record{}
	for _, r := range b.records() {
		if r.Kind == audit.KindAction {
			out[r.Actions[0].ID] = append(out[r.Actions[0].ID], r)
		}
	}
	return out
}

// decided returns the decision records that planned an action of kind,
// with the action ids.
func (b *bot) decided(kind string) map[string]audit.Record {
	out := map[string]audit.Record{}
	for _, r := range b.records() {
		if r.Kind != audit.KindDecision {
			continue
		}
		for _, a := range r.Actions {
			if a.Kind == kind && a.ID != "" {
				out[a.ID] = r
			}
		}
	}
	return out
}

// body decodes a call's JSON body.
func body(t *testing.T, c timtest.Call) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(c.Body, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// checkNoSecrets fails when the log or the audit file holds a secret: the
// secret key, the callback or admin token, or any UserSig the fake saw.
func (b *bot) checkNoSecrets() {
	b.flushAudit()
	auditData, _ := os.ReadFile(b.audit)
	secrets := map[string]string{
		"the secret key":     timtest.DefaultSecretKey,
		"the callback token": e2eToken,
		"the admin token":    e2eAdminTok,
	}
	for i, c := range b.im.Calls() {
		if c.UserSig != "" {
			secrets[fmt.Sprintf("the UserSig of call %d", i)] = c.UserSig
		}
	}
	logs := b.stderr.String()
	if !strings.Contains(logs, "REST call") {
		b.t.Error("the debug log has no REST call records; the secret check would prove little")
	}
	for what, s := range secrets {
		if strings.Contains(logs, s) {
			b.t.Errorf("the log contains %s", what)
		}
		if bytes.Contains(auditData, []byte(s)) {
			b.t.Errorf("the audit file contains %s", what)
		}
	}
	for _, s := range []string{"usersig=", "Sign="} {
		if strings.Contains(logs, s) || bytes.Contains(auditData, []byte(s)) {
			b.t.Errorf("the log or audit file contains %q", s)
		}
	}
}

func TestE2EAFloodMutesTheUserTenMinutes(t *testing.T) {
	b := startBot(t, e2eOptions{})
	b.im.AddGroup(timtest.Group{ID: e2eGroup, Type: "Public", Owner: "olga", Admins: []string{"adam"}, Members: []string{"frank", "carol"}})
	start := time.Now()
	for i := range 6 {
		if r := b.message(e2eGroup, "frank", fmt.Sprintf("hello %d", i)); r.ErrorCode != 0 {
			t.Fatalf("message %d answered %+v, want delivered", i, r)
		}
	}
	b.settle(60*time.Second, func() bool { return len(b.im.EffectiveCallsTo(tim.CommandForbidSendMsg)) > 0 })
	mutes, err := b.app.store.ListMutes(context.Background(), e2eGroup)
	if err != nil || len(mutes) != 1 || mutes[0].User != "frank" || mutes[0].Rule != "flood" {
		t.Errorf("recorded mutes %+v, %v", mutes, err)
	}
	b.stop()

	if got := b.commands(); !slices.Equal(got, []string{tim.CommandGetGroupMemberInfo, tim.CommandForbidSendMsg}) {
		t.Fatalf("calls %v, want the role lookup and one mute", got)
	}
	lookup := body(t, b.im.CallsTo(tim.CommandGetGroupMemberInfo)[0])
	if lookup["GroupId"] != e2eGroup || fmt.Sprint(lookup["MemberRoleFilter"]) != "[Owner Admin]" {
		t.Errorf("get_group_member_info body %v", lookup)
	}
	call := b.im.CallsTo(tim.CommandForbidSendMsg)[0]
	if !call.Effective() || call.Identifier != timtest.DefaultAdmin {
		t.Errorf("forbid_send_msg answered %d as %q", call.Code, call.Identifier)
	}
	if got := body(t, call); got["GroupId"] != e2eGroup || fmt.Sprint(got["Members_Account"]) != "[frank]" || got["MuteTime"] != 600.0 {
		t.Errorf("forbid_send_msg body %v, want frank for 600s", got)
	}
	if until := b.im.MuteUntil(e2eGroup, "frank"); until.Before(start.Add(599*time.Second)) || until.After(time.Now().Add(601*time.Second)) {
		t.Errorf("frank muted until %v", until)
	}

	decisions := b.decided("mute")
	if len(decisions) != 1 {
		t.Fatalf("%d decisions planned a mute, want 1", len(decisions))
	}
	for id, d := range decisions {
		if !slices.Equal(d.Rules, []string{"flood"}) || d.User != "frank" || d.Group != e2eGroup {
			t.Errorf("decision %+v", d)
		}
		recs := b.actionRecords()[id]
		if len(recs) != 1 || recs[0].Result != audit.ResultDone || recs[0].Command != tim.CommandForbidSendMsg ||
			recs[0].EventID != d.EventID || recs[0].Actions[0].Seconds != 600 || recs[0].User != "frank" ||
			recs[0].LatencyUS <= 0 || recs[0].Attempt != 1 || !slices.Equal(recs[0].Rules, []string{"flood"}) {
			t.Errorf("action records for %s: %+v", id, recs)
		}
	}
}

func TestE2ESpamStrikesAndTheThirdStrikeKicks(t *testing.T) {
	b := startBot(t, e2eOptions{})
	b.im.AddGroup(timtest.Group{ID: e2eGroup, Type: "Public", Owner: "olga", Members: []string{"eve", "carol"}})
	for i := range 3 {
		r := b.message(e2eGroup, "eve", fmt.Sprintf("FREE CRYPTO number %d", i))
		if r.ErrorCode != 10101 || r.ErrorInfo != "Blocked words are not allowed here." {
			t.Fatalf("spam %d answered %+v, want blocked with 10101", i, r)
		}
	}
	b.settle(60*time.Second, func() bool { return len(b.im.EffectiveCallsTo(tim.CommandDeleteGroupMember)) > 0 })
	b.stop()

	if got := b.commands(); !slices.Equal(got, []string{tim.CommandGetGroupMemberInfo, tim.CommandDeleteGroupMember}) {
		t.Fatalf("calls %v, want the role lookup and one removal", got)
	}
	got := body(t, b.im.CallsTo(tim.CommandDeleteGroupMember)[0])
	if got["GroupId"] != e2eGroup || fmt.Sprint(got["MemberToDel_Account"]) != "[eve]" || got["Reason"] != "Repeated violations" {
		t.Errorf("delete_group_member body %v", got)
	}
	if b.im.Group(e2eGroup).IsMember("eve") {
		t.Error("eve is still a member")
	}
	var strikes []string
	for _, r := range b.records() {
		if r.Kind == audit.KindDecision && r.User == "eve" {
			strikes = append(strikes, strings.Join(r.Rules, "+"))
		}
	}
	if !slices.Equal(strikes, []string{"spam-words", "spam-words", "spam-words+repeat-offender"}) {
		t.Errorf("decisions %v, want two strikes then the kick", strikes)
	}
	kicks := b.decided("kick")
	if len(kicks) != 1 {
		t.Fatalf("%d decisions planned a kick", len(kicks))
	}
	for id := range kicks {
		recs := b.actionRecords()[id]
		if len(recs) != 1 || recs[0].Result != audit.ResultDone || recs[0].Actions[0].Text != "Repeated violations" {
			t.Errorf("action records %+v", recs)
		}
	}
}

func TestE2EAnAdminWhoFloodsIsLeftAlone(t *testing.T) {
	b := startBot(t, e2eOptions{})
	b.im.AddGroup(timtest.Group{ID: e2eGroup, Type: "Public", Owner: "olga", Admins: []string{"adam"}, Members: []string{"carol"}})
	for i := range 8 {
		b.message(e2eGroup, "adam", fmt.Sprintf("announcement %d", i))
	}
	b.settle(60*time.Second, nil)
	b.stop()
	if got := b.commands(); !slices.Equal(got, []string{tim.CommandGetGroupMemberInfo}) {
		t.Errorf("calls %v, want only the role lookup", got)
	}
	if !b.im.MuteUntil(e2eGroup, "adam").IsZero() {
		t.Error("the admin was muted")
	}
	// Whichever saw the role first, the rule (exempt) or the executor
	// (skipped), the admin's floods end in no mute.
	for _, recs := range b.actionRecords() {
		for _, r := range recs {
			if r.Result != audit.ResultSkipped || r.Error != "exempt: admin" {
				t.Errorf("action record %+v, want skipped as exempt", r)
			}
		}
	}
	admin := 0
	for _, r := range b.records() {
		if r.Kind == audit.KindDecision && r.Role == "admin" {
			admin++
		}
	}
	if admin == 0 {
		t.Error("no decision saw adam as an admin: the role cache was not filled")
	}
}

func TestE2EAJoinWaveIsOneMuteCall(t *testing.T) {
	const rate = 20
	b := startBot(t, e2eOptions{rateLimit: rate})
	wave := make([]string, 300)
	for i := range wave {
		wave[i] = fmt.Sprintf("newbie%03d", i)
	}
	b.im.AddGroup(timtest.Group{ID: e2eWave, Type: "Public", Owner: "olga", Members: wave})
	b.joined(e2eWave, wave)
	b.settle(90*time.Second, func() bool { return len(b.im.EffectiveCallsTo(tim.CommandForbidSendMsg)) > 0 })
	b.stop()

	if got := b.commands(); !slices.Equal(got, []string{tim.CommandGetGroupMemberInfo, tim.CommandForbidSendMsg}) {
		t.Fatalf("calls %v, want the role lookup and one mute", got)
	}
	got := body(t, b.im.CallsTo(tim.CommandForbidSendMsg)[0])
	muted, _ := got["Members_Account"].([]any)
	if len(muted) != 300 || got["MuteTime"] != 300.0 {
		t.Errorf("forbid_send_msg for %d members, MuteTime %v; want 300 for 300s", len(muted), got["MuteTime"])
	}
	if n := b.im.MaxCallsPerSecond(); n > rate {
		t.Errorf("%d calls in one second, rate_limit %d", n, rate)
	}
	st := b.im.Group(e2eWave)
	if len(st.Muted) != 300 {
		t.Errorf("%d members muted, want 300", len(st.Muted))
	}
	done := 0
	for _, recs := range b.actionRecords() {
		if len(recs) == 1 && recs[0].Result == audit.ResultDone {
			done++
		}
	}
	if n := len(b.decided("mute")); n != 300 || done != 300 {
		t.Errorf("%d decisions planned a mute and %d actions are done, want 300 each", n, done)
	}
}

func TestE2EFaultsNeitherRepeatNorLoseActions(t *testing.T) {
	const rate = 20
	// The fake answers 60007 to the first three calls and past 15 calls a
	// second; 30% of the others fail with 10002, some are dropped and some
	// are slow.
	b := startBot(t, e2eOptions{rateLimit: rate, fakeLimit: 15})
	b.im.FailNext("", tim.CodeRateLimit, 3)
	b.im.SetFaults(timtest.Faults{ErrorRate: 0.3, DropRate: 0.03, SlowRate: 0.1, SlowDelay: 200 * time.Millisecond, Seed: 42})
	type key struct{ group, user string }
	want := map[key]bool{}
	const groups = 8
	for g := range groups {
		group := fmt.Sprintf("%s-%d", e2eWave, g)
		var wave []string
		for i := range 25 {
			wave = append(wave, fmt.Sprintf("n%d-%02d", g, i))
		}
		b.im.AddGroup(timtest.Group{ID: group, Type: "Public", Owner: "olga", Members: append(slices.Clone(wave), "frank")})
		b.joined(group, wave)
		for i := range 6 {
			b.message(group, "frank", fmt.Sprintf("flood %d", i))
		}
		for _, u := range append(wave, "frank") {
			want[key{group, u}] = true
		}
	}
	b.settle(120*time.Second, func() bool { return len(b.im.Group(fmt.Sprintf("%s-%d", e2eWave, groups-1)).Muted) == 26 })
	b.stop()

	times := map[key]int{}
	for _, c := range b.im.EffectiveCallsTo(tim.CommandForbidSendMsg) {
		m := body(t, c)
		list, _ := m["Members_Account"].([]any)
		for _, u := range list {
			times[key{m["GroupId"].(string), u.(string)}]++
		}
	}
	for k := range want {
		if times[k] != 1 {
			t.Errorf("%s muted in %s %d times, want once", k.user, k.group, times[k])
		}
	}
	if len(times) != len(want) {
		t.Errorf("%d members muted, want %d", len(times), len(want))
	}
	// The audit agrees with the fake: one done record per mute action, and
	// every decided mute done.
	decided := b.decided("mute")
	recs := b.actionRecords()
	for id := range decided {
		done := 0
		for _, r := range recs[id] {
			if r.Result == audit.ResultDone {
				done++
			} else if r.Result != audit.ResultRetry {
				t.Errorf("%s: %s %s", id, r.Result, r.Error)
			}
		}
		if done != 1 {
			t.Errorf("%s has %d done records, want 1", id, done)
		}
	}
	if len(decided) != len(want) {
		t.Errorf("%d mutes decided, want %d", len(decided), len(want))
	}
	failed := map[string]int{}
	for _, c := range b.im.Calls() {
		switch {
		case c.Code == tim.CodeRateLimit:
			failed["rate_limited"]++
		case !c.Effective():
			failed[c.Fault]++
		}
	}
	if failed["rate_limited"] == 0 || failed["error"] == 0 {
		t.Errorf("failures %v: the faults were not injected", failed)
	}
	if n := b.im.MaxCallsPerSecond(); n > rate {
		t.Errorf("%d calls in one second, rate_limit %d", n, rate)
	}
	t.Logf("%d calls; failures %v", len(b.im.Calls()), failed)
}

func TestE2EAPermanentFailureIsDeadLetteredOnce(t *testing.T) {
	b := startBot(t, e2eOptions{})
	b.im.AddGroup(timtest.Group{ID: e2eGroup, Type: "Public", Owner: "olga", Members: []string{"frank"}})
	b.im.FailNext(tim.CommandForbidSendMsg, tim.CodeBadParameter, 1)
	for i := range 6 {
		b.message(e2eGroup, "frank", fmt.Sprintf("hello %d", i))
	}
	// A group the IM server does not know: the role lookup fails for good.
	for i := range 6 {
		b.message("@TGS#ghost", "gary", fmt.Sprintf("boo %d", i))
	}
	b.settle(60*time.Second, func() bool { return len(b.im.CallsTo(tim.CommandForbidSendMsg)) > 0 })
	time.Sleep(300 * time.Millisecond) // more polls and backoffs: nothing is retried
	dead, err := b.app.store.Dead(context.Background(), 10)
	if err != nil || len(dead) != 2 {
		t.Errorf("dead letters %+v, %v; want 2", dead, err)
	}
	b.stop()

	if n := len(b.im.CallsTo(tim.CommandForbidSendMsg)); n != 1 {
		t.Errorf("%d forbid_send_msg calls, want the one refused", n)
	}
	results := map[string][]string{}
	for _, recs := range b.actionRecords() {
		for _, r := range recs {
			results[r.User] = append(results[r.User], r.Result+" "+r.Error)
		}
	}
	if got := results["frank"]; len(got) != 1 || !strings.HasPrefix(got[0], "dead ") || !strings.Contains(got[0], "error 10004") {
		t.Errorf("frank's action records %v, want one dead with 10004", got)
	}
	if got := results["gary"]; len(got) != 1 || !strings.HasPrefix(got[0], "dead ") || !strings.Contains(got[0], "10015") {
		t.Errorf("gary's action records %v, want one dead with 10015", got)
	}
}

func TestE2EWithoutASecretKeyActionsAreAuditedNotCalled(t *testing.T) {
	url := redistest.URL(t)
	im := timtest.New(timtest.Options{}) // nothing calls it; settle lists its calls
	t.Cleanup(im.Close)
	b := startApp(t, im, botConfig{token: e2eToken, redisURL: url, prefix: keyPrefix(t, url)}, e2eRules, nil, nil)
	if b.app.client != nil || b.app.roles != nil {
		t.Fatal("a REST client was built without a secret key")
	}
	for i := range 6 {
		b.message(e2eGroup, "frank", fmt.Sprintf("hello %d", i))
	}
	b.settle(60*time.Second, func() bool { return len(b.actionRecords()) > 0 })
	b.stop()
	for _, recs := range b.actionRecords() {
		if len(recs) != 1 || recs[0].Result != audit.ResultSkipped || recs[0].Error != "REST calls are off (no tencent.secret_key)" {
			t.Errorf("action records %+v", recs)
		}
	}
}

// TestE2EAShadowRuleChangesNothingButIsAudited: a shadow rule that would
// block and mute lets the message through, sends nothing to the IM server,
// and its would-be verdict and action are in the audit record.
func TestE2EAShadowRuleChangesNothingButIsAudited(t *testing.T) {
	im := timtest.New(timtest.Options{})
	t.Cleanup(im.Close)
	im.AddGroup(timtest.Group{ID: e2eGroup, Type: "Public", Owner: "olga", Members: []string{"sam"}})
	url := redistest.URL(t)
	rules := e2eRules + `  - name: trial-mute
    on: message
    if: message.text contains "watch this"
    shadow: true
    verdict: block
    actions: [{mute: 1h}]
`
	b := startApp(t, im, botConfig{
		token: e2eToken, imURL: im.URL(), rateLimit: 20, redisURL: url, prefix: keyPrefix(t, url),
		adminToken: e2eAdminTok, executor: fastRetries,
	}, rules, nil, nil)
	t.Cleanup(b.checkNoSecrets)
	if r := b.message(e2eGroup, "sam", "watch this trick"); r.ErrorCode != 0 {
		t.Fatalf("the shadow rule's message answered %+v, want it let through", r)
	}
	b.settle(30*time.Second, nil)
	b.stop()
	for _, c := range b.im.Calls() {
		if c.Command != tim.CommandGetGroupMemberInfo {
			t.Errorf("the IM server received %s: a shadow rule must call nothing", c.Command)
		}
	}
	if !b.im.MuteUntil(e2eGroup, "sam").IsZero() {
		t.Error("sam was muted by a shadow rule")
	}
	var rec *audit.Record
	for _, r := range b.records() {
		if r.Kind == audit.KindDecision && r.User == "sam" {
			rec = &r
		}
	}
	if rec == nil {
		t.Fatal("no decision record for sam")
	}
	if !rec.Shadow || !slices.Equal(rec.ShadowRules, []string{"trial-mute"}) || rec.Verdict != "" || len(rec.Rules) != 0 {
		t.Errorf("decision record %+v; want shadow true, shadow_rules [trial-mute], no verdict, no live rule", rec)
	}
	if len(rec.Actions) != 1 || rec.Actions[0].Kind != "mute" || !rec.Actions[0].Shadow || rec.Actions[0].ID != "" {
		t.Errorf("actions %+v; want the would-be mute, marked shadow, never queued", rec.Actions)
	}
	if n := len(b.actionRecords()); n != 0 {
		t.Errorf("%d action records; a shadow rule queues nothing", n)
	}
}

func TestE2ENameCardChangesCostNoRoleLookup(t *testing.T) {
	b := startBot(t, e2eOptions{})
	b.im.AddGroup(timtest.Group{ID: e2eGroup, Type: "Public", Owner: "olga", Members: []string{"mia"}})
	lookups := func() int { return len(b.im.CallsTo(tim.CommandGetGroupMemberInfo)) }
	b.message(e2eGroup, "mia", "hello") // the group's first event fills its roles
	waitFor(t, 10*time.Second, "the first role lookup", func() bool { return lookups() == 1 })
	changed := func(fields map[string]any) {
		body := map[string]any{"GroupId": e2eGroup, "Type": "Public", "Operator_Account": "mia", "Member_Account": "mia", "EventTime": time.Now().UnixMilli()}
		maps.Copy(body, fields)
		if r := b.callback(tim.CmdAfterMemberFieldChanged, body); r.ErrorCode != 0 {
			t.Fatalf("field change answered %+v", r)
		}
	}
	for i := range 300 {
		changed(map[string]any{"NameCard": fmt.Sprintf("mia %d", i)})
	}
	// A role change is looked up; by then every lookup the name cards
	// might have started has been made too.
	changed(map[string]any{"Role": "Admin"})
	waitFor(t, 10*time.Second, "the lookup after the role change", func() bool { return lookups() >= 2 })
	b.settle(10*time.Second, nil)
	if n := lookups(); n != 2 {
		t.Errorf("%d get_group_member_info calls for 300 name card changes and one role change, want 2 (the first fill and the role change)", n)
	}
}
