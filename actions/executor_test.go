package actions

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/internal/testclock"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/store/memory"
	"github.com/timguard/timguard/tim"
)

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

const (
	grp  = "@TGS#group"
	live = "@TGS#live"
)

// summary prints the calls other than lookups as "command group n=members
// s=seconds text", sorted.
func summary(calls []fakeCall) []string {
	var out []string
	for _, c := range calls {
		if c.Command == tim.CommandGetGroupInfo || c.Command == tim.CommandGetGroupMemberInfo {
			continue
		}
		out = append(out, fmt.Sprintf("%s %s n=%d s=%d %s", c.Command, c.Group, len(c.Members), c.Seconds, c.Text))
	}
	slices.Sort(out)
	return out
}

func many(kind, group, typ string, users []string, seconds int64, text string) []store.Action {
	out := make([]store.Action, len(users))
	for i, u := range users {
		out[i] = act(fmt.Sprintf("%s-%s-%s-%d-%s", kind, group, u, seconds, text), kind, group, typ, u, seconds, text)
	}
	return out
}

func TestCallsAreBatchedPerGroupAndOperation(t *testing.T) {
	tests := []struct {
		name    string
		actions []store.Action
		want    []string
	}{
		{
			name:    "mutes of 300 members of one group are one forbid_send_msg",
			actions: many(string(rules.ActMute), grp, tim.GroupPublic, members("u", 300), 600, ""),
			want:    []string{"forbid_send_msg @TGS#group n=300 s=600 "},
		},
		{
			name:    "mutes of 1200 members are one forbid_send_msg per 500",
			actions: many(string(rules.ActMute), grp, tim.GroupPublic, members("u", 1200), 600, ""),
			want: []string{
				"forbid_send_msg @TGS#group n=200 s=600 ",
				"forbid_send_msg @TGS#group n=500 s=600 ",
				"forbid_send_msg @TGS#group n=500 s=600 ",
			},
		},
		{
			name: "mutes of different lengths are separate calls",
			actions: append(many(string(rules.ActMute), grp, tim.GroupPublic, members("a", 3), 600, ""),
				many(string(rules.ActMute), grp, tim.GroupPublic, members("b", 2), 1200, "")...),
			want: []string{"forbid_send_msg @TGS#group n=2 s=1200 ", "forbid_send_msg @TGS#group n=3 s=600 "},
		},
		{
			name: "mutes announcing different texts still share a call",
			actions: append(many(string(rules.ActMute), grp, tim.GroupPublic, members("a", 3), 600, "you may talk again"),
				many(string(rules.ActMute), grp, tim.GroupPublic, members("b", 2), 600, "")...),
			want: []string{"forbid_send_msg @TGS#group n=5 s=600 "},
		},
		{
			name: "mutes in two groups are one call per group",
			actions: append(many(string(rules.ActMute), "@TGS#one", tim.GroupPublic, members("u", 4), 60, ""),
				many(string(rules.ActMute), "@TGS#two", tim.GroupChatRoom, members("u", 4), 60, "")...),
			want: []string{"forbid_send_msg @TGS#one n=4 s=60 ", "forbid_send_msg @TGS#two n=4 s=60 "},
		},
		{
			name:    "removals are one delete_group_member per 100, with the reason",
			actions: many(string(rules.ActKick), grp, tim.GroupPublic, members("u", 250), 0, "Repeated violations"),
			want: []string{
				"delete_group_member @TGS#group n=100 s=0 Repeated violations",
				"delete_group_member @TGS#group n=100 s=0 Repeated violations",
				"delete_group_member @TGS#group n=50 s=0 Repeated violations",
			},
		},
		{
			name: "removals with different reasons are separate calls",
			actions: append(many(string(rules.ActKick), grp, tim.GroupPublic, members("a", 2), 0, "spam"),
				many(string(rules.ActKick), grp, tim.GroupPublic, members("b", 2), 0, "abuse")...),
			want: []string{"delete_group_member @TGS#group n=2 s=0 abuse", "delete_group_member @TGS#group n=2 s=0 spam"},
		},
		{
			name:    "bans in a live group go 20 per call",
			actions: many(string(rules.ActBan), live, tim.GroupAVChatRoom, members("u", 45), 3600, ""),
			want: []string{
				"ban_group_member @TGS#live n=20 s=3600 ",
				"ban_group_member @TGS#live n=20 s=3600 ",
				"ban_group_member @TGS#live n=5 s=3600 ",
			},
		},
		{
			name:    "admissions go 20 per call",
			actions: many(string(rules.ActAdmit), grp, tim.GroupPublic, members("u", 30), 0, ""),
			want:    []string{"add_group_member @TGS#group n=10 s=0 ", "add_group_member @TGS#group n=20 s=0 "},
		},
		{
			name:    "warnings with one text to members of one group are one notice",
			actions: many(string(rules.ActWarn), grp, tim.GroupPublic, members("u", 7), 0, "Please stay on topic."),
			want:    []string{"send_group_system_notification @TGS#group n=7 s=0 Please stay on topic."},
		},
		{
			name: "a warning to the whole group names no member",
			actions: []store.Action{
				act("w1", string(rules.ActWarn), grp, tim.GroupPublic, "", 0, "A member was removed."),
				act("w2", string(rules.ActWarn), grp, tim.GroupPublic, "carol", 0, "A member was removed."),
			},
			want: []string{
				"send_group_system_notification @TGS#group n=0 s=0 A member was removed.",
				"send_group_system_notification @TGS#group n=1 s=0 A member was removed.",
			},
		},
		{
			name: "a member muted twice in one batch is named once",
			actions: []store.Action{
				act("m1", string(rules.ActMute), grp, tim.GroupPublic, "carol", 600, ""),
				act("m2", string(rules.ActMute), grp, tim.GroupPublic, "carol", 600, ""),
			},
			want: []string{"forbid_send_msg @TGS#group n=1 s=600 "},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := memory.New(memory.Options{})
			fc := newFakeClient()
			fc.groups[grp] = tim.GroupInfo{Type: tim.GroupPublic, ApplyJoinOption: tim.JoinNeedPermission}
			fc.groups[live] = tim.GroupInfo{Type: tim.GroupAVChatRoom, Owner: "olga"}
			log := &auditLog{}
			e := newTestExecutor(t, s, fc, log, nil)
			enqueue(t, s, time.Now(), tt.actions...)
			drain(t, e)
			if got := summary(fc.Calls()); !slices.Equal(got, tt.want) {
				t.Errorf("calls:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
			for id, res := range log.results(t) {
				if res != audit.ResultDone {
					t.Errorf("action %s: results %s, want done", id, res)
				}
			}
			if n := len(log.records(t)); n != len(tt.actions) {
				t.Errorf("%d audit records for %d actions", n, len(tt.actions))
			}
		})
	}
}

// liveInfo is the get_group_info answer for the live group: an AVChatRoom
// group with its owner and, like every live group, no admins.
var liveInfo = &tim.GroupInfo{Type: tim.GroupAVChatRoom, Owner: "host", ApplyJoinOption: tim.JoinFreeAccess}

func TestTheGroupTypeDecidesWhatIsSent(t *testing.T) {
	tests := []struct {
		name      string
		action    store.Action
		group     *tim.GroupInfo // the get_group_info answer, if any
		refuseAdd bool           // add_group_member answers Result 0
		fail      map[string]int // command -> the error code it answers
		mod       func(*Config)  // changes to the executor's config
		command   string         // the audit record's command, when set
		want      []string       // calls, lookups included
		result    string
		errSubstr string
	}{
		{
			name:   "a mute in a Public group is forbid_send_msg with MuteTime",
			action: act("a", string(rules.ActMute), grp, tim.GroupPublic, "carol", 600, ""),
			want:   []string{"get_group_member_info", "forbid_send_msg @TGS#group [carol] 600 \"\""},
			result: audit.ResultDone,
		},
		{
			name:      "a mute in a Private group is skipped",
			action:    act("a", string(rules.ActMute), grp, tim.GroupPrivate, "carol", 600, ""),
			result:    audit.ResultSkipped,
			errSubstr: "Private (Work) groups do not allow muting members",
		},
		{
			name:      "a mute in a Work group (SDK name) is skipped",
			action:    act("a", string(rules.ActMute), grp, "Work", "carol", 600, ""),
			result:    audit.ResultSkipped,
			errSubstr: "Private (Work) groups do not allow muting members",
		},
		{
			name:   "an unmute is forbid_send_msg with MuteTime 0",
			action: act("a", string(rules.ActUnmute), grp, tim.GroupChatRoom, "carol", 0, ""),
			want:   []string{"forbid_send_msg @TGS#group [carol] 0 \"\""},
			result: audit.ResultDone,
		},
		{
			name:   "a group mute is modify_group_base_info MuteAllMember On",
			action: act("a", string(rules.ActMuteGroup), grp, tim.GroupPublic, "", 900, ""),
			want:   []string{"modify_group_base_info @TGS#group [] 0 \"On\""},
			result: audit.ResultDone,
		},
		{
			name:      "a group mute in a Private group is skipped",
			action:    act("a", string(rules.ActMuteGroup), grp, tim.GroupPrivate, "", 900, ""),
			result:    audit.ResultSkipped,
			errSubstr: "Private (Work) groups do not allow muting the group",
		},
		{
			name:   "a group unmute is modify_group_base_info MuteAllMember Off",
			action: act("a", string(rules.ActUnmuteGroup), grp, tim.GroupPublic, "", 0, ""),
			want:   []string{"modify_group_base_info @TGS#group [] 0 \"Off\""},
			result: audit.ResultDone,
		},
		{
			name:   "a kick is delete_group_member with the reason",
			action: act("a", string(rules.ActKick), grp, tim.GroupCommunity, "carol", 0, "Repeated violations"),
			want:   []string{"get_group_member_info", "delete_group_member @TGS#group [carol] 0 \"Repeated violations\""},
			result: audit.ResultDone,
		},
		{
			name:   "a kick in an AVChatRoom group is a ban of an hour with the reason; the owner comes from get_group_info",
			action: act("a", string(rules.ActKick), live, tim.GroupAVChatRoom, "carol", 0, "Repeated violations"),
			group:  liveInfo,
			want:   []string{"get_group_info", "ban_group_member @TGS#live [carol] 3600 \"Repeated violations\""},
			result: audit.ResultDone,
		},
		{
			name:   "a kick with a duration in an AVChatRoom group bans that long",
			action: act("a", string(rules.ActKick), live, "Live", "carol", 120, "spam"),
			group:  liveInfo,
			want:   []string{"get_group_info", "ban_group_member @TGS#live [carol] 120 \"spam\""},
			result: audit.ResultDone,
		},
		{
			name:   "a kick in an AVChatRoom group with a long reason bans with its first 1,000 bytes",
			action: act("a", string(rules.ActKick), live, tim.GroupAVChatRoom, "carol", 0, strings.Repeat("é", 600)),
			group:  liveInfo,
			want:   []string{"get_group_info", "ban_group_member @TGS#live [carol] 3600 \"" + strings.Repeat("é", 500) + "\""},
			result: audit.ResultDone,
		},
		{
			name:      "a ban the IM server refuses with 10007 is dead-lettered saying what the ban needs",
			action:    act("a", string(rules.ActKick), live, tim.GroupAVChatRoom, "carol", 0, "spam"),
			group:     liveInfo,
			fail:      map[string]int{tim.CommandBanGroupMember: tim.CodeNoPermission},
			want:      []string{"get_group_info", "ban_group_member @TGS#live [carol] 3600 \"spam\""},
			result:    audit.ResultDead,
			errSubstr: "needs the IM Ultimate edition and \"Audio-video group member banning\" switched on in the IM console",
		},
		{
			name:   "a mute in an AVChatRoom group looks up the owner with get_group_info, never the member list",
			action: act("a", string(rules.ActMute), live, tim.GroupAVChatRoom, "carol", 600, ""),
			group:  liveInfo,
			want:   []string{"get_group_info", "forbid_send_msg @TGS#live [carol] 600 \"\""},
			result: audit.ResultDone,
		},
		{
			name:      "a mute in a live group whose owner cannot be looked up fails at get_group_info",
			action:    act("a", string(rules.ActMute), live, tim.GroupAVChatRoom, "carol", 600, ""),
			group:     liveInfo,
			fail:      map[string]int{tim.CommandGetGroupInfo: tim.CodeGroupNotFound},
			want:      []string{"get_group_info"},
			result:    audit.ResultDead,
			command:   tim.CommandGetGroupInfo,
			errSubstr: "look up the owner and admins of @TGS#live",
		},
		{
			name:   "a mute in a Community group lists the owner and admins with Next",
			action: act("a", string(rules.ActMute), grp, tim.GroupCommunity, "carol", 600, ""),
			group:  &tim.GroupInfo{Type: tim.GroupCommunity},
			want:   []string{"get_group_member_info", "forbid_send_msg @TGS#group [carol] 600 \"\""},
			result: audit.ResultDone,
		},
		{
			name:   "a warning to a member of an AVChatRoom group is a message mentioning them",
			action: act("a", string(rules.ActWarn), live, tim.GroupAVChatRoom, "carol", 0, "Please stay on topic."),
			group:  liveInfo,
			want:   []string{fmt.Sprintf("send_group_msg @TGS#live [carol] %d \"@carol Please stay on topic.\"", actionRandom("a"))},
			result: audit.ResultDone,
		},
		{
			name:   "a warning to a member of a group of unknown type looks the type up first",
			action: act("a", string(rules.ActWarn), live, "", "carol", 0, "Please stay on topic."),
			group:  liveInfo,
			want:   []string{"get_group_info", fmt.Sprintf("send_group_msg @TGS#live [carol] %d \"@carol Please stay on topic.\"", actionRandom("a"))},
			result: audit.ResultDone,
		},
		{
			name:      "a warning to a member of an AVChatRoom group is skipped when told so",
			action:    act("a", string(rules.ActWarn), live, tim.GroupAVChatRoom, "carol", 0, "Please stay on topic."),
			mod:       func(c *Config) { c.LiveWarn = LiveWarnSkip },
			result:    audit.ResultSkipped,
			errSubstr: "AVChatRoom (live) groups take system notifications to all members only",
		},
		{
			name:   "a warning to all of an AVChatRoom group is a notice to all",
			action: act("a", string(rules.ActWarn), live, tim.GroupAVChatRoom, "", 0, "Be kind."),
			want:   []string{"send_group_system_notification @TGS#live [] 0 \"Be kind.\""},
			result: audit.ResultDone,
		},
		{
			name:      "a ban outside AVChatRoom is skipped",
			action:    act("a", string(rules.ActBan), grp, tim.GroupPublic, "carol", 600, ""),
			result:    audit.ResultSkipped,
			errSubstr: "ban only exists in AVChatRoom (live) groups; this group is Public",
		},
		{
			name:   "an unban in an AVChatRoom group is unban_group_member",
			action: act("a", string(rules.ActUnban), live, tim.GroupAVChatRoom, "carol", 0, ""),
			want:   []string{"unban_group_member @TGS#live [carol] 0 \"\""},
			result: audit.ResultDone,
		},
		{
			name:   "an admission in a NeedPermission group is add_group_member",
			action: act("a", string(rules.ActAdmit), grp, tim.GroupPublic, "carol", 0, ""),
			group:  &tim.GroupInfo{Type: tim.GroupPublic, ApplyJoinOption: tim.JoinNeedPermission},
			want:   []string{"get_group_info", "add_group_member @TGS#group [carol] 0 \"\""},
			result: audit.ResultDone,
		},
		{
			name:      "an admission the server refuses for the member is dead-lettered",
			action:    act("a", string(rules.ActAdmit), grp, tim.GroupPublic, "carol", 0, ""),
			group:     &tim.GroupInfo{Type: tim.GroupPublic, ApplyJoinOption: tim.JoinNeedPermission},
			refuseAdd: true,
			want:      []string{"get_group_info", "add_group_member @TGS#group [carol] 0 \"\""},
			result:    audit.ResultDead,
			errSubstr: "did not add carol (Result 0)",
		},
		{
			name:      "an admission in a FreeAccess group is skipped",
			action:    act("a", string(rules.ActAdmit), grp, tim.GroupPublic, "carol", 0, ""),
			group:     &tim.GroupInfo{Type: tim.GroupPublic, ApplyJoinOption: tim.JoinFreeAccess},
			want:      []string{"get_group_info"},
			result:    audit.ResultSkipped,
			errSubstr: "the group admits applicants itself",
		},
		{
			name:      "an admission in an AVChatRoom group is skipped",
			action:    act("a", string(rules.ActAdmit), live, tim.GroupAVChatRoom, "carol", 0, ""),
			group:     &tim.GroupInfo{Type: tim.GroupAVChatRoom, ApplyJoinOption: tim.JoinFreeAccess},
			want:      []string{"get_group_info"},
			result:    audit.ResultSkipped,
			errSubstr: "AVChatRoom groups admit anyone",
		},
		{
			name:      "an action without a group type looks the type up first",
			action:    act("a", string(rules.ActMute), grp, "", "carol", 600, ""),
			group:     &tim.GroupInfo{Type: tim.GroupPrivate},
			want:      []string{"get_group_info"},
			result:    audit.ResultSkipped,
			errSubstr: "Private (Work) groups",
		},
		{
			name:      "an action in a group the server does not know is dead-lettered",
			action:    act("a", string(rules.ActKick), "@TGS#gone", "", "carol", 0, "spam"),
			want:      []string{"get_group_info"},
			result:    audit.ResultDead,
			errSubstr: "error 10015",
		},
		{
			name:   "a warning is a notice to that member",
			action: act("a", string(rules.ActWarn), grp, tim.GroupPublic, "carol", 0, "Please stay on topic."),
			want:   []string{"send_group_system_notification @TGS#group [carol] 0 \"Please stay on topic.\""},
			result: audit.ResultDone,
		},
		{
			name:      "an action of an unknown kind is dead-lettered",
			action:    act("a", "teleport", grp, tim.GroupPublic, "carol", 0, ""),
			result:    audit.ResultDead,
			errSubstr: `invalid action: unknown kind "teleport"`,
		},
		{
			name:      "a mute without a duration is dead-lettered",
			action:    act("a", string(rules.ActMute), grp, tim.GroupPublic, "carol", 0, ""),
			result:    audit.ResultDead,
			errSubstr: "invalid action: mute needs a duration",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := memory.New(memory.Options{})
			fc := newFakeClient()
			if tt.group != nil {
				fc.groups[tt.action.Group] = *tt.group
			}
			if tt.refuseAdd {
				fc.added = func(string, string) int { return tim.AddResultFailed }
			}
			if tt.fail != nil {
				fc.fail = func(c fakeCall) error {
					if code := tt.fail[c.Command]; code != 0 {
						return apiErr(c.Command, code)
					}
					return nil
				}
			}
			log := &auditLog{}
			e := newTestExecutor(t, s, fc, log, tt.mod)
			enqueue(t, s, time.Now(), tt.action)
			drain(t, e)
			var got []string
			for _, c := range fc.Calls() {
				if c.Command == tim.CommandGetGroupInfo || c.Command == tim.CommandGetGroupMemberInfo {
					got = append(got, c.Command)
					continue
				}
				got = append(got, fmt.Sprintf("%s %s %v %d %q", c.Command, c.Group, c.Members, c.Seconds, c.Text))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("calls:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
			recs := log.records(t)
			if len(recs) != 1 {
				t.Fatalf("%d audit records, want 1: %+v", len(recs), recs)
			}
			r := recs[0]
			if r.Result != tt.result || !strings.Contains(r.Error, tt.errSubstr) {
				t.Errorf("audit result %q error %q, want %q containing %q", r.Result, r.Error, tt.result, tt.errSubstr)
			}
			if tt.command != "" && r.Command != tt.command {
				t.Errorf("audit command %q, want %q", r.Command, tt.command)
			}
			if r.Kind != audit.KindAction || r.Group != tt.action.Group || r.User != tt.action.User ||
				r.EventID != tt.action.EventID || r.Attempt != 1 || len(r.Actions) != 1 || r.Actions[0].ID != tt.action.ID ||
				!slices.Equal(r.Rules, []string{"test-rule"}) {
				t.Errorf("audit record %+v does not describe the action", r)
			}
			st, err := s.Stats(context.Background(), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			wantDead := 0
			if tt.result == audit.ResultDead {
				wantDead = 1
			}
			if st.Due != 0 || st.Claimed != 0 || st.Dead != wantDead {
				t.Errorf("outbox %+v, want nothing due with %d dead", st, wantDead)
			}
		})
	}
}

func TestOwnersAdminsAndTheAppAdminAreExempt(t *testing.T) {
	all := []string{store.RoleOwner, store.RoleAdmin, string(rules.RoleAppAdmin)}
	tests := []struct {
		name   string
		action store.Action
		roles  []string
		result string
		reason string
	}{
		{"a mute of the owner is skipped", act("a", string(rules.ActMute), grp, tim.GroupPublic, "olga", 600, ""), nil, audit.ResultSkipped, "exempt: owner"},
		{"a mute of an admin is skipped", act("a", string(rules.ActMute), grp, tim.GroupPublic, "adam", 600, ""), nil, audit.ResultSkipped, "exempt: admin"},
		{"a kick of an admin is skipped", act("a", string(rules.ActKick), grp, tim.GroupPublic, "adam", 0, "spam"), nil, audit.ResultSkipped, "exempt: admin"},
		{"a ban of the owner of a live group is skipped", act("a", string(rules.ActBan), live, tim.GroupAVChatRoom, "olga", 60, ""), nil, audit.ResultSkipped, "exempt: owner"},
		{"a live group has no admins: a ban of a member listed as one elsewhere is done", act("a", string(rules.ActBan), live, tim.GroupAVChatRoom, "adam", 60, ""), nil, audit.ResultDone, ""},
		{"a kick of the App admin is skipped", act("a", string(rules.ActKick), grp, tim.GroupPublic, "administrator", 0, "spam"), nil, audit.ResultSkipped, "exempt: app_admin"},
		{"a mute of a member is done", act("a", string(rules.ActMute), grp, tim.GroupPublic, "carol", 600, ""), nil, audit.ResultDone, ""},
		{"an unmute of an admin is done", act("a", string(rules.ActUnmute), grp, tim.GroupPublic, "adam", 0, ""), nil, audit.ResultDone, ""},
		{"a warning to the owner is done", act("a", string(rules.ActWarn), grp, tim.GroupPublic, "olga", 0, "hi"), nil, audit.ResultDone, ""},
		{"a rule naming admins kicks an admin", act("a", string(rules.ActKick), grp, tim.GroupPublic, "adam", 0, "spam"), []string{store.RoleAdmin}, audit.ResultDone, ""},
		{"a rule naming admins leaves the owner alone", act("a", string(rules.ActMute), grp, tim.GroupPublic, "olga", 60, ""), []string{store.RoleAdmin}, audit.ResultSkipped, "exempt: owner"},
		{"a rule naming every role mutes the App admin", act("a", string(rules.ActMute), grp, tim.GroupPublic, "administrator", 60, ""), all, audit.ResultDone, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := memory.New(memory.Options{})
			fc := newFakeClient()
			for _, g := range []string{grp, live} {
				fc.roles[g] = map[string]string{"olga": tim.RoleOwner, "adam": tim.RoleAdmin}
			}
			fc.groups[live] = tim.GroupInfo{Type: tim.GroupAVChatRoom, Owner: "olga"}
			log := &auditLog{}
			e := newTestExecutor(t, s, fc, log, nil)
			tt.action.Roles = tt.roles
			enqueue(t, s, time.Now(), tt.action)
			drain(t, e)
			recs := log.records(t)
			if len(recs) != 1 || recs[0].Result != tt.result || recs[0].Error != tt.reason {
				t.Fatalf("audit %+v, want one record %s %q", recs, tt.result, tt.reason)
			}
			acted := len(summary(fc.Calls())) > 0
			if acted != (tt.result == audit.ResultDone) {
				t.Errorf("calls %v for result %s", fc.Calls(), tt.result)
			}
			if len(fc.CallsTo(tim.CommandGetGroupMemberInfo)) == 0 {
				return
			}
			// The lookup filled the store's cache, where rules read user.role.
			res, err := s.Enrich(context.Background(), store.EnrichRequest{Now: time.Now(), RoleGroup: tt.action.Group, RoleUsers: []string{"olga", "adam", "carol"}})
			if err != nil || !res.RolesCached || !slices.Equal(res.Roles, []string{"owner", "admin", "member"}) {
				t.Errorf("cached roles %+v, %v; want owner, admin, member", res, err)
			}
		})
	}
}

func TestFailuresAreRetriedWithBackoffThenDeadLettered(t *testing.T) {
	all := []string{store.RoleOwner, store.RoleAdmin, string(rules.RoleAppAdmin)}
	transport := &tim.TransportError{Command: tim.CommandForbidSendMsg, Op: tim.OpSend, Err: errors.New("connection reset")}
	tests := []struct {
		name        string
		err         error
		failures    int // calls that fail before one succeeds; -1 = all
		maxAttempts int
		results     string
		lastErr     string
	}{
		{"a retryable failure is retried with growing waits until it works", apiErr(tim.CommandForbidSendMsg, tim.CodeInternalError), 3, 8, "retry,retry,retry,done", ""},
		{"a rate-limited failure is retried", apiErr(tim.CommandForbidSendMsg, tim.CodeRateLimit), 2, 8, "retry,retry,done", ""},
		{"a network failure is retried", transport, 1, 8, "retry,done", ""},
		{"a failure that does not end is dead-lettered after the last attempt", apiErr(tim.CommandForbidSendMsg, tim.CodeInternalError), -1, 4, "retry,retry,retry,dead", "gave up after 4 attempts"},
		{"a permanent failure is dead-lettered at once", apiErr(tim.CommandForbidSendMsg, tim.CodeBadParameter), -1, 8, "dead", "error 10004"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := memory.New(memory.Options{})
				fc := newFakeClient()
				var mu sync.Mutex
				failed := 0
				fc.fail = func(c fakeCall) error {
					mu.Lock()
					defer mu.Unlock()
					if tt.failures < 0 || failed < tt.failures {
						failed++
						return tt.err
					}
					return nil
				}
				log := &auditLog{}
				e := newTestExecutor(t, s, fc, log, func(c *Config) {
					c.MinBackoff, c.MaxBackoff, c.MaxAttempts = time.Second, time.Minute, tt.maxAttempts
					c.PollInterval = 100 * time.Millisecond
				})
				a := act("a", string(rules.ActMute), grp, tim.GroupPublic, "carol", 600, "")
				a.Roles = all
				enqueue(t, s, time.Now(), a)
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan error)
				go func() { done <- e.Run(ctx) }()
				time.Sleep(10 * time.Minute)
				cancel()
				if err := <-done; err != nil {
					t.Fatalf("Run: %v", err)
				}

				if got := log.results(t)["a"]; got != tt.results {
					t.Errorf("results %s, want %s", got, tt.results)
				}
				recs := log.byAction(t)["a"]
				for i, r := range recs {
					if r.Attempt != i+1 {
						t.Errorf("record %d has attempt %d", i, r.Attempt)
					}
				}
				if last := recs[len(recs)-1]; !strings.Contains(last.Error, tt.lastErr) {
					t.Errorf("last record error %q, want %q in it", last.Error, tt.lastErr)
				}
				calls := fc.CallsTo(tim.CommandForbidSendMsg)
				if len(calls) != len(recs) {
					t.Errorf("%d calls for %d records", len(calls), len(recs))
				}
				// Each wait is the exponential backoff from 1s, ±50%, plus at
				// most a poll interval.
				for i := 1; i < len(calls); i++ {
					gap := calls[i].At.Sub(calls[i-1].At)
					step := time.Second << (i - 1)
					lo, hi := step/2, step*3/2+150*time.Millisecond
					if tim.Classify(tt.err) == tim.RateLimited {
						lo, hi = step, step*3+150*time.Millisecond
					}
					if gap < lo || gap > hi {
						t.Errorf("wait before attempt %d = %v, want %v..%v", i+1, gap, lo, hi)
					}
				}
				dead, err := s.Dead(context.Background(), 10)
				if err != nil {
					t.Fatal(err)
				}
				if wantDead := strings.HasSuffix(tt.results, "dead"); wantDead != (len(dead) == 1) {
					t.Errorf("dead letters %+v", dead)
				} else if wantDead && !strings.Contains(dead[0].Reason, tt.lastErr) {
					t.Errorf("dead letter reason %q, want %q in it", dead[0].Reason, tt.lastErr)
				}
			})
		})
	}
}

func TestABatchRefusedAsAWholeIsRetriedOneByOne(t *testing.T) {
	s := memory.New(memory.Options{})
	fc := newFakeClient()
	fc.fail = func(c fakeCall) error {
		if slices.Contains(c.Members, "olga") {
			return apiErr(c.Command, tim.CodeBadParameter) // the owner cannot be removed
		}
		return nil
	}
	log := &auditLog{}
	e := newTestExecutor(t, s, fc, log, nil)
	var as []store.Action
	for _, u := range []string{"a", "b", "olga", "c"} {
		a := act("kick-"+u, string(rules.ActKick), grp, tim.GroupPublic, u, 0, "spam")
		a.Roles = []string{store.RoleOwner, store.RoleAdmin, string(rules.RoleAppAdmin)}
		as = append(as, a)
	}
	enqueue(t, s, time.Now(), as...)
	drain(t, e)
	want := map[string]string{"kick-a": "retry,done", "kick-b": "retry,done", "kick-c": "retry,done", "kick-olga": "retry,dead"}
	if got := log.results(t); !mapsEqual(got, want) {
		t.Errorf("results %v, want %v", got, want)
	}
	var sizes []int
	for _, c := range fc.CallsTo(tim.CommandDeleteGroupMember) {
		sizes = append(sizes, len(c.Members))
	}
	if !slices.Equal(sizes, []int{4, 1, 1, 1, 1}) {
		t.Errorf("delete_group_member sizes %v, want one call of 4 then one per member", sizes)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestDryRunAndRESTOffCallNothing(t *testing.T) {
	tests := []struct {
		name   string
		client bool
		dryRun bool
		reload bool // switch dry run on after New, as a reload does
		result string
		reason string
	}{
		{"a dry run audits each action and calls nothing", true, true, false, audit.ResultDryRun, ""},
		{"a dry run switched on by a reload calls nothing", true, false, true, audit.ResultDryRun, ""},
		{"without a client each action is skipped", false, false, false, audit.ResultSkipped, RESTOffReason},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := memory.New(memory.Options{})
			fc := newFakeClient()
			var client Client
			if tt.client {
				client = fc
			}
			log := &auditLog{}
			e := newTestExecutor(t, s, client, log, func(c *Config) { c.DryRun = tt.dryRun })
			if tt.reload {
				e.SetDryRun(true)
			}
			enqueue(t, s, time.Now(),
				act("m", string(rules.ActMute), grp, tim.GroupPublic, "carol", 600, "bye"),
				act("k", string(rules.ActKick), grp, "", "dave", 0, "spam"),
				act("g", string(rules.ActMuteGroup), grp, tim.GroupPublic, "", 900, "open"),
				act("x", string(rules.ActAdmit), grp, tim.GroupPublic, "erin", 0, ""),
			)
			drain(t, e)
			if calls := fc.Calls(); len(calls) != 0 {
				t.Errorf("calls %v, want none", calls)
			}
			for _, r := range log.records(t) {
				if r.Result != tt.result || r.Error != tt.reason {
					t.Errorf("record %s: %s %q, want %s %q", r.Actions[0].ID, r.Result, r.Error, tt.result, tt.reason)
				}
			}
			if n := len(log.records(t)); n != 4 {
				t.Errorf("%d records, want 4", n)
			}
			st, _ := s.Stats(context.Background(), time.Now().Add(24*time.Hour))
			mutes, _ := s.MutedGroups(context.Background())
			if st.Ready != 0 || st.Claimed != 0 || st.Dead != 0 || len(mutes) != 0 {
				t.Errorf("outbox %+v and mutes %v, want nothing left and no follow-up", st, mutes)
			}
		})
	}
}

func TestFollowUpsEndAndAnnounceMutes(t *testing.T) {
	all := []string{store.RoleOwner, store.RoleAdmin, string(rules.RoleAppAdmin)}
	ctx := context.Background()
	newRig := func(t *testing.T) (*testclock.Clock, *memory.Store, *fakeClient, *auditLog, *Executor) {
		clk := testclock.New(t0)
		s := memory.New(memory.Options{Now: clk.Now})
		fc := newFakeClient()
		log := &auditLog{}
		e := newTestExecutor(t, s, fc, log, func(c *Config) { c.Now = clk.Now })
		return clk, s, fc, log, e
	}
	runAt := func(t *testing.T, e *Executor, want int) {
		t.Helper()
		n, err := e.RunOnce(ctx)
		if err != nil || n != want {
			t.Fatalf("RunOnce = %d, %v; want %d actions", n, err, want)
		}
	}

	t.Run("a group mute ends with an unmute that announces the end", func(t *testing.T) {
		clk, s, fc, log, e := newRig(t)
		enqueue(t, s, t0, act("raid", string(rules.ActMuteGroup), grp, tim.GroupPublic, "", 900, "The group can talk again."))
		runAt(t, e, 1)
		mutes, _ := s.ListMutes(ctx, grp)
		if len(mutes) != 1 || mutes[0].User != "" || !mutes[0].Until.Equal(t0.Add(15*time.Minute)) || mutes[0].Rule != "test-rule" {
			t.Errorf("mutes %+v, want the group muted until +15m", mutes)
		}
		pending, _ := s.Pending(ctx, 10)
		if len(pending) != 1 || pending[0].ID != "raid/end" || pending[0].Kind != string(rules.ActUnmuteGroup) ||
			!pending[0].NotBefore.Equal(t0.Add(15*time.Minute)) || pending[0].Text != "The group can talk again." {
			t.Fatalf("pending %+v, want the unmute due at +15m", pending)
		}
		clk.Add(15*time.Minute - time.Second)
		runAt(t, e, 0)
		clk.Add(time.Second)
		runAt(t, e, 1)
		if mutes, _ := s.ListMutes(ctx, grp); len(mutes) != 0 {
			t.Errorf("mutes %+v after the unmute, want none", mutes)
		}
		runAt(t, e, 1) // the announcement
		want := []string{
			"modify_group_base_info @TGS#group n=0 s=0 Off",
			"modify_group_base_info @TGS#group n=0 s=0 On",
			"send_group_system_notification @TGS#group n=0 s=0 The group can talk again.",
		}
		if got := summary(fc.Calls()); !slices.Equal(got, want) {
			t.Errorf("calls %v, want %v", got, want)
		}
		if got := log.results(t); !mapsEqual(got, map[string]string{"raid": "done", "raid/end": "done", "raid/end/announce": "done"}) {
			t.Errorf("results %v", got)
		}
	})

	t.Run("a member mute with an announcement tells the member when it ends", func(t *testing.T) {
		clk, s, fc, log, e := newRig(t)
		a := act("flood", string(rules.ActMute), grp, tim.GroupPublic, "carol", 600, "You can write again.")
		a.Roles = all
		enqueue(t, s, t0, a)
		runAt(t, e, 1)
		mutes, _ := s.ListMutes(ctx, grp)
		if len(mutes) != 1 || mutes[0].User != "carol" || !mutes[0].Until.Equal(t0.Add(10*time.Minute)) || !mutes[0].Since.Equal(t0) {
			t.Errorf("mutes %+v, want carol until +10m", mutes)
		}
		clk.Add(10 * time.Minute)
		runAt(t, e, 1)
		want := []string{"forbid_send_msg @TGS#group n=1 s=600 ", "send_group_system_notification @TGS#group n=1 s=0 You can write again."}
		if got := summary(fc.Calls()); !slices.Equal(got, want) {
			t.Errorf("calls %v, want %v", got, want)
		}
		if got := log.results(t)["flood/end"]; got != "done" {
			t.Errorf("the announcement: %q", got)
		}
	})

	t.Run("a mute without an announcement leaves nothing due", func(t *testing.T) {
		_, s, _, _, e := newRig(t)
		a := act("m", string(rules.ActMute), grp, tim.GroupPublic, "carol", 600, "")
		a.Roles = all
		enqueue(t, s, t0, a)
		runAt(t, e, 1)
		if pending, _ := s.Pending(ctx, 10); len(pending) != 0 {
			t.Errorf("pending %+v, want none", pending)
		}
	})

	t.Run("a permanent mute has no end", func(t *testing.T) {
		_, s, fc, _, e := newRig(t)
		a := act("m", string(rules.ActMute), grp, tim.GroupPublic, "carol", rules.PermanentSeconds, "never")
		a.Roles = all
		enqueue(t, s, t0, a)
		runAt(t, e, 1)
		if c := fc.CallsTo(tim.CommandForbidSendMsg); len(c) != 1 || c[0].Seconds != tim.MuteForever {
			t.Errorf("calls %v, want MuteTime 4294967295", c)
		}
		mutes, _ := s.ListMutes(ctx, grp)
		pending, _ := s.Pending(ctx, 10)
		if len(mutes) != 1 || !mutes[0].Until.IsZero() || len(pending) != 0 {
			t.Errorf("mutes %+v pending %+v, want a mute without end and nothing due", mutes, pending)
		}
	})

	t.Run("an unmute clears the mute record", func(t *testing.T) {
		clk, s, _, _, e := newRig(t)
		m := act("m", string(rules.ActMute), grp, tim.GroupPublic, "carol", 600, "")
		m.Roles = all
		enqueue(t, s, t0, m)
		runAt(t, e, 1)
		clk.Add(time.Minute)
		enqueue(t, s, clk.Now(), act("u", string(rules.ActUnmute), grp, tim.GroupPublic, "carol", 0, ""))
		runAt(t, e, 1)
		if mutes, _ := s.ListMutes(ctx, grp); len(mutes) != 0 {
			t.Errorf("mutes %+v, want none", mutes)
		}
	})

	t.Run("a ban with an announcement tells the member when it ends", func(t *testing.T) {
		clk, s, fc, _, e := newRig(t)
		b := act("b", string(rules.ActBan), live, tim.GroupAVChatRoom, "carol", 3600, "You may come back.")
		b.Roles = all
		enqueue(t, s, t0, b)
		runAt(t, e, 1)
		clk.Add(time.Hour)
		runAt(t, e, 1)
		// A live group takes notices to all members only: the announcement
		// is a message mentioning the member.
		want := []string{"ban_group_member @TGS#live n=1 s=3600 ", fmt.Sprintf("send_group_msg @TGS#live n=1 s=%d @carol You may come back.", actionRandom("b"+banEndSuffix))}
		if got := summary(fc.Calls()); !slices.Equal(got, want) {
			t.Errorf("calls %v, want %v", got, want)
		}
	})
}

func TestShutdownFinishesTheCallInFlightAndHandsTheRestBack(t *testing.T) {
	tests := []struct {
		name        string
		callTakes   time.Duration // how long the first call blocks
		wantDone    int
		wantReady   int
		wantResults map[string]string
	}{
		{"a call that ends within the grace period completes", 2 * time.Second, 1, 2,
			map[string]string{"a": "done"}},
		{"a call that outlasts the grace period is handed back", time.Hour, 0, 3,
			map[string]string{"a": "retry"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := memory.New(memory.Options{})
				fc := newFakeClient()
				started := make(chan struct{})
				var once sync.Once
				fc.gate = func(ctx context.Context) error {
					once.Do(func() { close(started) })
					select {
					case <-time.After(tt.callTakes):
						return nil
					case <-ctx.Done():
						return ctx.Err()
					}
				}
				log := &auditLog{}
				e := newTestExecutor(t, s, fc, log, func(c *Config) { c.Workers, c.Grace = 1, 5*time.Second })
				var as []store.Action
				for _, g := range []string{"a", "b", "c"} {
					a := act(g, string(rules.ActMute), "@TGS#"+g, tim.GroupPublic, "carol", 600, "")
					a.Roles = []string{store.RoleOwner, store.RoleAdmin, string(rules.RoleAppAdmin)}
					as = append(as, a)
				}
				enqueue(t, s, time.Now(), as...)
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan error)
				go func() { done <- e.Run(ctx) }()
				<-started
				stoppedAt := time.Now()
				cancel()
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				if took := time.Since(stoppedAt); took > 5*time.Second {
					t.Errorf("Run took %v to stop, more than the grace period", took)
				}
				if got := log.results(t); !mapsEqual(got, tt.wantResults) {
					t.Errorf("results %v, want %v", got, tt.wantResults)
				}
				st, _ := s.Stats(context.Background(), time.Now())
				if st.Ready != tt.wantReady || st.Claimed != 0 {
					t.Errorf("outbox %+v, want %d ready and none claimed", st, tt.wantReady)
				}
				// Handing back does not count an attempt.
				cs, _ := s.Claim(context.Background(), time.Now(), 10, time.Minute)
				for _, c := range cs {
					if c.Attempt != 1 {
						t.Errorf("action %s claimed again with attempt %d, want 1", c.ID, c.Attempt)
					}
				}
			})
		})
	}
}

func TestLingerGathersABurstIntoOneBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := memory.New(memory.Options{})
		fc := newFakeClient()
		log := &auditLog{}
		e := newTestExecutor(t, s, fc, log, func(c *Config) {
			c.PollInterval, c.Linger = 100*time.Millisecond, 20*time.Millisecond
		})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- e.Run(ctx) }()
		// A join wave: ten callbacks of 30 members, 5ms apart, starting just
		// before the executor's next poll.
		time.Sleep(95 * time.Millisecond)
		for i := range 10 {
			enqueue(t, s, time.Now(), many(string(rules.ActMute), grp, tim.GroupPublic, members(fmt.Sprintf("w%d-", i), 30), 300, "")...)
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(time.Second)
		cancel()
		<-done
		if got := summary(fc.Calls()); !slices.Equal(got, []string{"forbid_send_msg @TGS#group n=300 s=300 "}) {
			t.Errorf("calls %v, want one forbid_send_msg for the 300", got)
		}
	})
}

// flakyStore fails some operations of a memory store.
type flakyStore struct {
	*memory.Store
	mu       sync.Mutex
	complete []error // errors for the next Complete calls
	// setMuteDownUntil fails SetMute as unavailable until then.
	setMuteDownUntil time.Time
}

func (f *flakyStore) next(errs *[]error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(*errs) == 0 {
		return nil
	}
	err := (*errs)[0]
	*errs = (*errs)[1:]
	return err
}

func (f *flakyStore) Complete(ctx context.Context, c store.Claimed) error {
	if err := f.next(&f.complete); err != nil {
		if errors.Is(err, store.ErrLeaseLost) {
			// Another worker finished the action meanwhile.
			_ = f.Store.Complete(ctx, c)
		}
		return err
	}
	return f.Store.Complete(ctx, c)
}

func (f *flakyStore) SetMute(ctx context.Context, m store.Mute) error {
	if time.Now().Before(f.setMuteDownUntil) {
		return fmt.Errorf("memory set mute: %w: test outage", store.ErrUnavailable)
	}
	return f.Store.SetMute(ctx, m)
}

func TestStoreTroubleAfterASuccessfulCall(t *testing.T) {
	down := fmt.Errorf("memory complete: %w: test outage", store.ErrUnavailable)
	tests := []struct {
		name        string
		complete    []error
		setMuteDown time.Duration
		calls       int
		results     string
		note        string
	}{
		{"a store outage while completing is waited out without calling again", []error{down, down, down}, 0, 1, "done", ""},
		{"a lost lease while completing is audited, not fatal", []error{fmt.Errorf("memory complete: %w", store.ErrLeaseLost)}, 0, 1, "done",
			"lease lost before the completion was recorded"},
		{"a store outage while recording a follow-up is waited out", nil, 10 * time.Second, 1, "done", ""},
		{"a follow-up that cannot be recorded within the lease leaves the action to run again", nil, 30 * time.Second, 2, "retry,done",
			"the call succeeded but its follow-up could not be recorded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := &flakyStore{Store: memory.New(memory.Options{}), complete: tt.complete, setMuteDownUntil: time.Now().Add(tt.setMuteDown)}
				fc := newFakeClient()
				log := &auditLog{}
				e := newTestExecutor(t, s, fc, log, func(c *Config) { c.Lease = 20 * time.Second })
				a := act("m", string(rules.ActMute), grp, tim.GroupPublic, "carol", 600, "")
				a.Roles = []string{store.RoleOwner, store.RoleAdmin, string(rules.RoleAppAdmin)}
				enqueue(t, s, time.Now(), a)
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan error)
				go func() { done <- e.Run(ctx) }()
				time.Sleep(time.Minute)
				cancel()
				<-done
				if n := len(fc.CallsTo(tim.CommandForbidSendMsg)); n != tt.calls {
					t.Errorf("%d calls, want %d", n, tt.calls)
				}
				if got := log.results(t)["m"]; got != tt.results {
					t.Errorf("results %q, want %q", got, tt.results)
				}
				if recs := log.byAction(t)["m"]; !strings.Contains(recs[0].Error, tt.note) {
					t.Errorf("first record error %q, want %q in it", recs[0].Error, tt.note)
				}
			})
		})
	}
}

func TestNewRefusesAnIncompleteConfig(t *testing.T) {
	s := memory.New(memory.Options{})
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"without a store", Config{Audit: &auditLog{}}, "Config.Store is nil"},
		{"without an audit sink", Config{Store: s}, "Config.Audit is nil"},
		{"with a client but no role source", Config{Store: s, Audit: &auditLog{}, Client: newFakeClient()}, "Config.Roles is nil"},
		{"with backoff bounds upside down", Config{Store: s, Audit: &auditLog{}, MinBackoff: time.Minute, MaxBackoff: time.Second}, "MaxBackoff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New = %v, want an error about %s", err, tt.want)
			}
		})
	}
}

// slowMuteStore takes its time to record mutes.
type slowMuteStore struct {
	*memory.Store
	delay time.Duration
}

func (s *slowMuteStore) SetMute(ctx context.Context, m store.Mute) error {
	time.Sleep(s.delay)
	return s.Store.SetMute(ctx, m)
}

func TestLeasesAreRenewedWhileASlowBatchSettles(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &slowMuteStore{Store: memory.New(memory.Options{}), delay: 700 * time.Millisecond}
		mod := func(c *Config) { c.Lease = 3 * time.Second }
		fa, fb := newFakeClient(), newFakeClient()
		log := &auditLog{}
		a := newTestExecutor(t, s, fa, log, mod)
		b := newTestExecutor(t, s, fb, log, mod)
		// 80 mutes settle 16 at a time, 0.7s each: 3.5s, past the lease.
		as := many(string(rules.ActMute), grp, tim.GroupPublic, members("u", 80), 600, "")
		for i := range as {
			as[i].Roles = []string{store.RoleOwner, store.RoleAdmin, string(rules.RoleAppAdmin)}
		}
		enqueue(t, s, time.Now(), as...)
		ctx, cancel := context.WithCancel(t.Context())
		doneA := make(chan error)
		go func() { doneA <- a.Run(ctx) }()
		time.Sleep(time.Millisecond)
		doneB := make(chan error)
		go func() { doneB <- b.Run(ctx) }()
		time.Sleep(10 * time.Second)
		cancel()
		<-doneA
		<-doneB
		if calls := fb.Calls(); len(calls) != 0 {
			t.Errorf("the second executor took over %d calls from a batch still settling", len(calls))
		}
		if n := len(fa.CallsTo(tim.CommandForbidSendMsg)); n != 1 {
			t.Errorf("%d forbid_send_msg calls, want 1", n)
		}
		for id, r := range log.results(t) {
			if r != audit.ResultDone {
				t.Errorf("%s: %s", id, r)
			}
		}
	})
}

func TestAFailedGroupLookupFailsOnlyTheActionsThatNeedIt(t *testing.T) {
	s := memory.New(memory.Options{})
	fc := newFakeClient()
	log := &auditLog{}
	e := newTestExecutor(t, s, fc, log, nil)
	// A warning to one member depends on the group's type (a live group
	// takes no targeted notice); a notice to all does not.
	enqueue(t, s, time.Now(),
		act("kick", string(rules.ActKick), "@TGS#unknown", "", "carol", 0, "spam"),
		act("warn", string(rules.ActWarn), "@TGS#unknown", "", "carol", 0, "Be nice."),
		act("notice", string(rules.ActWarn), "@TGS#unknown", "", "", 0, "Be nice."))
	drain(t, e)
	if got := log.results(t); !mapsEqual(got, map[string]string{"kick": "dead", "warn": "dead", "notice": "done"}) {
		t.Errorf("results %v, want the kick and the warning dead and the notice to all sent", got)
	}
}

// recordLog is an audit sink that also takes each record (RecordSink).
type recordLog struct {
	auditLog
	recs []audit.Record
}

func (l *recordLog) WriteRecord(rec *audit.Record, line []byte) {
	l.WriteLine(line)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, *rec)
}

// A sink that takes records gets each one with the line that encodes it,
// and no line without its record.
func TestTheExecutorHandsARecordSinkEachRecordWithItsLine(t *testing.T) {
	s := memory.New(memory.Options{})
	log := &recordLog{}
	e := newTestExecutor(t, s, newFakeClient(), nil, func(c *Config) { c.Audit = log })
	enqueue(t, s, time.Now(), act("mute-a", string(rules.ActMute), grp, tim.GroupPublic, "a", 60, ""),
		act("warn-b", string(rules.ActWarn), grp, tim.GroupPublic, "b", 0, "stop"))
	drain(t, e)
	lines := log.records(t)
	if len(lines) != 2 || len(log.recs) != len(lines) {
		t.Fatalf("%d lines and %d records, want 2 of each", len(lines), len(log.recs))
	}
	for i, rec := range log.recs {
		if rec.Kind != audit.KindAction || rec.Result != audit.ResultDone || len(rec.Actions) != 1 ||
			rec.Actions[0].ID != lines[i].Actions[0].ID || rec.Result != lines[i].Result {
			t.Errorf("record %d %+v does not match its line %+v", i, rec, lines[i])
		}
	}
}
