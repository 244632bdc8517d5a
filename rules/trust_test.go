package rules

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestTrustSignalsArePlannedOnlyWhenRulesReadThem(t *testing.T) {
	on := func(k Kind) string { return string(k) }
	for _, c := range []struct {
		name  string
		rules string
		want  map[string]UserActivity
	}{
		{"no rule reads them: nothing is read or recorded",
			`  - {name: a, on: message, if: 'user.strikes > 1', verdict: block}
  - {name: b, on: member_joined, if: 'true', actions: [{warn: hi}]}`,
			map[string]UserActivity{on(Message): {}, on(MemberJoined): {}}},
		{"a message rule reads them: messages count (there), joins and sent messages are sightings",
			`  - {name: a, on: message, if: 'user.messages < 3 && now - user.first_seen < duration("24h")', verdict: block}
  - {name: b, on: member_joined, if: 'true', actions: [{warn: hi}]}
  - {name: c, on: message_sent, if: 'false', actions: [{warn: hi}]}
  - {name: d, on: join_request, if: 'apply.msg == ""', verdict: reject}`,
			map[string]UserActivity{
				on(Message):      {Read: true, Seen: true, Count: true},
				on(MemberJoined): {Seen: true},
				on(MessageSent):  {Seen: true},
				on(JoinRequest):  {},
			}},
		{"without message rules or counters, message_sent counts",
			`  - {name: a, on: message_sent, if: 'user.messages == 1', actions: [{warn: welcome}]}
  - {name: d, on: join_request, if: 'now - user.first_seen > duration("1h")', verdict: approve}`,
			map[string]UserActivity{
				on(MessageSent): {Read: true, Seen: true, Count: true},
				on(JoinRequest): {Read: true},
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := header + c.rules + "\n"
			if strings.Contains(c.name, "without message rules") {
				src = "version: 1\nrules:\n" + c.rules + "\n"
			}
			set, err := Parse("rules.yaml", []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			for k, want := range c.want {
				if got := set.Plan(Kind(k)).Users; got != want {
					t.Errorf("%s: %+v, want %+v", k, got, want)
				}
			}
		})
	}
}

func TestTrustSignalsReadByRules(t *testing.T) {
	set, err := Parse("rules.yaml", []byte(header+`  - {name: new, on: message, if: 'now - user.first_seen < duration("24h") && user.messages < 5', verdict: block}
  - {name: topic, on: message, if: 'group.topic == "@TGS#_g@TOPIC#_news"', verdict: drop}
`))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name      string
		firstSeen time.Time
		messages  int
		topic     string
		want      []string
	}{
		{"a user first seen an hour ago with two messages is new", now.Add(-time.Hour), 2, "", []string{"new"}},
		{"a user seen for two days is not", now.Add(-48 * time.Hour), 2, "", nil},
		{"a user with many messages is not", now.Add(-time.Hour), 50, "", nil},
		{"the topic is read from the event", now.Add(-48 * time.Hour), 50, "@TGS#_g@TOPIC#_news", []string{"topic"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := set.Env()
			defer e.Release()
			e.Fill(&Input{Kind: Message, Now: now, UserID: "u", UserFirstSeen: c.firstSeen, UserMessages: c.messages, TopicID: c.topic})
			var got []string
			for _, r := range set.Rules {
				ok, err := r.Match(e)
				if err != nil {
					t.Fatal(err)
				}
				if ok {
					got = append(got, r.Name)
				}
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("matched %v, want %v", got, c.want)
			}
		})
	}
}

func TestCountersCannotReadTrustSignals(t *testing.T) {
	for _, field := range []string{"user.messages", "user.first_seen"} {
		src := `version: 1
counters:
  - {name: c, on: [message], key: 'group.id + string(` + field + `)', window: 10s}
rules:
  - {name: r, on: message, if: 'counters.c > 1', verdict: block}
`
		_, problems := parseError(t, "rules.yaml", src)
		want := wantProblem{3, "counter", "c", "key", "cannot read " + field}
		if !slices.ContainsFunc(problems, want.matches) {
			t.Errorf("%s: no problem like %+v in %v", field, want, problems)
		}
	}
}

func TestUsersForgetAfter(t *testing.T) {
	set, err := Parse("rules.yaml", []byte("version: 1\nusers: {forget_after: 30d}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if set.UserTTL != 30*24*time.Hour {
		t.Errorf("UserTTL %s, want 720h", set.UserTTL)
	}
	set, err = Parse("rules.yaml", []byte("version: 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if set.UserTTL != DefaultUserTTL {
		t.Errorf("default UserTTL %s, want %s", set.UserTTL, DefaultUserTTL)
	}
	_, problems := parseError(t, "rules.yaml", "version: 1\nusers: {forget_after: 5m}\n")
	if want := (wantProblem{0, "", "", "users.forget_after", "at least 1h"}); !slices.ContainsFunc(problems, want.matches) {
		t.Errorf("no problem like %+v in %v", want, problems)
	}
}
