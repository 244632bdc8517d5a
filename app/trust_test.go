package app

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/internal/redistest"
	"github.com/timguard/timguard/tim"
	"github.com/timguard/timguard/tim/timtest"
)

// trustRules hold newcomers to a stricter standard: a user first seen less
// than a day ago who has sent at most two messages may not post listed
// words; the warn and the reply name them, the words and the mute's end.
const trustRules = `version: 1
users: {forget_after: 90d}
lists:
  spam_words: ["free crypto", "airdrop"]
rules:
  - name: newcomer-words
    on: message
    if: 'now - user.first_seen < duration("24h") && user.messages <= 2 && contains_any(message.text, lists.spam_words)'
    verdict: block
    reply: {code: 10102, text: "{user}: {words} is not allowed yet."}
    actions: [{mute: 10m}, {warn: "{user} is muted until {until} ({rule}: {words})"}]
`

// TestE2EANewcomerIsHeldToTrustSignalsAndWarnedByName runs the whole bot on
// real Redis: user.first_seen and user.messages come from the store in the
// callback's round trip, and the warn reaches the IM server with its
// placeholders filled.
func TestE2EANewcomerIsHeldToTrustSignalsAndWarnedByName(t *testing.T) {
	im := timtest.New(timtest.Options{})
	t.Cleanup(im.Close)
	url := redistest.URL(t)
	b := startApp(t, im, botConfig{
		token: e2eToken, imURL: im.URL(), rateLimit: 20, redisURL: url, prefix: keyPrefix(t, url),
		adminToken: e2eAdminTok, executor: fastRetries,
	}, trustRules, nil, nil)
	t.Cleanup(func() {
		b.stop()
		b.checkNoSecrets()
	})
	b.im.AddGroup(timtest.Group{ID: e2eGroup, Type: "Public", Owner: "olga", Members: []string{"eve", "bob"}})

	// bob speaks three times first: his third message is past the newcomers'
	// two.
	for _, text := range []string{"hi", "how are you", "airdrop news?"} {
		if r := b.message(e2eGroup, "bob", text); r.ErrorCode != 0 {
			t.Fatalf("bob's %q answered %+v, want delivered", text, r)
		}
	}
	if r := b.message(e2eGroup, "eve", "hello"); r.ErrorCode != 0 {
		t.Fatalf("eve's first message answered %+v", r)
	}
	before := time.Now().UTC().Truncate(time.Second)
	r := b.message(e2eGroup, "eve", "FREE crypto and an AIRDROP")
	after := time.Now().UTC()
	if r.ErrorCode != 10102 || r.ErrorInfo != "eve: airdrop, free crypto is not allowed yet." {
		t.Fatalf("eve's second message answered %d %q, want 10102 with her name and the words", r.ErrorCode, r.ErrorInfo)
	}
	b.settle(60*time.Second, func() bool { return len(b.im.EffectiveCallsTo(tim.CommandSendGroupSystemNotification)) > 0 })
	b.stop()

	notices := b.im.CallsTo(tim.CommandSendGroupSystemNotification)
	if len(notices) != 1 {
		t.Fatalf("%d notices sent, want 1 (calls %v)", len(notices), b.commands())
	}
	got := body(t, notices[0])
	content, _ := got["Content"].(string)
	if got["GroupId"] != e2eGroup || !slices.Equal(toStrings(got["ToMembers_Account"]), []string{"eve"}) {
		t.Errorf("notice body %v, want it sent to eve in the group", got)
	}
	head, rest, ok := strings.Cut(content, "eve is muted until ")
	stamp, tail, ok2 := strings.Cut(rest, " ")
	if !ok || !ok2 || head != "" || tail != "(newcomer-words: airdrop, free crypto)" {
		t.Fatalf("notice text %q, want the name, the end of the mute, the rule and the words filled in", content)
	}
	until, err := time.Parse(time.RFC3339, stamp)
	if err != nil || until.Before(before.Add(10*time.Minute)) || until.After(after.Add(10*time.Minute)) {
		t.Errorf("{until} became %q (%v): want the mute's end, ten minutes after the message", stamp, err)
	}
	if mute := b.im.MuteUntil(e2eGroup, "eve"); mute.IsZero() {
		t.Error("eve is not muted")
	}
	var words [][]string
	for _, rec := range b.records() {
		if rec.Kind == audit.KindDecision && rec.User == "eve" && len(rec.Rules) > 0 {
			words = append(words, rec.Words)
		}
	}
	if len(words) != 1 || !slices.Equal(words[0], []string{"airdrop", "free crypto"}) {
		t.Errorf("eve's decision records hold words %v, want the two list entries", words)
	}
	for _, c := range b.im.Calls() {
		if c.Command == tim.CommandForbidSendMsg && strings.Contains(string(c.Body), "bob") {
			t.Errorf("bob, past two messages, was muted: %s", c.Body)
		}
	}
}

// toStrings reads a JSON array of strings (anything else as empty strings).
func toStrings(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}
