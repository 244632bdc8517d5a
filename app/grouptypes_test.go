package app

// End-to-end tests of what each group type allows: the whole bot against the
// fake IM server, which answers as Tencent documents its server (no member
// list in live groups, Next in Community groups, no targeted notices in
// live groups, bans only with the Ultimate edition's switch). The table in
// docs/group-types.md is what these tests check.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/internal/redistest"
	"github.com/timguard/timguard/tim"
	"github.com/timguard/timguard/tim/timtest"
)

// groupTypeRules: a flood mutes (bans in groups whose id ends in -ban), and
// commands typed in the group kick, warn, unmute the sender or mute the
// whole group.
const groupTypeRules = `version: 1
counters:
  - name: user_msgs_10s
    on: [message]
    key: group.id + "/" + user.id
    window: 10s
rules:
  - name: flood-ban
    on: message
    if: counters.user_msgs_10s > 5 && group.id endsWith "-ban"
    actions: [{ban: 10m}]
  - name: flood
    on: message
    if: counters.user_msgs_10s > 5 && !(group.id endsWith "-ban")
    actions: [{mute: 10m}]
  - name: kick
    on: message
    if: message.text == "!kick"
    actions: [{kick: "Removed by the moderators."}]
  - name: warn
    on: message
    if: message.text == "!warn"
    actions: [{warn: "Please stay on topic."}]
  - name: unmute
    on: message
    if: message.text == "!unmute"
    actions: [unmute]
  - name: mute-group
    on: message
    if: message.text == "!mutegroup"
    actions: [{mute_group: 10m}]
`

// startGroupTypeBot runs a bot with groupTypeRules against a fake IM server
// with opts.
func startGroupTypeBot(t *testing.T, opts timtest.Options) *bot {
	t.Helper()
	im := timtest.New(opts)
	t.Cleanup(im.Close)
	url := redistest.URL(t)
	b := startApp(t, im, botConfig{
		token: e2eToken, imURL: im.URL(), rateLimit: 50, redisURL: url, prefix: keyPrefix(t, url),
		adminToken: e2eAdminTok, executor: fastRetries,
	}, groupTypeRules, nil, nil)
	t.Cleanup(func() {
		b.stop()
		b.checkNoSecrets()
	})
	return b
}

// settleDue waits until no action is due or claimed (delayed ones, such as
// the end of a group mute, may wait) and cond holds; cond says what it
// still waits for ("" when nothing).
func (b *bot) settleDue(within time.Duration, cond func() string) {
	b.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		st, err := b.app.store.Stats(context.Background(), time.Now())
		if err == nil && st.Due == 0 && st.Claimed == 0 && cond() == "" {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	st, err := b.app.store.Stats(context.Background(), time.Now())
	b.t.Fatalf("the bot did not settle within %v: outbox %+v, %v; waiting for %s; calls %v", within, st, err, cond(), b.commands())
}

// actionOutcome is the last action audit record of the action of kind that
// a decision in group about user planned.
func (b *bot) actionOutcome(group, user, kind string) (audit.Record, bool) {
	var id string
	for _, r := range b.records() {
		if r.Kind != audit.KindDecision || r.Group != group || r.User != user {
			continue
		}
		for _, a := range r.Actions {
			if a.Kind == kind && a.ID != "" {
				id = a.ID
			}
		}
	}
	recs := b.actionRecords()[id]
	if id == "" || len(recs) == 0 {
		return audit.Record{}, false
	}
	return recs[len(recs)-1], true
}

// TestE2EEveryGroupTypeMutesKicksWarnsOrSaysWhyNot runs, in each group type,
// a flood and the commands that kick, warn, unmute and mute the group, and
// checks the REST call made (and its effect at the fake IM server) or the
// audited reason why none was. The fake refuses what Tencent's server
// refuses, and it refused nothing here.
func TestE2EEveryGroupTypeMutesKicksWarnsOrSaysWhyNot(t *testing.T) {
	b := startGroupTypeBot(t, timtest.Options{LiveGroupBan: true})
	type group struct {
		id, fakeType, callbackType, owner string
		admins                            []string
	}
	groups := []group{
		{"@TGS#public", "Public", tim.GroupPublic, "olga", []string{"adam"}},
		{"@TGS#work", "Work", tim.GroupPrivate, "olga", nil},
		{"@TGS#meeting", "Meeting", tim.GroupChatRoom, "olga", []string{"adam"}},
		{"@TGS#live", "Live", tim.GroupAVChatRoom, "host", nil},
		{"@TGS#live-ban", "AVChatRoom", tim.GroupAVChatRoom, "host", nil},
		{"@TGS#community", "Community", tim.GroupCommunity, "olga", []string{"adam"}},
	}
	members := []string{"frank", "kim", "wendy", "uma", "mo"}
	muted := time.Now().Add(time.Hour)
	for _, g := range groups {
		b.im.AddGroup(timtest.Group{ID: g.id, Type: g.fakeType, Owner: g.owner, Admins: g.admins, Members: members})
		b.im.SetMuteUntil(g.id, "uma", muted) // someone muted her before; !unmute lifts it
	}
	type row struct {
		name    string
		group   string
		user    string
		kind    string // the action the rule decides
		result  string // its audit result
		command string // the REST command of its audit record
		reason  string // in the audit record's error
		effect  func(st timtest.GroupState) bool
	}
	isMuted := func(user string) func(timtest.GroupState) bool {
		return func(st timtest.GroupState) bool { return !st.Muted[user].IsZero() }
	}
	notMuted := func(user string) func(timtest.GroupState) bool {
		return func(st timtest.GroupState) bool { return st.Muted[user].IsZero() }
	}
	gone := func(user string) func(timtest.GroupState) bool {
		return func(st timtest.GroupState) bool { return !st.IsMember(user) }
	}
	banned := func(user string) func(timtest.GroupState) bool {
		return func(st timtest.GroupState) bool { return !st.Banned[user].IsZero() && !st.IsMember(user) }
	}
	noticed := func(user string) func(timtest.GroupState) bool {
		return func(st timtest.GroupState) bool {
			return len(st.Notifications) == 1 && slices.Equal(st.Notifications[0].To, []string{user}) &&
				st.Notifications[0].Content == "Please stay on topic."
		}
	}
	mentioned := func(user string) func(timtest.GroupState) bool {
		return func(st timtest.GroupState) bool {
			if len(st.Messages) != 1 || !slices.Equal(st.Messages[0].AtAccounts, []string{user}) {
				return false
			}
			var body []tim.MsgElem
			return json.Unmarshal(st.Messages[0].Body, &body) == nil && len(body) == 1 &&
				body[0].MsgContent.Text == "@"+user+" Please stay on topic."
		}
	}
	groupMuted := func(st timtest.GroupState) bool { return st.MuteAllMember }
	groupNotMuted := func(st timtest.GroupState) bool { return !st.MuteAllMember }
	const (
		noMute      = "Private (Work) groups do not allow muting members"
		noGroupMute = "Private (Work) groups do not allow muting the group"
	)
	done, skipped := audit.ResultDone, audit.ResultSkipped
	tests := []row{
		{"a flood in a Public group mutes the sender", "@TGS#public", "frank", "mute", done, tim.CommandForbidSendMsg, "", isMuted("frank")},
		{"a kick in a Public group removes the member", "@TGS#public", "kim", "kick", done, tim.CommandDeleteGroupMember, "", gone("kim")},
		{"a warning in a Public group is a notice to the member", "@TGS#public", "wendy", "warn", done, tim.CommandSendGroupSystemNotification, "", noticed("wendy")},
		{"an unmute in a Public group lifts the mute", "@TGS#public", "uma", "unmute", done, tim.CommandForbidSendMsg, "", notMuted("uma")},
		{"a group mute in a Public group mutes everyone", "@TGS#public", "mo", "mute_group", done, tim.CommandModifyGroupBaseInfo, "", groupMuted},

		{"a flood in a Work group is skipped: Work groups cannot mute", "@TGS#work", "frank", "mute", skipped, "", noMute, notMuted("frank")},
		{"a kick in a Work group removes the member", "@TGS#work", "kim", "kick", done, tim.CommandDeleteGroupMember, "", gone("kim")},
		{"a warning in a Work group is a notice to the member", "@TGS#work", "wendy", "warn", done, tim.CommandSendGroupSystemNotification, "", noticed("wendy")},
		{"an unmute in a Work group is skipped: Work groups cannot mute", "@TGS#work", "uma", "unmute", skipped, "", noMute, isMuted("uma")},
		{"a group mute in a Work group is skipped: Work groups cannot mute", "@TGS#work", "mo", "mute_group", skipped, "", noGroupMute, groupNotMuted},

		{"a flood in a Meeting group mutes the sender", "@TGS#meeting", "frank", "mute", done, tim.CommandForbidSendMsg, "", isMuted("frank")},
		{"a kick in a Meeting group removes the member", "@TGS#meeting", "kim", "kick", done, tim.CommandDeleteGroupMember, "", gone("kim")},
		{"a warning in a Meeting group is a notice to the member", "@TGS#meeting", "wendy", "warn", done, tim.CommandSendGroupSystemNotification, "", noticed("wendy")},
		{"an unmute in a Meeting group lifts the mute", "@TGS#meeting", "uma", "unmute", done, tim.CommandForbidSendMsg, "", notMuted("uma")},
		{"a group mute in a Meeting group mutes everyone", "@TGS#meeting", "mo", "mute_group", done, tim.CommandModifyGroupBaseInfo, "", groupMuted},

		{"a flood in a Live group mutes the sender", "@TGS#live", "frank", "mute", done, tim.CommandForbidSendMsg, "", isMuted("frank")},
		{"a flood in a Live group where floods ban bans the sender", "@TGS#live-ban", "frank", "ban", done, tim.CommandBanGroupMember, "", banned("frank")},
		{"a kick in a Live group is a ban", "@TGS#live", "kim", "kick", done, tim.CommandBanGroupMember, "", banned("kim")},
		{"a warning in a Live group is a message mentioning the member", "@TGS#live", "wendy", "warn", done, tim.CommandSendGroupMsg, "", mentioned("wendy")},
		{"an unmute in a Live group lifts the mute", "@TGS#live", "uma", "unmute", done, tim.CommandForbidSendMsg, "", notMuted("uma")},
		{"a group mute in a Live group mutes everyone", "@TGS#live", "mo", "mute_group", done, tim.CommandModifyGroupBaseInfo, "", groupMuted},

		{"a flood in a Community group mutes the sender", "@TGS#community", "frank", "mute", done, tim.CommandForbidSendMsg, "", isMuted("frank")},
		{"a kick in a Community group removes the member", "@TGS#community", "kim", "kick", done, tim.CommandDeleteGroupMember, "", gone("kim")},
		{"a warning in a Community group is a notice to the member", "@TGS#community", "wendy", "warn", done, tim.CommandSendGroupSystemNotification, "", noticed("wendy")},
		{"an unmute in a Community group lifts the mute", "@TGS#community", "uma", "unmute", done, tim.CommandForbidSendMsg, "", notMuted("uma")},
		{"a group mute in a Community group mutes everyone", "@TGS#community", "mo", "mute_group", done, tim.CommandModifyGroupBaseInfo, "", groupMuted},
	}
	typeOf := map[string]string{}
	for _, g := range groups {
		typeOf[g.id] = g.callbackType
	}
	trigger := map[string]string{"kick": "!kick", "warn": "!warn", "unmute": "!unmute", "mute_group": "!mutegroup"}
	for _, tt := range tests {
		if text, ok := trigger[tt.kind]; ok {
			b.messageIn(tt.group, typeOf[tt.group], tt.user, text)
			continue
		}
		for i := range 6 { // a flood
			b.messageIn(tt.group, typeOf[tt.group], tt.user, fmt.Sprintf("hello %d", i))
		}
	}
	// The live group's owner floods too: the owner, known from
	// get_group_info, is left alone.
	for i := range 6 {
		b.messageIn("@TGS#live", tim.GroupAVChatRoom, "host", fmt.Sprintf("welcome %d", i))
	}
	b.settleDue(90*time.Second, func() string {
		for _, tt := range tests {
			if r, ok := b.actionOutcome(tt.group, tt.user, tt.kind); !ok || r.Result == audit.ResultRetry {
				return fmt.Sprintf("the %s of %s in %s (decided: %v; last record %+v)", tt.kind, tt.user, tt.group, ok, r)
			}
		}
		return ""
	})

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := b.actionOutcome(tt.group, tt.user, tt.kind)
			if r.Result != tt.result || r.Command != tt.command || !strings.Contains(r.Error, tt.reason) {
				t.Errorf("audit: %s %q %q, want %s %q with %q", r.Result, r.Command, r.Error, tt.result, tt.command, tt.reason)
			}
			if st := b.im.Group(tt.group); !tt.effect(st) {
				t.Errorf("the group at the IM server: %+v", st)
			}
		})
	}

	t.Run("the strict IM server refused no call", func(t *testing.T) {
		for _, c := range b.im.Calls() {
			if !c.Effective() {
				t.Errorf("%s answered %d: %s", c.Command, c.Code, c.Body)
			}
		}
	})
	t.Run("live groups are never asked for members; their owner comes from a filtered get_group_info", func(t *testing.T) {
		asked := map[string]bool{}
		for _, c := range b.im.CallsTo(tim.CommandGetGroupMemberInfo) {
			asked[body(t, c)["GroupId"].(string)] = true
		}
		if asked["@TGS#live"] || asked["@TGS#live-ban"] {
			t.Errorf("get_group_member_info was asked about live groups: %v", asked)
		}
		live := 0
		for _, c := range b.im.CallsTo(tim.CommandGetGroupInfo) {
			if !strings.Contains(string(c.Body), `"ResponseFilter":{"GroupBaseInfoFilter":`) {
				t.Errorf("get_group_info without a ResponseFilter: %s", c.Body)
			}
			if strings.Contains(string(c.Body), "@TGS#live") {
				live++
			}
		}
		if live == 0 {
			t.Error("no get_group_info named a live group's owner")
		}
		// Whichever knew the role first, the rules (the flood rule is not
		// evaluated for the owner) or the executor (the mute is skipped),
		// the owner is recognised.
		var seen []string
		for _, r := range b.records() {
			switch {
			case r.User != "host":
			case r.Kind == audit.KindDecision:
				seen = append(seen, "decision:"+r.Role)
			case r.Kind == audit.KindAction:
				seen = append(seen, "action:"+r.Result+" "+r.Error)
			}
		}
		if !slices.Contains(seen, "decision:owner") && !slices.Contains(seen, "action:skipped exempt: owner") {
			t.Errorf("the live group's owner was seen as %v, want owner", seen)
		}
		if st := b.im.Group("@TGS#live"); !st.Muted["host"].IsZero() || !st.Banned["host"].IsZero() {
			t.Errorf("the live group's owner was acted on: %+v", st)
		}
	})
	t.Run("Community groups are listed with Next", func(t *testing.T) {
		n := 0
		for _, c := range b.im.CallsTo(tim.CommandGetGroupMemberInfo) {
			m := body(t, c)
			if m["GroupId"] != "@TGS#community" {
				continue
			}
			n++
			if next, ok := m["Next"]; !ok || next != "" {
				t.Errorf("get_group_member_info of the Community group: %s, want Next \"\"", c.Body)
			}
		}
		if n == 0 {
			t.Error("the Community group's owner and admins were never listed")
		}
	})
}

// TestE2EAKickInALiveGroupWithoutTheBanSwitchSaysWhatItNeeds: a kick in a
// live group is a ban, which the IM server refuses (10007) unless the app
// has the Ultimate edition with the console switch; the dead letter says so.
func TestE2EAKickInALiveGroupWithoutTheBanSwitchSaysWhatItNeeds(t *testing.T) {
	b := startGroupTypeBot(t, timtest.Options{})
	b.im.AddGroup(timtest.Group{ID: "@TGS#live", Type: "AVChatRoom", Owner: "host", Members: []string{"kim"}})
	b.messageIn("@TGS#live", tim.GroupAVChatRoom, "kim", "!kick")
	b.settleDue(60*time.Second, func() string {
		if r, ok := b.actionOutcome("@TGS#live", "kim", "kick"); !ok || r.Result == audit.ResultRetry {
			return "the kick's outcome"
		}
		return ""
	})
	r, _ := b.actionOutcome("@TGS#live", "kim", "kick")
	if r.Result != audit.ResultDead || r.Command != tim.CommandBanGroupMember ||
		!strings.Contains(r.Error, "error 10007") || !strings.Contains(r.Error, "Ultimate edition") ||
		!strings.Contains(r.Error, "Audio-video group member banning") {
		t.Errorf("audit %s %q %q, want dead at ban_group_member saying what the ban needs", r.Result, r.Command, r.Error)
	}
	dead, err := b.app.store.Dead(context.Background(), 10)
	if err != nil || len(dead) != 1 || !strings.Contains(dead[0].Reason, "Ultimate edition") {
		t.Errorf("dead letters %+v, %v", dead, err)
	}
	if st := b.im.Group("@TGS#live"); !st.IsMember("kim") {
		t.Error("kim was removed although the ban was refused")
	}
}
