package timtest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/timguard/timguard/internal/testclock"
	"github.com/timguard/timguard/tim"
	"github.com/timguard/timguard/tim/timtest"
)

const (
	public    = "@TGS#2J4SZEAEL"
	work      = "@TGS#work"
	live      = "@TGS#live"
	community = "@TGS#community"
)

var t0 = time.Unix(1700000000, 0)

func newServer(t *testing.T, opts timtest.Options) (*timtest.Server, *testclock.Clock) {
	t.Helper()
	clk := testclock.New(t0)
	if opts.Now == nil {
		opts.Now = clk.Now
	}
	s := timtest.New(opts)
	t.Cleanup(s.Close)
	s.AddGroup(timtest.Group{ID: public, Type: "Public", Owner: "leckie", Admins: []string{"peter"}, Members: []string{"jared", "tommy"}, Name: "MyFirstGroup"})
	s.AddGroup(timtest.Group{ID: work, Type: "Work", Owner: "leckie", Members: []string{"jared"}})
	s.AddGroup(timtest.Group{ID: live, Type: "AVChatRoom", Members: []string{"jared", "tommy"}})
	s.AddGroup(timtest.Group{ID: community, Type: "Community", Owner: "leckie", Members: []string{"jared"}})
	return s, clk
}

// request describes one raw call; empty fields take valid defaults.
type request struct {
	method     string
	command    string
	query      url.Values // replaces the default query when set
	identifier string
	sig        string
	body       string
}

type answer struct {
	status int
	code   int
	info   string
	raw    map[string]json.RawMessage
}

func validQuery(t *testing.T, identifier, sig string) url.Values {
	t.Helper()
	if identifier == "" {
		identifier = timtest.DefaultAdmin
	}
	if sig == "" {
		var err error
		sig, err = tim.GenUserSig(timtest.DefaultSDKAppID, timtest.DefaultSecretKey, identifier, 24*time.Hour, t0)
		if err != nil {
			t.Fatal(err)
		}
	}
	return url.Values{
		"sdkappid":    {strconv.Itoa(timtest.DefaultSDKAppID)},
		"identifier":  {identifier},
		"usersig":     {sig},
		"random":      {"99999999"},
		"contenttype": {"json"},
	}
}

func do(t *testing.T, s *timtest.Server, r request) answer {
	t.Helper()
	if r.method == "" {
		r.method = http.MethodPost
	}
	if r.query == nil {
		r.query = validQuery(t, r.identifier, r.sig)
	}
	u := s.URL() + "/v4/group_open_http_svc/" + r.command + "?" + r.query.Encode()
	req, err := http.NewRequest(r.method, u, strings.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode}
	if err := json.Unmarshal(data, &a.raw); err != nil {
		t.Fatalf("answer %q is not JSON: %v", data, err)
	}
	json.Unmarshal(a.raw["ErrorCode"], &a.code)
	json.Unmarshal(a.raw["ErrorInfo"], &a.info)
	var status string
	json.Unmarshal(a.raw["ActionStatus"], &status)
	if (status == "OK") != (a.code == 0) {
		t.Errorf("ActionStatus %q with ErrorCode %d", status, a.code)
	}
	return a
}

func mute(group string, members []string, secs uint64) string {
	b, _ := json.Marshal(map[string]any{"GroupId": group, "Members_Account": members, "MuteTime": secs})
	return string(b)
}

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

func TestAuthenticationFailures(t *testing.T) {
	s, _ := newServer(t, timtest.Options{})
	sigFor := func(appID uint64, key, id string, at time.Time) string {
		sig, err := tim.GenUserSig(appID, key, id, time.Hour, at)
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	without := func(key string) url.Values {
		q := validQuery(t, "", "")
		q.Del(key)
		return q
	}
	with := func(key, value string) url.Values {
		q := validQuery(t, "", "")
		q.Set(key, value)
		return q
	}
	body := mute(public, []string{"jared"}, 60)
	tests := []struct {
		name string
		req  request
		want int
	}{
		{"a call without usersig is an HTTP parse error", request{query: without("usersig")}, tim.CodeHTTPParse},
		{"a call without sdkappid is an HTTP parse error", request{query: without("sdkappid")}, tim.CodeHTTPParse},
		{"a call without identifier is an HTTP parse error", request{query: without("identifier")}, tim.CodeHTTPParse},
		{"a call without random is an HTTP parse error", request{query: without("random")}, tim.CodeHTTPParse},
		{"a call without contenttype is an HTTP parse error", request{query: without("contenttype")}, tim.CodeHTTPParse},
		{"a random that is not a uint32 is an HTTP parse error", request{query: with("random", "4294967296")}, tim.CodeHTTPParse},
		{"a contenttype other than json is an HTTP parse error", request{query: with("contenttype", "xml")}, tim.CodeHTTPParse},
		{"another app's id in the query is a bad SDKAppID", request{query: with("sdkappid", "1400000001")}, tim.CodeBadSDKAppID},
		{"a UserSig for another app is an app id mismatch", request{sig: sigFor(1400000001, timtest.DefaultSecretKey, timtest.DefaultAdmin, t0)}, tim.CodeUserSigWrongAppID},
		{"a UserSig for another identifier is a mismatch", request{sig: sigFor(timtest.DefaultSDKAppID, timtest.DefaultSecretKey, "jared", t0)}, tim.CodeUserSigWrongIdentity},
		{"a UserSig signed with another key fails verification", request{sig: sigFor(timtest.DefaultSDKAppID, "wrong", timtest.DefaultAdmin, t0)}, tim.CodeUserSigBadSignature},
		{"an expired UserSig is expired", request{sig: sigFor(timtest.DefaultSDKAppID, timtest.DefaultSecretKey, timtest.DefaultAdmin, t0.Add(-2*time.Hour))}, tim.CodeUserSigExpired},
		{"a UserSig that does not parse is a parse failure", request{sig: "garbage"}, tim.CodeUserSigMalformed},
		{"a valid UserSig of a user who is not the admin needs an admin", request{identifier: "jared"}, tim.CodeNeedAdmin},
		{"an unknown command is a bad command", request{command: "destroy_everything"}, tim.CodeBadCommand},
		{"a GET is an HTTP parse error", request{method: http.MethodGet}, tim.CodeHTTPParse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.req.command == "" {
				tt.req.command = tim.CommandForbidSendMsg
			}
			tt.req.body = body
			a := do(t, s, tt.req)
			if a.status != http.StatusOK || a.code != tt.want {
				t.Errorf("answer %d/%d %q, want 200/%d", a.status, a.code, a.info, tt.want)
			}
		})
	}
	if !s.MuteUntil(public, "jared").IsZero() {
		t.Error("a refused call changed the state")
	}
	for _, c := range s.Calls() {
		if c.Effective() {
			t.Errorf("refused call %+v counts as effective", c)
		}
	}
}

// TestAUserSigSeenBeforeIsCheckedOnEveryCall: the fake keeps UserSigs
// decoded, but each call's is verified as the first was: one it accepted
// is refused once the clock passes its expiry, and one it refused (signed
// with another key, or naming another identifier) is refused again.
func TestAUserSigSeenBeforeIsCheckedOnEveryCall(t *testing.T) {
	s, clk := newServer(t, timtest.Options{})
	sigFor := func(key, id string) string {
		sig, err := tim.GenUserSig(timtest.DefaultSDKAppID, key, id, time.Hour, t0)
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	good := sigFor(timtest.DefaultSecretKey, timtest.DefaultAdmin)
	forged := sigFor("wrong", timtest.DefaultAdmin)
	jareds := sigFor(timtest.DefaultSecretKey, "jared")
	call := func(identifier, sig string) int {
		t.Helper()
		return do(t, s, request{command: tim.CommandForbidSendMsg, identifier: identifier, sig: sig, body: mute(public, []string{"jared"}, 60)}).code
	}
	for i := range 2 {
		if code := call("", good); code != 0 {
			t.Fatalf("call %d with a valid UserSig: code %d", i+1, code)
		}
		if code := call("", forged); code != tim.CodeUserSigBadSignature {
			t.Errorf("call %d with a forged UserSig: code %d, want %d", i+1, code, tim.CodeUserSigBadSignature)
		}
		if code := call(timtest.DefaultAdmin, jareds); code != tim.CodeUserSigWrongIdentity {
			t.Errorf("call %d with another identifier's UserSig: code %d, want %d", i+1, code, tim.CodeUserSigWrongIdentity)
		}
	}
	clk.Add(time.Hour + time.Second)
	if code := call("", good); code != tim.CodeUserSigExpired {
		t.Errorf("the UserSig accepted before, past its expiry: code %d, want %d", code, tim.CodeUserSigExpired)
	}
}

func TestBodyValidation(t *testing.T) {
	s, _ := newServer(t, timtest.Options{})
	tests := []struct {
		name    string
		command string
		body    string
		want    int
	}{
		{"an empty body does not parse", tim.CommandForbidSendMsg, "", tim.CodeJSONParse},
		{"a body that is not JSON does not parse", tim.CommandForbidSendMsg, "GroupId=x", tim.CodeJSONParse},
		{"a JSON array does not parse as a body", tim.CommandForbidSendMsg, "[]", tim.CodeJSONParse},
		{"a missing GroupId is a bad parameter", tim.CommandForbidSendMsg, `{"Members_Account":["jared"],"MuteTime":60}`, tim.CodeBadParameter},
		{"a field name in the wrong case is missing", tim.CommandForbidSendMsg, `{"groupId":"` + public + `","Members_Account":["jared"],"MuteTime":60}`, tim.CodeBadParameter},
		{"the older ShutUpTime name is not MuteTime", tim.CommandForbidSendMsg, `{"GroupId":"` + public + `","Members_Account":["jared"],"ShutUpTime":60}`, tim.CodeBadParameter},
		{"a GroupId that is a number does not parse", tim.CommandForbidSendMsg, `{"GroupId":1,"Members_Account":["jared"],"MuteTime":60}`, tim.CodeJSONParse},
		{"a MuteTime that is a string does not parse", tim.CommandForbidSendMsg, `{"GroupId":"` + public + `","Members_Account":["jared"],"MuteTime":"60"}`, tim.CodeJSONParse},
		{"a negative MuteTime is a bad parameter", tim.CommandForbidSendMsg, mute(public, []string{"jared"}, 0)[:0] + `{"GroupId":"` + public + `","Members_Account":["jared"],"MuteTime":-1}`, tim.CodeBadParameter},
		{"a MuteTime past 4294967295 is a bad parameter", tim.CommandForbidSendMsg, mute(public, []string{"jared"}, 4294967296), tim.CodeBadParameter},
		{"muting 501 members is a bad parameter", tim.CommandForbidSendMsg, mute(public, names("u", 501), 60), tim.CodeBadParameter},
		{"muting nobody is a bad parameter", tim.CommandForbidSendMsg, mute(public, []string{}, 60), tim.CodeBadParameter},
		{"removing 101 members is a bad parameter", tim.CommandDeleteGroupMember, fmt.Sprintf(`{"GroupId":%q,"MemberToDel_Account":%s}`, public, jsonList(names("u", 101))), tim.CodeBadParameter},
		{"a Silence of 2 is a bad parameter", tim.CommandDeleteGroupMember, fmt.Sprintf(`{"GroupId":%q,"MemberToDel_Account":["jared"],"Silence":2}`, public), tim.CodeBadParameter},
		{"adding 21 members is a bad parameter", tim.CommandAddGroupMember, fmt.Sprintf(`{"GroupId":%q,"MemberList":%s}`, public, memberList(names("u", 21))), tim.CodeBadParameter},
		{"adding plain strings does not parse", tim.CommandAddGroupMember, fmt.Sprintf(`{"GroupId":%q,"MemberList":["bob"]}`, public), tim.CodeJSONParse},
		{"banning 21 members is too many accounts", tim.CommandBanGroupMember, fmt.Sprintf(`{"GroupId":%q,"Members_Account":%s,"Duration":60}`, live, jsonList(names("u", 21))), tim.CodeTooManyAccounts},
		{"unbanning 21 members is too many accounts", tim.CommandUnbanGroupMember, fmt.Sprintf(`{"GroupId":%q,"Members_Account":%s}`, live, jsonList(names("u", 21))), tim.CodeTooManyAccounts},
		{"a ban description over 1,000 bytes is a bad parameter", tim.CommandBanGroupMember, fmt.Sprintf(`{"GroupId":%q,"Members_Account":["jared"],"Duration":60,"Description":%q}`, live, strings.Repeat("é", 501)), tim.CodeBadParameter},
		{"a notification to 501 members is a bad parameter", tim.CommandSendGroupSystemNotification, fmt.Sprintf(`{"GroupId":%q,"ToMembers_Account":%s,"Content":"hi"}`, public, jsonList(names("u", 501))), tim.CodeBadParameter},
		{"a GroupAtInfo entry without an account is a bad parameter", tim.CommandSendGroupMsg, fmt.Sprintf(`{"GroupId":%q,"Random":1,"GroupAtInfo":[{"GroupAtAllFlag":0}],"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"@x hi"}}]}`, public), tim.CodeBadParameter},
		{"a member filter naming no member field is a bad parameter", tim.CommandGetGroupMemberInfo, fmt.Sprintf(`{"GroupId":%q,"MemberInfoFilter":["Rank"]}`, public), tim.CodeBadParameter},
		{"a base info filter naming no base field is a bad parameter", tim.CommandGetGroupInfo, fmt.Sprintf(`{"GroupIdList":[%q],"ResponseFilter":{"GroupBaseInfoFilter":["Owner"]}}`, public), tim.CodeBadParameter},
		{"a ResponseFilter that is not an object does not parse", tim.CommandGetGroupInfo, fmt.Sprintf(`{"GroupIdList":[%q],"ResponseFilter":["Type"]}`, public), tim.CodeJSONParse},
		{"a ban without a duration is a bad parameter", tim.CommandBanGroupMember, fmt.Sprintf(`{"GroupId":%q,"Members_Account":["jared"]}`, live), tim.CodeBadParameter},
		{"asking for 51 groups is a bad parameter", tim.CommandGetGroupInfo, fmt.Sprintf(`{"GroupIdList":%s}`, jsonList(names("g", 51))), tim.CodeBadParameter},
		{"MuteAllMember yes is a bad parameter", tim.CommandModifyGroupBaseInfo, fmt.Sprintf(`{"GroupId":%q,"MuteAllMember":"yes"}`, public), tim.CodeBadParameter},
		{"a message without Random is a bad parameter", tim.CommandSendGroupMsg, fmt.Sprintf(`{"GroupId":%q,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"hi"}}]}`, public), tim.CodeBadParameter},
		{"a text element without Text is a bad parameter", tim.CommandSendGroupMsg, fmt.Sprintf(`{"GroupId":%q,"Random":1,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{}}]}`, public), tim.CodeBadParameter},
		{"an unknown ForbidCallbackControl is a bad parameter", tim.CommandSendGroupMsg, fmt.Sprintf(`{"GroupId":%q,"Random":1,"ForbidCallbackControl":["ForbidEverything"],"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"hi"}}]}`, public), tim.CodeBadParameter},
		{"a notification without Content is a bad parameter", tim.CommandSendGroupSystemNotification, fmt.Sprintf(`{"GroupId":%q}`, public), tim.CodeBadParameter},
		{"making someone Owner is a bad parameter", tim.CommandModifyGroupMemberInfo, fmt.Sprintf(`{"GroupId":%q,"Member_Account":"jared","Role":"Owner"}`, public), tim.CodeBadParameter},
		{"a Limit past 6000 is a bad parameter", tim.CommandGetGroupMemberInfo, fmt.Sprintf(`{"GroupId":%q,"Limit":6001}`, public), tim.CodeBadParameter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := do(t, s, request{command: tt.command, body: tt.body})
			if a.code != tt.want {
				t.Errorf("answer %d %q, want %d", a.code, a.info, tt.want)
			}
		})
	}
	if g := s.Group(public); len(g.Muted) != 0 || len(g.Members) != 4 || g.MuteAllMember {
		t.Errorf("refused calls changed the state: %+v", g)
	}
}

func jsonList(list []string) string {
	b, _ := json.Marshal(list)
	return string(b)
}

func memberList(list []string) string {
	var ms []tim.Member
	for _, m := range list {
		ms = append(ms, tim.Member{Account: m})
	}
	b, _ := json.Marshal(ms)
	return string(b)
}

func TestGroupsMustExist(t *testing.T) {
	s, _ := newServer(t, timtest.Options{})
	s.AddGroup(timtest.Group{ID: "@TGS#gone", Type: "Public"})
	s.RemoveGroup("@TGS#gone")
	tests := []struct {
		name  string
		group string
		want  int
	}{
		{"a dismissed group is gone", "@TGS#gone", tim.CodeGroupNotFound},
		{"a group that never existed is an invalid id", "@TGS#never", tim.CodeBadGroupID},
		{"a group id with a space is invalid", "@TGS# x", tim.CodeBadGroupID},
		{"a group id over 48 bytes is invalid", strings.Repeat("x", 49), tim.CodeBadGroupID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := do(t, s, request{command: tim.CommandForbidSendMsg, body: mute(tt.group, []string{"jared"}, 60)})
			if a.code != tt.want {
				t.Errorf("answer %d %q, want %d", a.code, a.info, tt.want)
			}
		})
	}
	if g := s.Group("@TGS#gone"); g.Exists {
		t.Error("a removed group still exists")
	}
}

// TestGroupTypeRules checks what each group type allows, as Tencent
// documents it (the pages are cited in the package comment).
func TestGroupTypeRules(t *testing.T) {
	text := `"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"@jared stop"}}]`
	tests := []struct {
		name    string
		command string
		body    string
		want    int
		// liveBan turns on Options.LiveGroupBan.
		liveBan bool
	}{
		{"listing the members of a Live group is not permitted", tim.CommandGetGroupMemberInfo, fmt.Sprintf(`{"GroupId":%q}`, live), tim.CodeNoPermission, false},
		{"listing the owner and admins of a Live group is not permitted", tim.CommandGetGroupMemberInfo, fmt.Sprintf(`{"GroupId":%q,"MemberRoleFilter":["Owner","Admin"]}`, live), tim.CodeNoPermission, false},
		{"listing a Community group without Next is a bad parameter", tim.CommandGetGroupMemberInfo, fmt.Sprintf(`{"GroupId":%q,"MemberRoleFilter":["Owner","Admin"]}`, community), tim.CodeBadParameter, false},
		{"listing a Community group from Next \"\" is allowed", tim.CommandGetGroupMemberInfo, fmt.Sprintf(`{"GroupId":%q,"Next":"","MemberRoleFilter":["Owner","Admin"]}`, community), 0, false},
		{"listing a Community group with Offset is a bad parameter", tim.CommandGetGroupMemberInfo, fmt.Sprintf(`{"GroupId":%q,"Next":"","Offset":1}`, community), tim.CodeBadParameter, false},
		{"listing 101 members of a Community group at once is a bad parameter", tim.CommandGetGroupMemberInfo, fmt.Sprintf(`{"GroupId":%q,"Next":"","Limit":101}`, community), tim.CodeBadParameter, false},
		{"listing a Public group with Next is a bad parameter", tim.CommandGetGroupMemberInfo, fmt.Sprintf(`{"GroupId":%q,"Next":""}`, public), tim.CodeBadParameter, false},
		{"a notification to one member of a Live group is not permitted", tim.CommandSendGroupSystemNotification, fmt.Sprintf(`{"GroupId":%q,"ToMembers_Account":["jared"],"Content":"stop"}`, live), tim.CodeNoPermission, false},
		{"a notification to all members of a Live group is allowed", tim.CommandSendGroupSystemNotification, fmt.Sprintf(`{"GroupId":%q,"Content":"stop"}`, live), 0, false},
		{"a notification to one member of a Community group is allowed", tim.CommandSendGroupSystemNotification, fmt.Sprintf(`{"GroupId":%q,"ToMembers_Account":["jared"],"Content":"stop"}`, community), 0, false},
		{"a message mentioning a member of a Live group is allowed", tim.CommandSendGroupMsg, fmt.Sprintf(`{"GroupId":%q,"Random":7,"GroupAtInfo":[{"GroupAtAllFlag":0,"GroupAt_Account":"jared"}],%s}`, live, text), 0, false},
		{"a message mentioning all of a Live group is a bad parameter", tim.CommandSendGroupMsg, fmt.Sprintf(`{"GroupId":%q,"Random":7,"GroupAtInfo":[{"GroupAtAllFlag":1}],%s}`, live, text), tim.CodeBadParameter, false},
		{"a message mentioning all of a Public group is allowed", tim.CommandSendGroupMsg, fmt.Sprintf(`{"GroupId":%q,"Random":7,"GroupAtInfo":[{"GroupAtAllFlag":1}],%s}`, public, text), 0, false},
		{"banning in a Live group without the Ultimate edition's switch is not permitted", tim.CommandBanGroupMember, fmt.Sprintf(`{"GroupId":%q,"Members_Account":["jared"],"Duration":60}`, live), tim.CodeNoPermission, false},
		{"unbanning in a Live group without the Ultimate edition's switch is not permitted", tim.CommandUnbanGroupMember, fmt.Sprintf(`{"GroupId":%q,"Members_Account":["jared"]}`, live), tim.CodeNoPermission, false},
		{"muting in a Work group is not permitted", tim.CommandForbidSendMsg, mute(work, []string{"jared"}, 60), tim.CodeNoPermission, false},
		{"muting in a Live group is allowed", tim.CommandForbidSendMsg, mute(live, []string{"jared"}, 60), 0, false},
		{"muting in a Community group is allowed", tim.CommandForbidSendMsg, mute(community, []string{"jared"}, 60), 0, false},
		{"muting a topic outside a Community group is a bad parameter", tim.CommandForbidSendMsg, fmt.Sprintf(`{"GroupId":%q,"Members_Account":["jared"],"MuteTime":60,"TopicId":"t1"}`, public), tim.CodeBadParameter, false},
		{"muting the whole Work group is not permitted", tim.CommandModifyGroupBaseInfo, fmt.Sprintf(`{"GroupId":%q,"MuteAllMember":"On"}`, work), tim.CodeNoPermission, false},
		{"muting the whole Live group is allowed", tim.CommandModifyGroupBaseInfo, fmt.Sprintf(`{"GroupId":%q,"MuteAllMember":"On"}`, live), 0, false},
		{"a mute through modify_group_member_info in a Work group is not permitted", tim.CommandModifyGroupMemberInfo, fmt.Sprintf(`{"GroupId":%q,"Member_Account":"jared","MuteTime":60}`, work), tim.CodeNoPermission, false},
		{"removing from a Live group is a bad parameter", tim.CommandDeleteGroupMember, fmt.Sprintf(`{"GroupId":%q,"MemberToDel_Account":["jared"]}`, live), tim.CodeBadParameter, false},
		{"removing from a Work group is allowed", tim.CommandDeleteGroupMember, fmt.Sprintf(`{"GroupId":%q,"MemberToDel_Account":["jared"]}`, work), 0, false},
		{"removing the owner is a bad parameter", tim.CommandDeleteGroupMember, fmt.Sprintf(`{"GroupId":%q,"MemberToDel_Account":["leckie"]}`, public), tim.CodeBadParameter, false},
		{"adding to a Live group is not permitted", tim.CommandAddGroupMember, fmt.Sprintf(`{"GroupId":%q,"MemberList":[{"Member_Account":"bob"}]}`, live), tim.CodeNoPermission, false},
		{"adding to a Work group is allowed", tim.CommandAddGroupMember, fmt.Sprintf(`{"GroupId":%q,"MemberList":[{"Member_Account":"bob"}]}`, work), 0, false},
		{"banning in a Public group is not permitted", tim.CommandBanGroupMember, fmt.Sprintf(`{"GroupId":%q,"Members_Account":["jared"],"Duration":60}`, public), tim.CodeNoPermission, true},
		{"unbanning in a Community group is not permitted", tim.CommandUnbanGroupMember, fmt.Sprintf(`{"GroupId":%q,"Members_Account":["jared"]}`, community), tim.CodeNoPermission, true},
		{"banning in a Live group with the Ultimate edition's switch is allowed", tim.CommandBanGroupMember, fmt.Sprintf(`{"GroupId":%q,"Members_Account":["jared"],"Duration":60}`, live), 0, true},
		{"changing a non-member is not permitted", tim.CommandModifyGroupMemberInfo, fmt.Sprintf(`{"GroupId":%q,"Member_Account":"stranger","Role":"Admin"}`, public), tim.CodeNoPermission, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newServer(t, timtest.Options{LiveGroupBan: tt.liveBan})
			before := s.Group(public)
			a := do(t, s, request{command: tt.command, body: tt.body})
			if a.code != tt.want {
				t.Fatalf("answer %d %q, want %d", a.code, a.info, tt.want)
			}
			if tt.want != 0 {
				if after := s.Group(public); len(after.Members) != len(before.Members) || len(after.Muted) != 0 {
					t.Errorf("a refused call changed the state: %+v", after)
				}
				for _, g := range []string{public, live, community} {
					if st := s.Group(g); len(st.Notifications) != 0 || len(st.Messages) != 0 || len(st.Banned) != 0 {
						t.Errorf("a refused call changed %s: %+v", g, st)
					}
				}
			}
		})
	}
}

func TestMuteTimeSemantics(t *testing.T) {
	s, clk := newServer(t, timtest.Options{})
	if a := do(t, s, request{command: tim.CommandForbidSendMsg, body: mute(public, []string{"jared"}, 60)}); a.code != 0 {
		t.Fatal(a.info)
	}
	if a := do(t, s, request{command: tim.CommandForbidSendMsg, body: mute(public, []string{"tommy"}, 4294967295)}); a.code != 0 {
		t.Fatal(a.info)
	}
	if got := s.MuteUntil(public, "jared"); !got.Equal(t0.Add(time.Minute)) {
		t.Errorf("jared muted until %v, want now+60s", got)
	}
	if got := s.MuteUntil(public, "tommy"); got.Unix() != 4294967295 {
		t.Errorf("tommy muted until %v, want 4294967295", got)
	}
	memberMute := func() map[string]int64 {
		a := do(t, s, request{command: tim.CommandGetGroupMemberInfo, body: fmt.Sprintf(`{"GroupId":%q}`, public)})
		var list []struct {
			Account   string `json:"Member_Account"`
			MuteUntil int64  `json:"MuteUntil"`
		}
		json.Unmarshal(a.raw["MemberList"], &list)
		out := map[string]int64{}
		for _, m := range list {
			out[m.Account] = m.MuteUntil
		}
		return out
	}
	mutedList := func() string {
		a := do(t, s, request{command: tim.CommandGetGroupMutedAccount, body: fmt.Sprintf(`{"GroupId":%q}`, public)})
		return string(a.raw["MutedAccountList"])
	}
	if m := memberMute(); m["jared"] != t0.Unix()+60 || m["tommy"] != 4294967295 || m["peter"] != 0 {
		t.Errorf("get_group_member_info MuteUntil = %v", m)
	}
	want := fmt.Sprintf(`[{"Member_Account":"jared","MutedUntil":%d},{"Member_Account":"tommy","MutedUntil":4294967295}]`, t0.Unix()+60)
	if got := mutedList(); got != want {
		t.Errorf("MutedAccountList = %s, want %s", got, want)
	}

	clk.Add(61 * time.Second)
	if !s.MuteUntil(public, "jared").IsZero() || memberMute()["jared"] != 0 {
		t.Error("jared is still muted after the mute ran out")
	}
	if got := mutedList(); got != `[{"Member_Account":"tommy","MutedUntil":4294967295}]` {
		t.Errorf("MutedAccountList after a minute = %s", got)
	}

	if a := do(t, s, request{command: tim.CommandForbidSendMsg, body: mute(public, []string{"tommy"}, 0)}); a.code != 0 {
		t.Fatal(a.info)
	}
	if got := mutedList(); got != `[]` {
		t.Errorf("MutedAccountList after MuteTime 0 = %s", got)
	}
}

func TestMembershipChanges(t *testing.T) {
	s, _ := newServer(t, timtest.Options{})
	a := do(t, s, request{command: tim.CommandAddGroupMember, body: fmt.Sprintf(`{"GroupId":%q,"MemberList":[{"Member_Account":"bob"},{"Member_Account":"jared"}]}`, public)})
	if got := string(a.raw["MemberList"]); got != `[{"Member_Account":"bob","Result":1},{"Member_Account":"jared","Result":2}]` {
		t.Errorf("MemberList = %s", got)
	}
	do(t, s, request{command: tim.CommandDeleteGroupMember, body: fmt.Sprintf(`{"GroupId":%q,"MemberToDel_Account":["jared","nobody"],"Silence":1}`, public)})
	g := s.Group(public)
	if !g.IsMember("bob") || g.IsMember("jared") || g.Roles["leckie"] != tim.RoleOwner || g.Roles["peter"] != tim.RoleAdmin {
		t.Errorf("group = %+v", g)
	}
	s.AddGroup(timtest.Group{ID: "@TGS#small", Type: "Public", Owner: "leckie", MaxMemberNum: 2})
	a = do(t, s, request{command: tim.CommandAddGroupMember, body: `{"GroupId":"@TGS#small","MemberList":[{"Member_Account":"a"},{"Member_Account":"b"}]}`})
	if a.code != tim.CodeGroupFull || len(s.Group("@TGS#small").Members) != 1 {
		t.Errorf("adding past MaxMemberNum answered %d and left %v", a.code, s.Group("@TGS#small").Members)
	}
}

func TestGetGroupInfoAnswersPerGroup(t *testing.T) {
	s, _ := newServer(t, timtest.Options{})
	do(t, s, request{command: tim.CommandModifyGroupBaseInfo, body: fmt.Sprintf(`{"GroupId":%q,"MuteAllMember":"On","ApplyJoinOption":"DisableApply"}`, public)})
	a := do(t, s, request{command: tim.CommandGetGroupInfo, body: fmt.Sprintf(`{"GroupIdList":[%q,"@TGS#never",%q]}`, public, live)})
	var infos []map[string]any
	json.Unmarshal(a.raw["GroupInfo"], &infos)
	if len(infos) != 3 {
		t.Fatalf("GroupInfo = %v", infos)
	}
	g := infos[0]
	if g["Type"] != "Public" || g["Owner_Account"] != "leckie" || g["MuteAllMember"] != "On" || g["ApplyJoinOption"] != "DisableApply" || g["MemberNum"] != float64(4) || g["ErrorCode"] != float64(0) {
		t.Errorf("public group = %v", g)
	}
	if infos[1]["ErrorCode"] != float64(tim.CodeBadGroupID) {
		t.Errorf("unknown group = %v", infos[1])
	}
	if infos[2]["Type"] != "AVChatRoom" || infos[2]["ApplyJoinOption"] != "FreeAccess" {
		t.Errorf("live group = %v", infos[2])
	}
}

func TestGetGroupInfoAnswersOnlyTheFilteredFields(t *testing.T) {
	s, _ := newServer(t, timtest.Options{})
	a := do(t, s, request{command: tim.CommandGetGroupInfo, body: fmt.Sprintf(`{"GroupIdList":[%q,%q],"ResponseFilter":{"GroupBaseInfoFilter":["Type","Owner_Account"]}}`, public, live)})
	var infos []map[string]any
	json.Unmarshal(a.raw["GroupInfo"], &infos)
	if len(infos) != 2 {
		t.Fatalf("GroupInfo = %v", infos)
	}
	want := map[string]any{"GroupId": public, "ErrorCode": 0.0, "ErrorInfo": "", "Type": "Public", "Owner_Account": "leckie"}
	if fmt.Sprint(infos[0]) != fmt.Sprint(want) {
		t.Errorf("filtered public group = %v, want %v", infos[0], want)
	}
	// Without a filter every base field and the member list come back.
	a = do(t, s, request{command: tim.CommandGetGroupInfo, body: fmt.Sprintf(`{"GroupIdList":[%q]}`, public)})
	var all []map[string]any
	json.Unmarshal(a.raw["GroupInfo"], &all)
	members, _ := all[0]["MemberList"].([]any)
	if len(members) != 4 || all[0]["Name"] != "MyFirstGroup" {
		t.Errorf("unfiltered public group = %v", all[0])
	}
	// A member filter adds the member list with those fields.
	a = do(t, s, request{command: tim.CommandGetGroupInfo, body: fmt.Sprintf(`{"GroupIdList":[%q],"ResponseFilter":{"MemberInfoFilter":["Role"]}}`, public)})
	var byRole []map[string]any
	json.Unmarshal(a.raw["GroupInfo"], &byRole)
	members, _ = byRole[0]["MemberList"].([]any)
	if len(members) != 4 || fmt.Sprint(members[0]) != "map[Member_Account:jared Role:Member]" || byRole[0]["Type"] != nil {
		t.Errorf("member-filtered public group = %v", byRole[0])
	}
}

// TestAnAnswerOverOneMegabyteIs10018: get_group_info without a filter
// answers the member list too, which for a large group passes the 1 MB the
// IM server answers (10018); filtered to base fields it fits.
func TestAnAnswerOverOneMegabyteIs10018(t *testing.T) {
	s, _ := newServer(t, timtest.Options{})
	s.AddGroup(timtest.Group{ID: "@TGS#big", Type: "Public", Owner: "olga", Members: names("a-rather-long-member-account-", 8000)})
	a := do(t, s, request{command: tim.CommandGetGroupInfo, body: `{"GroupIdList":["@TGS#big"]}`})
	if a.code != tim.CodeResponseTooLarge {
		t.Errorf("unfiltered get_group_info of 8,000 members answered %d %q, want 10018", a.code, a.info)
	}
	a = do(t, s, request{command: tim.CommandGetGroupMemberInfo, body: `{"GroupId":"@TGS#big"}`})
	if a.code != tim.CodeResponseTooLarge {
		t.Errorf("get_group_member_info of 8,000 members answered %d %q, want 10018", a.code, a.info)
	}
	a = do(t, s, request{command: tim.CommandGetGroupInfo, body: `{"GroupIdList":["@TGS#big"],"ResponseFilter":{"GroupBaseInfoFilter":["Type","MemberNum"]}}`})
	var infos []map[string]any
	json.Unmarshal(a.raw["GroupInfo"], &infos)
	if a.code != 0 || len(infos) != 1 || infos[0]["MemberNum"] != 8001.0 {
		t.Errorf("filtered get_group_info answered %d %v", a.code, infos)
	}
	if calls := s.CallsTo(tim.CommandGetGroupInfo); len(calls) != 2 || calls[0].Code != tim.CodeResponseTooLarge || calls[1].Code != 0 {
		t.Errorf("recorded %v", codesOf(calls))
	}
}

func codesOf(calls []timtest.Call) []int {
	var out []int
	for _, c := range calls {
		out = append(out, c.Code)
	}
	return out
}

func TestGroupAtInfoIsRecorded(t *testing.T) {
	s, _ := newServer(t, timtest.Options{})
	do(t, s, request{command: tim.CommandSendGroupMsg, body: fmt.Sprintf(`{"GroupId":%q,"Random":7,"GroupAtInfo":[{"GroupAtAllFlag":0,"GroupAt_Account":"jared"}],"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"@jared stop"}}]}`, live)})
	msgs := s.Group(live).Messages
	if len(msgs) != 1 || fmt.Sprint(msgs[0].AtAccounts) != "[jared]" || msgs[0].AtAll {
		t.Errorf("messages %+v", msgs)
	}
}

// TestALateAnswerStillCarriesTheCallOut: AnswerLate models a server that
// finished the work but answered after the client gave up. The client gives
// up once the server has recorded the call, not after a guessed while: on a
// busy machine a fixed 100 ms could end before the request was even sent,
// leaving the rule unused for the next call, which then waited an hour.
func TestALateAnswerStillCarriesTheCallOut(t *testing.T) {
	s, _ := newServer(t, timtest.Options{})
	s.AnswerLate(tim.CommandForbidSendMsg, time.Hour, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	recorded := make(chan struct{})
	go func() {
		defer close(recorded)
		deadline := time.Now().Add(30 * time.Second)
		for len(s.CallsTo(tim.CommandForbidSendMsg)) == 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		cancel() // the client gives up
	}()
	u := s.URL() + "/v4/group_open_http_svc/" + tim.CommandForbidSendMsg + "?" + validQuery(t, "", "").Encode()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(mute(public, []string{"jared"}, 60)))
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("the late answer arrived before the client gave up")
	}
	<-recorded
	if calls := s.CallsTo(tim.CommandForbidSendMsg); len(calls) != 1 || !calls[0].Effective() {
		t.Fatalf("recorded %+v", calls)
	}
	if s.MuteUntil(public, "jared").IsZero() {
		t.Error("the call answered late was not carried out")
	}
	// The rule is used up: the next call is answered at once.
	if a := do(t, s, request{command: tim.CommandForbidSendMsg, body: mute(public, []string{"tommy"}, 60)}); a.code != 0 {
		t.Errorf("the next call answered %d", a.code)
	}
}

// TestCloseEndsAnswersHeldBack: Close does not wait out an AnswerLate delay.
func TestCloseEndsAnswersHeldBack(t *testing.T) {
	s, _ := newServer(t, timtest.Options{})
	s.AnswerLate(tim.CommandForbidSendMsg, time.Hour, 1)
	u := s.URL() + "/v4/group_open_http_svc/" + tim.CommandForbidSendMsg + "?" + validQuery(t, "", "").Encode()
	got := make(chan error, 1)
	go func() {
		resp, err := http.Post(u, "application/json", strings.NewReader(mute(public, []string{"jared"}, 60)))
		if err == nil {
			resp.Body.Close()
		}
		got <- err
	}()
	deadline := time.Now().Add(30 * time.Second)
	for len(s.CallsTo(tim.CommandForbidSendMsg)) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(time.Minute):
		t.Fatal("Close waited for the answer held back")
	}
	if err := <-got; err == nil {
		t.Error("the held answer was sent after Close")
	}
}

func TestInjectedFaultsLeaveStateUnchanged(t *testing.T) {
	tests := []struct {
		name   string
		faults timtest.Faults
		fault  string
		status int
		code   int
	}{
		{"an injected error answers its code", timtest.Faults{ErrorRate: 1}, "error", http.StatusOK, tim.CodeInternalError},
		{"an injected error may carry another code", timtest.Faults{ErrorRate: 1, ErrorCode: tim.CodeServiceTimeout}, "error", http.StatusOK, tim.CodeServiceTimeout},
		{"an injected server error answers HTTP 500", timtest.Faults{ServerErrorRate: 1}, "server_error", http.StatusInternalServerError, -1},
		{"an injected drop closes the connection", timtest.Faults{DropRate: 1}, "drop", 0, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newServer(t, timtest.Options{})
			s.SetFaults(tt.faults)
			c, err := tim.NewClient(s.ClientConfig())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			err = c.ForbidSendMsg(context.Background(), tim.ForbidSendMsgRequest{GroupID: public, Members: []string{"jared"}, MuteTime: 60})
			if err == nil || !tim.IsRetryable(err) {
				t.Errorf("got %v, want a retryable error", err)
			}
			if !s.MuteUntil(public, "jared").IsZero() {
				t.Error("the fault changed the state")
			}
			calls := s.Calls()
			if len(calls) != 1 || calls[0].Fault != tt.fault || calls[0].HTTPStatus != tt.status || calls[0].Code != tt.code || calls[0].Effective() {
				t.Errorf("recorded %+v", calls)
			}
		})
	}
}

func TestFailNextCountsDown(t *testing.T) {
	s, _ := newServer(t, timtest.Options{})
	s.FailNext(tim.CommandForbidSendMsg, tim.CodeInternalError, 2)
	s.FailNext("", tim.CodeRateLimit, 1)
	var got []int
	for range 3 {
		got = append(got, do(t, s, request{command: tim.CommandForbidSendMsg, body: mute(public, []string{"jared"}, 60)}).code)
	}
	got = append(got, do(t, s, request{command: tim.CommandGetGroupMutedAccount, body: fmt.Sprintf(`{"GroupId":%q}`, public)}).code)
	if want := []int{10002, 10002, 60007, 0}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("codes = %v, want %v", got, want)
	}
	if n := len(s.EffectiveCallsTo(tim.CommandForbidSendMsg)); n != 0 {
		t.Errorf("%d effective calls, want 0", n)
	}
	if !s.MuteUntil(public, "jared").IsZero() {
		t.Error("a failed call changed the state")
	}
}

// TestRetriesThroughRandomFaultsDoEachMuteOnce is the check the executor's
// tests rely on: with faults injected at random, retrying every mute until
// it succeeds leaves exactly one effective call per mute and the state that
// those calls describe.
func TestRetriesThroughRandomFaultsDoEachMuteOnce(t *testing.T) {
	members := names("m", 40)
	s, _ := newServer(t, timtest.Options{})
	s.AddGroup(timtest.Group{ID: "@TGS#big", Type: "Public", Owner: "leckie", Members: members})
	s.SetFaults(timtest.Faults{ErrorRate: 0.2, ServerErrorRate: 0.1, DropRate: 0.1, Seed: 7})
	cfg := s.ClientConfig()
	cfg.Timeout = 2 * time.Second
	c, err := tim.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i, m := range members {
		for attempt := 1; ; attempt++ {
			err := c.ForbidSendMsg(context.Background(), tim.ForbidSendMsgRequest{GroupID: "@TGS#big", Members: []string{m}, MuteTime: uint32(60 + i)})
			if err == nil {
				break
			}
			if !tim.IsRetryable(err) || attempt > 50 {
				t.Fatalf("mute %s: %v", m, err)
			}
		}
	}
	effective := s.EffectiveCallsTo(tim.CommandForbidSendMsg)
	if len(effective) != len(members) {
		t.Errorf("%d effective calls for %d mutes", len(effective), len(members))
	}
	if all := s.CallsTo(tim.CommandForbidSendMsg); len(all) == len(effective) {
		t.Error("no fault was injected")
	}
	for i, m := range members {
		if got := s.MuteUntil("@TGS#big", m); !got.Equal(t0.Add(time.Duration(60+i) * time.Second)) {
			t.Errorf("%s muted until %v", m, got)
		}
	}
}

func TestASlowCallWhoseClientGaveUpChangesNothing(t *testing.T) {
	s, _ := newServer(t, timtest.Options{})
	s.SetFaults(timtest.Faults{SlowRate: 1, SlowDelay: 10 * time.Second})
	cfg := s.ClientConfig()
	cfg.Timeout = 50 * time.Millisecond
	c, err := tim.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.ForbidSendMsg(context.Background(), tim.ForbidSendMsgRequest{GroupID: public, Members: []string{"jared"}, MuteTime: 60}); err == nil {
		t.Fatal("the call succeeded")
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(s.Calls()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	calls := s.Calls()
	if len(calls) != 1 || calls[0].Fault != "slow" || calls[0].Effective() {
		t.Errorf("recorded %+v", calls)
	}
	if !s.MuteUntil(public, "jared").IsZero() {
		t.Error("the abandoned call changed the state")
	}

	// A slowed call whose client waits is carried out.
	s.SetFaults(timtest.Faults{SlowRate: 1, SlowDelay: 20 * time.Millisecond})
	cfg.Timeout = 5 * time.Second
	patient, err := tim.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer patient.Close()
	if err := patient.ForbidSendMsg(context.Background(), tim.ForbidSendMsgRequest{GroupID: public, Members: []string{"jared"}, MuteTime: 60}); err != nil {
		t.Fatal(err)
	}
	if s.MuteUntil(public, "jared").IsZero() {
		t.Error("the slowed call was not carried out")
	}
}

func TestRateLimitAnswers60007WithoutChangingState(t *testing.T) {
	s, clk := newServer(t, timtest.Options{RateLimit: 5})
	var got []int
	for i := range 8 {
		got = append(got, do(t, s, request{command: tim.CommandForbidSendMsg, body: mute(public, []string{fmt.Sprintf("u%d", i)}, 60)}).code)
	}
	if want := "[0 0 0 0 0 60007 60007 60007]"; fmt.Sprint(got) != want {
		t.Errorf("codes = %v, want %s", got, want)
	}
	if n := len(s.Group(public).Muted); n != 5 {
		t.Errorf("%d mutes, want 5", n)
	}
	if n := s.MaxCallsPerSecond(); n != 5 {
		t.Errorf("MaxCallsPerSecond = %d, want 5", n)
	}
	clk.Add(time.Second)
	if a := do(t, s, request{command: tim.CommandForbidSendMsg, body: mute(public, []string{"later"}, 60)}); a.code != 0 {
		t.Errorf("a call a second later answered %d", a.code)
	}
}

func TestMaxCallsPerSecondSlidesOverTheRecord(t *testing.T) {
	s, clk := newServer(t, timtest.Options{})
	// Calls at 0, 0.4, 0.8, 1.2, 1.6 s: at most three fall within any one
	// second.
	for range 5 {
		do(t, s, request{command: tim.CommandGetGroupMutedAccount, body: fmt.Sprintf(`{"GroupId":%q}`, public)})
		clk.Add(400 * time.Millisecond)
	}
	s.FailNext("", tim.CodeInternalError, 3)
	for range 3 {
		do(t, s, request{command: tim.CommandGetGroupMutedAccount, body: fmt.Sprintf(`{"GroupId":%q}`, public)})
	}
	if n := s.MaxCallsPerSecond(); n != 3 {
		t.Errorf("MaxCallsPerSecond = %d, want 3 (failed calls do not count)", n)
	}
}

func TestSignedURLCarriesAValidSignature(t *testing.T) {
	now := time.Unix(1669872112, 0)
	u, err := url.Parse(timtest.SignedURL("http://bot.example/", "/callback", 1400000000, tim.CmdBeforeSendMsg, "xxxxyyyy", now))
	if err != nil {
		t.Fatal(err)
	}
	if u.Path != "/callback" {
		t.Errorf("path = %q", u.Path)
	}
	var keys []string
	for _, kv := range strings.Split(u.RawQuery, "&") {
		keys = append(keys, strings.SplitN(kv, "=", 2)[0])
	}
	if got := strings.Join(keys, ","); got != "SdkAppid,CallbackCommand,contenttype,ClientIP,OptPlatform,RequestTime,Sign" {
		t.Errorf("query keys = %s", got)
	}
	q := u.Query()
	if q.Get("Sign") != "17773bc39a671d7b9aa835458704d2a6db81360a5940292b587d6d760d484061" || q.Get("CallbackCommand") != tim.CmdBeforeSendMsg || q.Get("OptPlatform") != "RESTAPI" {
		t.Errorf("query = %v", q)
	}
	if err := (tim.SignVerifier{Tokens: []string{"xxxxyyyy"}, MaxSkew: time.Minute}).Verify(q.Get("RequestTime"), q.Get("Sign"), now); err != nil {
		t.Errorf("Verify: %v", err)
	}

	unsigned := timtest.SignedURL("", "callback", 1400000000, tim.CmdAfterSendMsg, "", now)
	if strings.Contains(unsigned, "Sign=") || strings.Contains(unsigned, "RequestTime=") || !strings.HasPrefix(unsigned, "/callback?SdkAppid=1400000000&") {
		t.Errorf("unsigned URL = %s", unsigned)
	}
}

func TestAddGroupPanicsOnSetupMistakes(t *testing.T) {
	s, _ := newServer(t, timtest.Options{})
	for _, g := range []timtest.Group{{ID: "", Type: "Public"}, {ID: "@TGS#x", Type: "Secret"}, {ID: "@TGS#live", Type: "Live", Admins: []string{"adam"}}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("AddGroup(%+v) did not panic", g)
				}
			}()
			s.AddGroup(g)
		}()
	}
}
