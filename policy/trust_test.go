package policy

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/tim"
)

const trustRules = `version: 1
lists:
  spam: [free crypto, t.me/]
rules:
  - name: newcomer-links
    on: message
    if: 'now - user.first_seen < duration("24h") && user.messages <= 3 && contains_any(message.text, lists.spam)'
    verdict: block
    reply: {code: 10101, text: "{user}: {words} ({rule})"}
    actions: [{mute: 10m}, {warn: "{user} is muted until {until} for {words}"}]
  - name: welcome
    on: member_joined
    if: 'user.messages == 0'
    actions: [{warn: "Welcome {user}!"}]
`

func TestTrustSignalsAndPlaceholdersThroughTheEngine(t *testing.T) {
	h := newHarness(t, trustRules)
	start := h.now
	join := eventFrom(t, tim.CmdAfterNewMemberJoin, map[string]any{
		"GroupId": "@TGS#g1", "Type": "Public", "JoinType": "Apply", "EventTime": 1,
		"NewMemberList": []any{map[string]any{"Member_Account": "eve"}},
	})
	h.send(t, join)
	if rec := h.audit.last(); !slices.Equal(rec.Rules, []string{"welcome"}) || rec.Actions[0].Text != "Welcome eve!" {
		t.Fatalf("join record %+v; want welcome with the name filled", rec)
	}

	t.Run("a newcomer's spam is blocked with the texts filled and the words audited", func(t *testing.T) {
		h.now = start.Add(time.Hour)
		out := h.send(t, msgEvent(t, "eve", "FREE crypto at t.me/x"))
		if out.Reply.ErrorCode != 10101 || out.Reply.ErrorInfo != "eve: free crypto, t.me/ (newcomer-links)" {
			t.Errorf("reply %d %q", out.Reply.ErrorCode, out.Reply.ErrorInfo)
		}
		rec := h.audit.last()
		if !slices.Equal(rec.Words, []string{"free crypto", "t.me/"}) {
			t.Errorf("audit words %v, want the list entries", rec.Words)
		}
		pending, err := h.store.Pending(context.Background(), 10)
		if err != nil {
			t.Fatal(err)
		}
		var warn string
		for _, a := range pending {
			if rules.ActionKind(a.Kind) == rules.ActWarn && a.User == "eve" && a.Rule == "newcomer-links" {
				warn = a.Text
			}
		}
		if want := "eve is muted until " + h.now.Add(10*time.Minute).UTC().Format(time.RFC3339) + " for free crypto, t.me/"; warn != want {
			t.Errorf("warn %q, want %q", warn, want)
		}
	})
	t.Run("first seen is the join: a day later the same spam is no newcomer's", func(t *testing.T) {
		h.now = start.Add(25 * time.Hour)
		if out := h.send(t, msgEvent(t, "eve", "free crypto")); len(out.Decisions[0].Rules) != 0 {
			t.Errorf("matched %v a day after the join", out.Decisions[0].Rules)
		}
	})
	t.Run("messages are counted: the fourth message of a fresh user is trusted", func(t *testing.T) {
		h.now = start.Add(26 * time.Hour)
		var matched [][]string
		for i := range 4 {
			h.now = h.now.Add(time.Second)
			out := h.send(t, msgEvent(t, "bob", "free crypto "+string(rune('a'+i))))
			matched = append(matched, out.Decisions[0].Rules)
		}
		if len(matched[2]) != 1 || len(matched[3]) != 0 {
			t.Errorf("bob's four messages matched %v; want the third to match and the fourth not", matched)
		}
	})
}

func TestATopicIsReadFromTheCallback(t *testing.T) {
	set := mustRules(t, `version: 1
rules:
  - {name: news-readonly, on: message, if: 'group.topic == "@TGS#_g@TOPIC#_news"', verdict: drop}
`)
	for _, c := range []struct {
		topic string
		want  rules.Verdict
	}{{"@TGS#_g@TOPIC#_news", rules.Drop}, {"@TGS#_g@TOPIC#_chat", rules.None}, {"", rules.None}} {
		body := map[string]any{
			"GroupId": "@TGS#_g", "Type": "Community", "From_Account": "u", "Random": 1,
			"MsgBody": []any{map[string]any{"MsgType": "TIMTextElem", "MsgContent": map[string]any{"Text": "hi"}}},
		}
		if c.topic != "" {
			body["TopicId"] = c.topic
		}
		ev := eventFrom(t, tim.CmdBeforeSendMsg, body)
		out := Evaluate(set, ev, emptyState(set), Options{})
		if got := out.Decisions[0].Verdict; got != c.want {
			t.Errorf("topic %q: verdict %q, want %q", c.topic, got, c.want)
		}
	}
}

func TestWithoutTheStoreTrustSignalsReadAsLongKnownWithoutMessages(t *testing.T) {
	set := mustRules(t, `version: 1
rules:
  - {name: new, on: message, if: 'now - user.first_seen < duration("24h")', verdict: block}
  - {name: quiet, on: message, if: 'user.messages == 0', actions: [{warn: "{user} has not spoken"}]}
`)
	out := Evaluate(set, msgEvent(t, "u", "hi"), emptyState(set), Options{})
	if d := out.Decisions[0]; !slices.Equal(d.Rules, []string{"quiet"}) {
		t.Errorf("matched %v, want only quiet", d.Rules)
	}
}
