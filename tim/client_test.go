package tim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/timguard/timguard/internal/testclock"
	"github.com/timguard/timguard/tim"
	"github.com/timguard/timguard/tim/timtest"
)

const groupID = "@TGS#2J4SZEAEL"

// logBuffer collects log output from concurrent calls.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// assertNoSecrets fails when text contains the secret key or a UserSig.
func assertNoSecrets(t *testing.T, what, text, key string, sigs []string) {
	t.Helper()
	if strings.Contains(text, key) {
		t.Errorf("%s contains the secret key", what)
	}
	for _, sig := range sigs {
		if sig != "" && strings.Contains(text, sig) {
			t.Errorf("%s contains a UserSig", what)
			return
		}
	}
	if strings.Contains(text, "usersig=") {
		t.Errorf("%s contains a usersig query parameter", what)
	}
}

func recordedSigs(s *timtest.Server) []string {
	var out []string
	for _, c := range s.Calls() {
		out = append(out, c.UserSig)
	}
	return out
}

// newClient returns a client of s that logs at debug level into the
// returned buffer. When the test ends it checks that the log holds neither
// the secret key nor any UserSig the fake received.
func newClient(t *testing.T, s *timtest.Server, edit ...func(*tim.ClientConfig)) (*tim.Client, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	cfg := s.ClientConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	for _, e := range edit {
		e(&cfg)
	}
	c, err := tim.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		assertNoSecrets(t, "the client's log", logs.String(), cfg.SecretKey, recordedSigs(s))
	})
	return c, logs
}

func newServer(t *testing.T, opts timtest.Options, groups ...timtest.Group) *timtest.Server {
	t.Helper()
	s := timtest.New(opts)
	t.Cleanup(s.Close)
	for _, g := range groups {
		s.AddGroup(g)
	}
	return s
}

func publicGroup() timtest.Group {
	return timtest.Group{ID: groupID, Type: "Public", Owner: "leckie", Admins: []string{"peter"}, Members: []string{"jared", "tommy"}, Name: "MyFirstGroup"}
}

func codes(calls []timtest.Call) []int {
	var out []int
	for _, c := range calls {
		out = append(out, c.Code)
	}
	return out
}

func TestNewClientValidatesTheConfig(t *testing.T) {
	good := tim.ClientConfig{BaseURL: "https://adminapisgp.im.qcloud.com", SDKAppID: testAppID, Admin: testAdmin, SecretKey: testKey}
	tests := []struct {
		name  string
		edit  func(*tim.ClientConfig)
		field string
	}{
		{"an empty base URL is refused", func(c *tim.ClientConfig) { c.BaseURL = "" }, "BaseURL"},
		{"a base URL without a scheme is refused", func(c *tim.ClientConfig) { c.BaseURL = "adminapisgp.im.qcloud.com" }, "BaseURL"},
		{"a base URL with a query is refused", func(c *tim.ClientConfig) { c.BaseURL = "https://x.example?a=b" }, "BaseURL"},
		{"an ftp base URL is refused", func(c *tim.ClientConfig) { c.BaseURL = "ftp://x.example" }, "BaseURL"},
		{"an http base URL is refused: the UserSig would travel in clear", func(c *tim.ClientConfig) { c.BaseURL = "http://adminapisgp.im.qcloud.com" }, "BaseURL"},
		{"an http base URL on a private address is refused", func(c *tim.ClientConfig) { c.BaseURL = "http://10.0.0.8:8080" }, "BaseURL"},
		{"an http base URL on a host named like localhost is refused", func(c *tim.ClientConfig) { c.BaseURL = "http://localhost.example.com" }, "BaseURL"},
		{"an app id of 0 is refused", func(c *tim.ClientConfig) { c.SDKAppID = 0 }, "SDKAppID"},
		{"an empty admin is refused", func(c *tim.ClientConfig) { c.Admin = " " }, "Admin"},
		{"an empty secret key is refused", func(c *tim.ClientConfig) { c.SecretKey = "" }, "SecretKey"},
		{"a negative timeout is refused", func(c *tim.ClientConfig) { c.Timeout = -time.Second }, "Timeout"},
		{"a UserSig validity under a minute is refused", func(c *tim.ClientConfig) { c.SigTTL = time.Second }, "SigTTL"},
		{"a negative response bound is refused", func(c *tim.ClientConfig) { c.MaxResponseBytes = -1 }, "MaxResponseBytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			tt.edit(&cfg)
			_, err := tim.NewClient(cfg)
			if err == nil {
				t.Fatal("NewClient succeeded")
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("error %q does not name %s", err, tt.field)
			}
			if strings.Contains(err.Error(), testKey) {
				t.Errorf("error %q contains the secret key", err)
			}
		})
	}
	if _, err := tim.NewClient(good); err != nil {
		t.Errorf("a complete config is refused: %v", err)
	}
	for _, base := range []string{"http://127.0.0.1:8080", "http://localhost:9000", "http://[::1]:80", "http://127.0.0.2"} {
		cfg := good
		cfg.BaseURL = base
		if _, err := tim.NewClient(cfg); err != nil {
			t.Errorf("the loopback base %s is refused: %v", base, err)
		}
	}
}

// TestTheDefaultTimeoutOutwaitsTheServer: the IM server works on a call for
// up to 3 s and asks clients to wait longer; a client that gave up at 3 s
// would send calls that succeeded late again.
func TestTheDefaultTimeoutOutwaitsTheServer(t *testing.T) {
	if tim.DefaultTimeout <= tim.ServerTimeout || tim.ServerTimeout != 3*time.Second {
		t.Errorf("DefaultTimeout %v, ServerTimeout %v: the client must wait longer than the server's 3s", tim.DefaultTimeout, tim.ServerTimeout)
	}
}

func TestClientConfigNeverPrintsTheSecretKey(t *testing.T) {
	cfg := tim.ClientConfig{BaseURL: "https://adminapisgp.im.qcloud.com", SDKAppID: testAppID, Admin: testAdmin, SecretKey: testKey}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("config", "tencent", cfg)
	for _, out := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%v", &cfg), logs.String()} {
		if strings.Contains(out, testKey) {
			t.Errorf("%q contains the secret key", out)
		}
		if !strings.Contains(out, testAdmin) {
			t.Errorf("%q does not describe the config", out)
		}
	}
}

func TestClientSendsTheDocumentedRequest(t *testing.T) {
	var got *http.Request
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		body, _ = io.ReadAll(r.Body)
		io.WriteString(w, `{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0}`)
	}))
	defer srv.Close()
	c, err := tim.NewClient(tim.ClientConfig{BaseURL: srv.URL + "/", SDKAppID: testAppID, Admin: testAdmin, SecretKey: testKey,
		Now: func() time.Time { return testNow }, Rand: func() uint32 { return 99999999 }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Call(context.Background(), "group_open_http_svc", "get_appid_group_list", nil, nil); err != nil {
		t.Fatal(err)
	}
	if got.Method != http.MethodPost || got.URL.Path != "/v4/group_open_http_svc/get_appid_group_list" {
		t.Errorf("request is %s %s", got.Method, got.URL.Path)
	}
	if ct := got.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if string(body) != "{}" {
		t.Errorf("body = %q, want {}", body)
	}
	wantOrder := []string{"sdkappid", "identifier", "usersig", "random", "contenttype"}
	var order []string
	for _, kv := range strings.Split(got.URL.RawQuery, "&") {
		order = append(order, strings.SplitN(kv, "=", 2)[0])
	}
	if !slices.Equal(order, wantOrder) {
		t.Errorf("query parameters %v, want %v", order, wantOrder)
	}
	q := got.URL.Query()
	if q.Get("sdkappid") != "1400000000" || q.Get("identifier") != testAdmin || q.Get("random") != "99999999" || q.Get("contenttype") != "json" {
		t.Errorf("query = %v", q)
	}
	if err := tim.VerifyUserSig(q.Get("usersig"), testAppID, testKey, testAdmin, testNow); err != nil {
		t.Errorf("usersig does not verify: %v", err)
	}
}

func TestForbidSendMsgMutesAndUnmutes(t *testing.T) {
	clk := testclock.New(testNow)
	s := newServer(t, timtest.Options{Now: clk.Now}, publicGroup())
	c, _ := newClient(t, s, func(cfg *tim.ClientConfig) { cfg.Now = clk.Now })
	ctx := context.Background()

	if err := c.ForbidSendMsg(ctx, tim.ForbidSendMsgRequest{GroupID: groupID, Members: []string{"jared", "tommy"}, MuteTime: 600}); err != nil {
		t.Fatal(err)
	}
	if got, want := s.MuteUntil(groupID, "jared"), testNow.Add(10*time.Minute); !got.Equal(want) {
		t.Errorf("jared muted until %v, want %v", got, want)
	}
	muted, err := c.GetGroupMutedAccount(ctx, groupID, "")
	if err != nil {
		t.Fatal(err)
	}
	want := []tim.MutedAccount{{Account: "jared", MutedUntil: testNow.Unix() + 600}, {Account: "tommy", MutedUntil: testNow.Unix() + 600}}
	if !slices.Equal(muted, want) {
		t.Errorf("GetGroupMutedAccount = %+v, want %+v", muted, want)
	}

	if err := c.ForbidSendMsg(ctx, tim.ForbidSendMsgRequest{GroupID: groupID, Members: []string{"tommy"}, MuteTime: tim.MuteForever}); err != nil {
		t.Fatal(err)
	}
	if err := c.ForbidSendMsg(ctx, tim.ForbidSendMsgRequest{GroupID: groupID, Members: []string{"jared"}, MuteTime: 0}); err != nil {
		t.Fatal(err)
	}
	clk.Set(testNow.Add(365 * 24 * time.Hour))
	muted, err = c.GetGroupMutedAccount(ctx, groupID, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(muted) != 1 || muted[0].Account != "tommy" || muted[0].MutedUntil != int64(tim.MuteForever) {
		t.Errorf("after a year GetGroupMutedAccount = %+v, want tommy muted forever", muted)
	}
	if !s.MuteUntil(groupID, "jared").IsZero() {
		t.Error("jared is still muted after MuteTime 0")
	}

	var sent map[string]any
	if err := json.Unmarshal(s.CallsTo(tim.CommandForbidSendMsg)[0].Body, &sent); err != nil {
		t.Fatal(err)
	}
	if _, ok := sent["TopicId"]; ok {
		t.Errorf("an empty TopicId was sent: %v", sent)
	}
}

func TestForbidSendMsgIsRefusedInWorkGroups(t *testing.T) {
	s := newServer(t, timtest.Options{}, timtest.Group{ID: "@TGS#work", Type: "Work", Owner: "leckie", Members: []string{"jared"}})
	c, _ := newClient(t, s)
	err := c.ForbidSendMsg(context.Background(), tim.ForbidSendMsgRequest{GroupID: "@TGS#work", Members: []string{"jared"}, MuteTime: 60})
	var apiErr *tim.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != tim.CodeNoPermission || apiErr.Command != tim.CommandForbidSendMsg {
		t.Fatalf("ForbidSendMsg = %v, want a 10007 APIError", err)
	}
	if tim.Classify(err) != tim.Permanent {
		t.Errorf("Classify = %v, want permanent", tim.Classify(err))
	}
}

func TestDeleteGroupMemberRemovesMembers(t *testing.T) {
	s := newServer(t, timtest.Options{}, publicGroup(), timtest.Group{ID: "@TGS#live", Type: "AVChatRoom", Members: []string{"jared"}})
	c, _ := newClient(t, s)
	ctx := context.Background()
	err := c.DeleteGroupMember(ctx, tim.DeleteGroupMemberRequest{GroupID: groupID, Members: []string{"jared", "nobody"}, Silence: true, Reason: "spam"})
	if err != nil {
		t.Fatal(err)
	}
	if g := s.Group(groupID); g.IsMember("jared") || !g.IsMember("tommy") {
		t.Errorf("members after removing jared: %v", g.Members)
	}
	var sent map[string]any
	json.Unmarshal(s.CallsTo(tim.CommandDeleteGroupMember)[0].Body, &sent)
	if sent["Silence"] != float64(1) || sent["Reason"] != "spam" || sent["GroupId"] != groupID {
		t.Errorf("sent %v", sent)
	}

	err = c.DeleteGroupMember(ctx, tim.DeleteGroupMemberRequest{GroupID: "@TGS#live", Members: []string{"jared"}})
	if tim.Code(err) != tim.CodeBadParameter {
		t.Errorf("DeleteGroupMember in an AVChatRoom = %v, want 10004", err)
	}
}

func TestAddGroupMemberReportsEachAccount(t *testing.T) {
	s := newServer(t, timtest.Options{}, publicGroup(), timtest.Group{ID: "@TGS#live", Type: "Live"})
	c, _ := newClient(t, s)
	ctx := context.Background()
	res, err := c.AddGroupMember(ctx, tim.AddGroupMemberRequest{GroupID: groupID, Members: []string{"bob", "jared"}, Silence: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []tim.AddMemberResult{{Account: "bob", Result: tim.AddResultAdded}, {Account: "jared", Result: tim.AddResultAlreadyMember}}
	if !slices.Equal(res, want) {
		t.Errorf("AddGroupMember = %+v, want %+v", res, want)
	}
	if !s.Group(groupID).IsMember("bob") {
		t.Error("bob was not added")
	}
	if _, err := c.AddGroupMember(ctx, tim.AddGroupMemberRequest{GroupID: "@TGS#live", Members: []string{"bob"}}); tim.Code(err) != tim.CodeNoPermission {
		t.Errorf("AddGroupMember in an AVChatRoom = %v, want 10007", err)
	}
}

func TestGetGroupMemberInfoPagesAndFilters(t *testing.T) {
	clk := testclock.New(testNow)
	s := newServer(t, timtest.Options{Now: clk.Now}, publicGroup())
	c, _ := newClient(t, s, func(cfg *tim.ClientConfig) { cfg.Now = clk.Now })
	ctx := context.Background()
	if err := c.ForbidSendMsg(ctx, tim.ForbidSendMsgRequest{GroupID: groupID, Members: []string{"tommy"}, MuteTime: 60}); err != nil {
		t.Fatal(err)
	}

	all, err := c.GetGroupMemberInfo(ctx, tim.GetGroupMemberInfoRequest{GroupID: groupID})
	if err != nil {
		t.Fatal(err)
	}
	var accounts []string
	for _, m := range all.Members {
		accounts = append(accounts, m.Account+"/"+m.Role)
	}
	if want := []string{"leckie/Owner", "peter/Admin", "jared/Member", "tommy/Member"}; !slices.Equal(accounts, want) {
		t.Errorf("members = %v, want %v", accounts, want)
	}
	if all.MemberNum != 4 || all.Members[3].MuteUntil != testNow.Unix()+60 || all.Members[2].MuteUntil != 0 {
		t.Errorf("GetGroupMemberInfo = %+v", all)
	}

	page, err := c.GetGroupMemberInfo(ctx, tim.GetGroupMemberInfoRequest{GroupID: groupID, Limit: 1, Offset: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Members) != 1 || page.Members[0].Account != "peter" || page.MemberNum != 4 {
		t.Errorf("page = %+v", page)
	}
	admins, err := c.GetGroupMemberInfo(ctx, tim.GetGroupMemberInfoRequest{GroupID: groupID, RoleFilter: []string{tim.RoleOwner, tim.RoleAdmin}})
	if err != nil {
		t.Fatal(err)
	}
	if len(admins.Members) != 2 {
		t.Errorf("owner and admins = %+v", admins.Members)
	}
	if _, err := c.GetGroupMemberInfo(ctx, tim.GetGroupMemberInfoRequest{GroupID: groupID, RoleFilter: []string{"Boss"}}); !isRequestError(err) {
		t.Errorf("an unknown role filter = %v, want a RequestError", err)
	}
}

func TestGetGroupMemberInfoPagesCommunityGroupsWithNext(t *testing.T) {
	s := newServer(t, timtest.Options{}, timtest.Group{ID: "@TGS#community", Type: "Community", Owner: "leckie", Members: []string{"a", "b", "c"}})
	c, _ := newClient(t, s)
	// Without Next (the request of other group types) the server refuses a
	// Community group: Next is required, "" on the first page.
	_, err := c.GetGroupMemberInfo(context.Background(), tim.GetGroupMemberInfoRequest{GroupID: "@TGS#community", Limit: 2})
	if tim.Code(err) != tim.CodeBadParameter {
		t.Fatalf("a Community listing without Next = %v, want 10004", err)
	}
	var seen []string
	req := tim.GetGroupMemberInfoRequest{GroupID: "@TGS#community", Community: true, Limit: 2}
	for range 5 {
		page, err := c.GetGroupMemberInfo(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page.Members {
			seen = append(seen, m.Account)
		}
		if page.Next == "" {
			break
		}
		req.Next = page.Next
	}
	if want := []string{"leckie", "a", "b", "c"}; !slices.Equal(seen, want) {
		t.Errorf("paged through %v, want %v", seen, want)
	}
	calls := s.CallsTo(tim.CommandGetGroupMemberInfo)
	if len(calls) != 3 {
		t.Fatalf("%d calls, want the refused one and two pages", len(calls))
	}
	if got := string(calls[1].Body); got != `{"GroupId":"@TGS#community","Limit":2,"Next":""}` {
		t.Errorf("first page asked %s, want Next \"\" and no Offset", got)
	}
	for _, bad := range []tim.GetGroupMemberInfoRequest{
		{GroupID: "@TGS#community", Community: true, Offset: 2},
		{GroupID: "@TGS#community", Community: true, Limit: 101},
		{GroupID: groupID, Next: "2"},
	} {
		if _, err := c.GetGroupMemberInfo(context.Background(), bad); !isRequestError(err) {
			t.Errorf("%+v = %v, want a RequestError", bad, err)
		}
	}
}

func TestGetGroupMemberInfoIsNotAvailableInLiveGroups(t *testing.T) {
	s := newServer(t, timtest.Options{}, timtest.Group{ID: "@TGS#live", Type: "AVChatRoom", Owner: "host", Members: []string{"a"}})
	c, _ := newClient(t, s)
	_, err := c.GetGroupMemberInfo(context.Background(), tim.GetGroupMemberInfoRequest{GroupID: "@TGS#live", RoleFilter: []string{tim.RoleOwner, tim.RoleAdmin}})
	if tim.Code(err) != tim.CodeNoPermission || tim.Classify(err) != tim.Permanent {
		t.Errorf("get_group_member_info in a live group = %v, want a permanent 10007", err)
	}
	// get_group_info is what names the owner there.
	infos, err := c.GetGroupInfo(context.Background(), []string{"@TGS#live"})
	if err != nil || len(infos) != 1 || infos[0].Owner != "host" || infos[0].Type != tim.GroupAVChatRoom {
		t.Errorf("GetGroupInfo = %+v, %v", infos, err)
	}
}

func TestMemberInfoReadsTheOlderMuteFieldName(t *testing.T) {
	var m tim.MemberInfo
	if err := json.Unmarshal([]byte(`{"Member_Account":"peter","Role":"Member","ShutUpUntil":1431069882}`), &m); err != nil {
		t.Fatal(err)
	}
	if m.Account != "peter" || m.MuteUntil != 1431069882 {
		t.Errorf("decoded %+v", m)
	}
}

func TestGetGroupInfoReportsEachGroup(t *testing.T) {
	s := newServer(t, timtest.Options{}, publicGroup(), timtest.Group{ID: "@TGS#gone", Type: "Public"})
	s.RemoveGroup("@TGS#gone")
	c, _ := newClient(t, s)
	infos, err := c.GetGroupInfo(context.Background(), []string{groupID, "@TGS#gone", "@TGS#never"})
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 3 {
		t.Fatalf("got %d entries", len(infos))
	}
	g := infos[0]
	want := tim.GroupInfo{GroupID: groupID, Type: tim.GroupPublic, Owner: "leckie", ApplyJoinOption: tim.JoinNeedPermission, MuteAllMember: tim.MuteAllOff}
	if g != want {
		t.Errorf("GroupInfo = %+v, want only the fields asked for: %+v", g, want)
	}
	body := string(s.CallsTo(tim.CommandGetGroupInfo)[0].Body)
	if !strings.Contains(body, `"ResponseFilter":{"GroupBaseInfoFilter":["Type","Owner_Account","ApplyJoinOption","MuteAllMember"]}`) {
		t.Errorf("get_group_info asked %s, want a ResponseFilter of the fields read", body)
	}
	if tim.Code(infos[1].Err()) != tim.CodeGroupNotFound || tim.Code(infos[2].Err()) != tim.CodeBadGroupID {
		t.Errorf("unknown groups answered %v and %v, want 10010 and 10015", infos[1].Err(), infos[2].Err())
	}
}

// TestGetGroupInfoOfALargeGroupFitsTheAnswerLimit: without a ResponseFilter
// the IM server adds every member to the answer and refuses one over 1 MB
// (10018); the client's filtered request gets the group's info.
func TestGetGroupInfoOfALargeGroupFitsTheAnswerLimit(t *testing.T) {
	s := newServer(t, timtest.Options{}, timtest.Group{ID: groupID, Type: "Public", Owner: "leckie", Members: accounts(12000)})
	c, _ := newClient(t, s)
	var raw struct{ GroupInfo []tim.GroupInfo }
	err := c.Call(context.Background(), tim.ServiceGroup, tim.CommandGetGroupInfo, map[string]any{"GroupIdList": []string{groupID}}, &raw)
	if tim.Code(err) != tim.CodeResponseTooLarge {
		t.Fatalf("get_group_info without a filter = %v, want 10018", err)
	}
	infos, err := c.GetGroupInfo(context.Background(), []string{groupID})
	if err != nil || len(infos) != 1 || infos[0].Type != tim.GroupPublic || infos[0].Owner != "leckie" {
		t.Errorf("GetGroupInfo = %+v, %v", infos, err)
	}
}

func TestModifyGroupBaseInfoMutesTheWholeGroup(t *testing.T) {
	s := newServer(t, timtest.Options{}, publicGroup())
	c, _ := newClient(t, s)
	ctx := context.Background()
	notice := "quiet hours"
	if err := c.ModifyGroupBaseInfo(ctx, tim.ModifyGroupBaseInfoRequest{GroupID: groupID, MuteAllMember: tim.MuteAllOn, Notification: &notice}); err != nil {
		t.Fatal(err)
	}
	if g := s.Group(groupID); !g.MuteAllMember || g.Notification != notice {
		t.Errorf("group = %+v", g)
	}
	infos, err := c.GetGroupInfo(ctx, []string{groupID})
	if err != nil {
		t.Fatal(err)
	}
	if infos[0].MuteAllMember != tim.MuteAllOn {
		t.Errorf("MuteAllMember = %q", infos[0].MuteAllMember)
	}
	if err := c.ModifyGroupBaseInfo(ctx, tim.ModifyGroupBaseInfoRequest{GroupID: groupID, MuteAllMember: tim.MuteAllOff}); err != nil {
		t.Fatal(err)
	}
	if g := s.Group(groupID); g.MuteAllMember || g.Notification != notice {
		t.Errorf("after Off the group = %+v", g)
	}
	var sent map[string]any
	json.Unmarshal(s.CallsTo(tim.CommandModifyGroupBaseInfo)[1].Body, &sent)
	if len(sent) != 2 {
		t.Errorf("unchanged fields were sent: %v", sent)
	}
	if err := c.ModifyGroupBaseInfo(ctx, tim.ModifyGroupBaseInfoRequest{GroupID: groupID, MuteAllMember: "yes"}); !isRequestError(err) {
		t.Errorf("MuteAllMember yes = %v, want a RequestError", err)
	}
}

func TestSendGroupMsgForbidsCallbacksUnlessTold(t *testing.T) {
	s := newServer(t, timtest.Options{}, publicGroup())
	c, _ := newClient(t, s, func(cfg *tim.ClientConfig) { cfg.Rand = func() uint32 { return 4242 } })
	ctx := context.Background()
	body := []tim.MsgElem{{MsgType: tim.ElemText, MsgContent: tim.TextContent("Please keep it civil.")}}

	res, err := c.SendGroupMsg(ctx, tim.SendGroupMsgRequest{GroupID: groupID, MsgBody: body})
	if err != nil {
		t.Fatal(err)
	}
	if res.MsgSeq != 1 || res.MsgTime == 0 {
		t.Errorf("SendGroupMsg = %+v", res)
	}
	msgs := s.Group(groupID).Messages
	if len(msgs) != 1 || msgs[0].Random != 4242 {
		t.Fatalf("messages = %+v", msgs)
	}
	if want := []string{tim.ForbidBeforeSendMsgCallback, tim.ForbidAfterSendMsgCallback}; !slices.Equal(msgs[0].ForbidCallbackControl, want) {
		t.Errorf("ForbidCallbackControl = %v, want %v", msgs[0].ForbidCallbackControl, want)
	}
	if !strings.Contains(string(msgs[0].Body), `"Text":"Please keep it civil."`) {
		t.Errorf("body = %s", msgs[0].Body)
	}

	// The same content and Random within five minutes is a duplicate.
	again, err := c.SendGroupMsg(ctx, tim.SendGroupMsgRequest{GroupID: groupID, Random: 4242, MsgBody: body})
	if err != nil {
		t.Fatal(err)
	}
	if again.MsgSeq != 1 || len(s.Group(groupID).Messages) != 1 {
		t.Errorf("a duplicate was delivered: %+v", s.Group(groupID).Messages)
	}

	if _, err := c.SendGroupMsg(ctx, tim.SendGroupMsgRequest{GroupID: groupID, From: "leckie", Random: 7, MsgBody: body, ForbidCallbackControl: []string{}}); err != nil {
		t.Fatal(err)
	}
	msgs = s.Group(groupID).Messages
	if len(msgs) != 2 || msgs[1].From != "leckie" || len(msgs[1].ForbidCallbackControl) != 0 {
		t.Errorf("messages = %+v", msgs)
	}
	if _, err := c.SendGroupMsg(ctx, tim.SendGroupMsgRequest{GroupID: groupID}); !isRequestError(err) {
		t.Errorf("an empty MsgBody = %v, want a RequestError", err)
	}
}

func TestSendGroupSystemNotification(t *testing.T) {
	s := newServer(t, timtest.Options{}, publicGroup())
	c, _ := newClient(t, s)
	ctx := context.Background()
	if err := c.SendGroupSystemNotification(ctx, groupID, []string{"jared"}, "You were warned for spam."); err != nil {
		t.Fatal(err)
	}
	if err := c.SendGroupSystemNotification(ctx, groupID, nil, "Welcome."); err != nil {
		t.Fatal(err)
	}
	n := s.Group(groupID).Notifications
	if len(n) != 2 || !slices.Equal(n[0].To, []string{"jared"}) || n[0].Content != "You were warned for spam." || n[1].To != nil {
		t.Errorf("notifications = %+v", n)
	}
	if err := c.SendGroupSystemNotification(ctx, groupID, accounts(501), "too many"); !isRequestError(err) {
		t.Errorf("a notice to 501 members = %v, want a RequestError", err)
	}
	// A live group takes notices to all members only.
	s.AddGroup(timtest.Group{ID: "@TGS#live", Type: "AVChatRoom", Owner: "host"})
	if err := c.SendGroupSystemNotification(ctx, "@TGS#live", []string{"jared"}, "stop"); tim.Code(err) != tim.CodeNoPermission {
		t.Errorf("a notice to one member of a live group = %v, want 10007", err)
	}
	if err := c.SendGroupSystemNotification(ctx, "@TGS#live", nil, "Be kind."); err != nil {
		t.Errorf("a notice to all of a live group: %v", err)
	}
}

func TestSendGroupMsgMentionsAMember(t *testing.T) {
	s := newServer(t, timtest.Options{}, timtest.Group{ID: "@TGS#live", Type: "AVChatRoom", Owner: "host"})
	c, _ := newClient(t, s)
	req := tim.SendGroupMsgRequest{GroupID: "@TGS#live", Random: 42,
		MsgBody:     []tim.MsgElem{{MsgType: tim.ElemText, MsgContent: tim.TextContent("@jared stop")}},
		GroupAtInfo: []tim.GroupAt{{Account: "jared"}}}
	for range 2 { // the second is a repeat (same Random and content) and is dropped
		if _, err := c.SendGroupMsg(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	msgs := s.Group("@TGS#live").Messages
	if len(msgs) != 1 || !slices.Equal(msgs[0].AtAccounts, []string{"jared"}) || msgs[0].Random != 42 {
		t.Errorf("messages %+v, want one mentioning jared", msgs)
	}
	req.GroupAtInfo = []tim.GroupAt{{}}
	if _, err := c.SendGroupMsg(context.Background(), req); !isRequestError(err) {
		t.Errorf("a mention of nobody = %v, want a RequestError", err)
	}
}

func TestModifyGroupMemberInfoChangesRoleMuteAndNameCard(t *testing.T) {
	clk := testclock.New(testNow)
	s := newServer(t, timtest.Options{Now: clk.Now}, publicGroup())
	c, _ := newClient(t, s, func(cfg *tim.ClientConfig) { cfg.Now = clk.Now })
	ctx := context.Background()
	mute := uint32(120)
	card := "Jared (muted)"
	if err := c.ModifyGroupMemberInfo(ctx, tim.ModifyGroupMemberInfoRequest{GroupID: groupID, Member: "jared", Role: tim.RoleAdmin, MuteTime: &mute, NameCard: &card}); err != nil {
		t.Fatal(err)
	}
	g := s.Group(groupID)
	if g.Roles["jared"] != tim.RoleAdmin || g.NameCards["jared"] != card || !g.Muted["jared"].Equal(testNow.Add(2*time.Minute)) {
		t.Errorf("group = %+v", g)
	}
	zero := uint32(0)
	if err := c.ModifyGroupMemberInfo(ctx, tim.ModifyGroupMemberInfoRequest{GroupID: groupID, Member: "jared", MuteTime: &zero}); err != nil {
		t.Fatal(err)
	}
	if !s.MuteUntil(groupID, "jared").IsZero() {
		t.Error("MuteTime 0 did not unmute")
	}
	if err := c.ModifyGroupMemberInfo(ctx, tim.ModifyGroupMemberInfoRequest{GroupID: groupID, Member: "jared"}); !isRequestError(err) {
		t.Errorf("a change of nothing = %v, want a RequestError", err)
	}
	if err := c.ModifyGroupMemberInfo(ctx, tim.ModifyGroupMemberInfoRequest{GroupID: groupID, Member: "jared", Role: tim.RoleOwner}); !isRequestError(err) {
		t.Errorf("Role Owner = %v, want a RequestError", err)
	}
}

func TestBanAndUnbanInLiveGroups(t *testing.T) {
	clk := testclock.New(testNow)
	s := newServer(t, timtest.Options{Now: clk.Now, LiveGroupBan: true}, timtest.Group{ID: "@TGS#live", Type: "AVChatRoom", Members: []string{"jared", "tommy"}}, publicGroup())
	c, _ := newClient(t, s, func(cfg *tim.ClientConfig) { cfg.Now = clk.Now })
	ctx := context.Background()
	if err := c.BanGroupMember(ctx, "@TGS#live", []string{"jared"}, 3600, "spam"); err != nil {
		t.Fatal(err)
	}
	g := s.Group("@TGS#live")
	if g.IsMember("jared") || !g.Banned["jared"].Equal(testNow.Add(time.Hour)) {
		t.Errorf("after the ban: %+v", g)
	}
	if err := c.UnbanGroupMember(ctx, "@TGS#live", []string{"jared"}); err != nil {
		t.Fatal(err)
	}
	if _, banned := s.Group("@TGS#live").Banned["jared"]; banned {
		t.Error("jared is still banned")
	}
	if err := c.BanGroupMember(ctx, groupID, []string{"jared"}, 60, ""); tim.Code(err) != tim.CodeNoPermission {
		t.Errorf("a ban in a Public group = %v, want 10007", err)
	}
	if err := c.BanGroupMember(ctx, "@TGS#live", []string{"jared"}, 0, ""); !isRequestError(err) {
		t.Errorf("a ban of 0 seconds = %v, want a RequestError", err)
	}
	if err := c.BanGroupMember(ctx, "@TGS#live", []string{"jared"}, 60, strings.Repeat("x", 1001)); !isRequestError(err) {
		t.Errorf("a ban description of 1,001 bytes = %v, want a RequestError", err)
	}
	if err := c.BanGroupMember(ctx, "@TGS#live", []string{"jared"}, 60, strings.Repeat("x", 1000)); err != nil {
		t.Errorf("a ban description of 1,000 bytes: %v", err)
	}
}

// TestBanNeedsTheUltimateEditionSwitch: without the Ultimate edition and
// the console switch, ban_group_member answers 10007.
func TestBanNeedsTheUltimateEditionSwitch(t *testing.T) {
	s := newServer(t, timtest.Options{}, timtest.Group{ID: "@TGS#live", Type: "AVChatRoom", Members: []string{"jared"}})
	c, _ := newClient(t, s)
	err := c.BanGroupMember(context.Background(), "@TGS#live", []string{"jared"}, 60, "spam")
	if tim.Code(err) != tim.CodeNoPermission || tim.Classify(err) != tim.Permanent {
		t.Errorf("a ban without the switch = %v, want a permanent 10007", err)
	}
	if st := s.Group("@TGS#live"); !st.IsMember("jared") || len(st.Banned) != 0 {
		t.Errorf("a refused ban changed the group: %+v", st)
	}
}

func isRequestError(err error) bool {
	var r *tim.RequestError
	return errors.As(err, &r)
}

func accounts(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("user%03d", i)
	}
	return out
}

func TestClientRefusesRequestsPastTheDocumentedLimits(t *testing.T) {
	s := newServer(t, timtest.Options{}, publicGroup())
	c, _ := newClient(t, s)
	ctx := context.Background()
	tests := []struct {
		name  string
		call  func() error
		field string
	}{
		{"muting 501 members is refused", func() error {
			return c.ForbidSendMsg(ctx, tim.ForbidSendMsgRequest{GroupID: groupID, Members: accounts(501), MuteTime: 60})
		}, "Members_Account"},
		{"muting nobody is refused", func() error {
			return c.ForbidSendMsg(ctx, tim.ForbidSendMsgRequest{GroupID: groupID, MuteTime: 60})
		}, "Members_Account"},
		{"muting an empty account is refused", func() error {
			return c.ForbidSendMsg(ctx, tim.ForbidSendMsgRequest{GroupID: groupID, Members: []string{"jared", ""}, MuteTime: 60})
		}, "Members_Account[1]"},
		{"removing 101 members is refused", func() error {
			return c.DeleteGroupMember(ctx, tim.DeleteGroupMemberRequest{GroupID: groupID, Members: accounts(101)})
		}, "MemberToDel_Account"},
		{"adding 21 members is refused", func() error {
			_, err := c.AddGroupMember(ctx, tim.AddGroupMemberRequest{GroupID: groupID, Members: accounts(21)})
			return err
		}, "MemberList"},
		{"banning 21 members is refused", func() error {
			return c.BanGroupMember(ctx, groupID, accounts(21), 60, "")
		}, "Members_Account"},
		{"unbanning 21 members is refused", func() error {
			return c.UnbanGroupMember(ctx, groupID, accounts(21))
		}, "Members_Account"},
		{"asking for 51 groups is refused", func() error {
			_, err := c.GetGroupInfo(ctx, accounts(51))
			return err
		}, "GroupIdList"},
		{"a call without a group id is refused", func() error {
			_, err := c.GetGroupMutedAccount(ctx, "", "")
			return err
		}, "GroupId"},
		{"an empty notification is refused", func() error {
			return c.SendGroupSystemNotification(ctx, groupID, nil, "")
		}, "Content"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			var reqErr *tim.RequestError
			if !errors.As(err, &reqErr) {
				t.Fatalf("got %v, want a RequestError", err)
			}
			if reqErr.Field != tt.field {
				t.Errorf("Field = %q, want %q", reqErr.Field, tt.field)
			}
			if tim.Classify(err) != tim.Permanent {
				t.Errorf("Classify = %v", tim.Classify(err))
			}
		})
	}
	if n := len(s.Calls()); n != 0 {
		t.Errorf("%d refused requests reached the server", n)
	}
	// The limits themselves are accepted.
	if err := c.ForbidSendMsg(ctx, tim.ForbidSendMsgRequest{GroupID: groupID, Members: accounts(500), MuteTime: 60}); err != nil {
		t.Errorf("muting 500 members: %v", err)
	}
	if _, err := c.AddGroupMember(ctx, tim.AddGroupMemberRequest{GroupID: groupID, Members: accounts(20)}); err != nil {
		t.Errorf("adding 20 members: %v", err)
	}
}

func TestClientRegeneratesTheUserSigWhenTheServerSaysItExpired(t *testing.T) {
	t0 := testNow
	clientClock, serverClock := testclock.New(t0), testclock.New(t0)
	s := newServer(t, timtest.Options{Now: serverClock.Now}, publicGroup())
	c, logs := newClient(t, s, func(cfg *tim.ClientConfig) { cfg.Now = clientClock.Now })
	ctx := context.Background()
	mute := tim.ForbidSendMsgRequest{GroupID: groupID, Members: []string{"jared"}, MuteTime: 60}
	if err := c.ForbidSendMsg(ctx, mute); err != nil {
		t.Fatal(err)
	}
	// The client believes its UserSig has two days left; the server's clock
	// is ahead and says it expired.
	clientClock.Set(t0.Add(5 * 24 * time.Hour))
	serverClock.Set(t0.Add(7*24*time.Hour + time.Second))
	if err := c.ForbidSendMsg(ctx, mute); err != nil {
		t.Fatalf("the call after regenerating failed: %v", err)
	}
	calls := s.Calls()
	if got, want := codes(calls), []int{0, tim.CodeUserSigExpired, 0}; !slices.Equal(got, want) {
		t.Fatalf("codes = %v, want %v", got, want)
	}
	if calls[1].UserSig != calls[0].UserSig || calls[2].UserSig == calls[1].UserSig {
		t.Error("the UserSig was not reused and then regenerated")
	}
	if !strings.Contains(logs.String(), "regenerating") {
		t.Errorf("the regeneration was not logged:\n%s", logs)
	}
}

func TestClientRetriesAnExpiredUserSigOnlyOnce(t *testing.T) {
	// The server's clock is so far ahead that a fresh UserSig is expired
	// too: the client must give up after one retry.
	s := newServer(t, timtest.Options{Now: func() time.Time { return testNow.Add(30 * 24 * time.Hour) }}, publicGroup())
	c, _ := newClient(t, s, func(cfg *tim.ClientConfig) { cfg.Now = func() time.Time { return testNow } })
	err := c.ForbidSendMsg(context.Background(), tim.ForbidSendMsgRequest{GroupID: groupID, Members: []string{"jared"}, MuteTime: 60})
	if tim.Code(err) != tim.CodeUserSigExpired {
		t.Fatalf("got %v, want 70001", err)
	}
	if n := len(s.Calls()); n != 2 {
		t.Errorf("%d calls, want 2", n)
	}
	if tim.Classify(err) != tim.Retryable {
		t.Errorf("Classify = %v", tim.Classify(err))
	}
}

func TestClientRenewsTheUserSigBeforeItExpires(t *testing.T) {
	clk := testclock.New(testNow)
	s := newServer(t, timtest.Options{Now: clk.Now}, publicGroup())
	c, _ := newClient(t, s, func(cfg *tim.ClientConfig) { cfg.Now = clk.Now; cfg.SigTTL = 4 * time.Hour })
	ctx := context.Background()
	mute := tim.ForbidSendMsgRequest{GroupID: groupID, Members: []string{"jared"}, MuteTime: 60}
	for _, at := range []time.Duration{0, 2 * time.Hour, 3*time.Hour + time.Second} {
		clk.Set(testNow.Add(at))
		if err := c.ForbidSendMsg(ctx, mute); err != nil {
			t.Fatal(err)
		}
	}
	calls := s.Calls()
	if !slices.Equal(codes(calls), []int{0, 0, 0}) {
		t.Fatalf("codes = %v", codes(calls))
	}
	if calls[1].UserSig != calls[0].UserSig {
		t.Error("the UserSig was regenerated with half its validity left")
	}
	if calls[2].UserSig == calls[1].UserSig {
		t.Error("the UserSig was not regenerated with less than a quarter of its validity left")
	}
}

func TestFailedCallsAreClassified(t *testing.T) {
	tests := []struct {
		name   string
		inject func(s *timtest.Server)
		want   tim.Class
		code   int
	}{
		{"a rate-limit answer is rate limited", func(s *timtest.Server) { s.FailNext(tim.CommandForbidSendMsg, tim.CodeRateLimit, 1) }, tim.RateLimited, 60007},
		{"an internal error is retryable", func(s *timtest.Server) { s.FailNext("", tim.CodeInternalError, 1) }, tim.Retryable, 10002},
		{"a bad parameter is permanent", func(s *timtest.Server) { s.FailNext("", tim.CodeBadParameter, 1) }, tim.Permanent, 10004},
		{"an HTTP 500 is retryable", func(s *timtest.Server) { s.SetFaults(timtest.Faults{ServerErrorRate: 1}) }, tim.Retryable, 0},
		{"a dropped connection is retryable", func(s *timtest.Server) { s.SetFaults(timtest.Faults{DropRate: 1}) }, tim.Retryable, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, timtest.Options{}, publicGroup())
			c, _ := newClient(t, s)
			tt.inject(s)
			err := c.ForbidSendMsg(context.Background(), tim.ForbidSendMsgRequest{GroupID: groupID, Members: []string{"jared"}, MuteTime: 60})
			if err == nil {
				t.Fatal("the call succeeded")
			}
			if got := tim.Classify(err); got != tt.want {
				t.Errorf("Classify(%v) = %v, want %v", err, got, tt.want)
			}
			if got := tim.Code(err); got != tt.code {
				t.Errorf("Code = %d, want %d", got, tt.code)
			}
			if !strings.Contains(err.Error(), tim.CommandForbidSendMsg) {
				t.Errorf("%q does not name the command", err)
			}
			assertNoSecrets(t, "the error", err.Error(), timtest.DefaultSecretKey, recordedSigs(s))
			if !s.MuteUntil(groupID, "jared").IsZero() {
				t.Error("a failed call changed the state")
			}
		})
	}
}

// TestFailuresSayWhetherTheCallMayHaveTakenEffect: a call the server
// answered with an error code was not carried out; one that was sent but
// got no answer may have been.
func TestFailuresSayWhetherTheCallMayHaveTakenEffect(t *testing.T) {
	notice := func(c *tim.Client) error {
		return c.SendGroupSystemNotification(context.Background(), groupID, []string{"jared"}, "stop")
	}
	t.Run("an answer with an error code did not take effect", func(t *testing.T) {
		s := newServer(t, timtest.Options{}, publicGroup())
		c, _ := newClient(t, s)
		s.FailNext("", tim.CodeInternalError, 1)
		if err := notice(c); err == nil || tim.MayHaveTakenEffect(err) {
			t.Errorf("MayHaveTakenEffect(%v) = true", err)
		}
	})
	t.Run("an answer that came after the timeout may have taken effect", func(t *testing.T) {
		s := newServer(t, timtest.Options{}, publicGroup())
		c, _ := newClient(t, s, func(cfg *tim.ClientConfig) { cfg.Timeout = 200 * time.Millisecond })
		s.AnswerLate("", time.Hour, 1)
		err := notice(c)
		if err == nil || !tim.MayHaveTakenEffect(err) || tim.Classify(err) != tim.Retryable {
			t.Errorf("MayHaveTakenEffect(%v) = false or not retryable", err)
		}
		if n := len(s.Group(groupID).Notifications); n != 1 {
			t.Errorf("%d notifications: the late call was carried out and the test expects it", n)
		}
	})
	t.Run("a connection dropped after the request may have taken effect", func(t *testing.T) {
		s := newServer(t, timtest.Options{}, publicGroup())
		c, _ := newClient(t, s)
		s.SetFaults(timtest.Faults{DropRate: 1})
		if err := notice(c); err == nil || !tim.MayHaveTakenEffect(err) {
			t.Errorf("MayHaveTakenEffect(%v) = false", err)
		}
	})
	t.Run("an HTTP 500 without an envelope may have taken effect", func(t *testing.T) {
		s := newServer(t, timtest.Options{}, publicGroup())
		c, _ := newClient(t, s)
		s.SetFaults(timtest.Faults{ServerErrorRate: 1})
		if err := notice(c); err == nil || !tim.MayHaveTakenEffect(err) {
			t.Errorf("MayHaveTakenEffect(%v) = false", err)
		}
	})
	t.Run("a server that cannot be reached did not take effect", func(t *testing.T) {
		s := newServer(t, timtest.Options{}, publicGroup())
		c, _ := newClient(t, s)
		s.Close()
		if err := notice(c); err == nil || tim.MayHaveTakenEffect(err) {
			t.Errorf("MayHaveTakenEffect(%v) = true", err)
		}
	})
	t.Run("a limiter refusal did not take effect", func(t *testing.T) {
		s := newServer(t, timtest.Options{}, publicGroup())
		c, _ := newClient(t, s, func(cfg *tim.ClientConfig) { cfg.Limiter = &countingLimiter{err: errors.New("no budget")} })
		if err := notice(c); err == nil || tim.MayHaveTakenEffect(err) {
			t.Errorf("MayHaveTakenEffect(%v) = true", err)
		}
	})
	if tim.MayHaveTakenEffect(nil) || tim.MayHaveTakenEffect(&tim.RequestError{}) {
		t.Error("nil or a refused request may have taken effect")
	}
}

func TestSlowServerEndsInADeadlineNotAHang(t *testing.T) {
	s := newServer(t, timtest.Options{}, publicGroup())
	s.SetFaults(timtest.Faults{SlowRate: 1, SlowDelay: 10 * time.Second})
	c, _ := newClient(t, s, func(cfg *tim.ClientConfig) { cfg.Timeout = 100 * time.Millisecond })
	start := time.Now()
	err := c.ForbidSendMsg(context.Background(), tim.ForbidSendMsgRequest{GroupID: groupID, Members: []string{"jared"}, MuteTime: 60})
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Fatalf("the call took %v", elapsed)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want a deadline error", err)
	}
	if tim.Classify(err) != tim.Retryable {
		t.Errorf("Classify = %v, want retryable", tim.Classify(err))
	}
	assertNoSecrets(t, "the error", err.Error(), timtest.DefaultSecretKey, recordedSigs(s))
}

func TestCallerContextEndingIsCanceled(t *testing.T) {
	s := newServer(t, timtest.Options{}, publicGroup())
	s.SetFaults(timtest.Faults{SlowRate: 1, SlowDelay: 10 * time.Second})
	c, _ := newClient(t, s)
	mute := tim.ForbidSendMsgRequest{GroupID: groupID, Members: []string{"jared"}, MuteTime: 60}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := c.ForbidSendMsg(ctx, mute)
	if tim.Classify(err) != tim.Canceled {
		t.Errorf("the caller's deadline passing: Classify(%v) = %v, want canceled", err, tim.Classify(err))
	}
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	err = c.ForbidSendMsg(ctx, mute)
	if tim.Classify(err) != tim.Canceled || !errors.Is(err, context.Canceled) {
		t.Errorf("a canceled context: Classify(%v) = %v, want canceled", err, tim.Classify(err))
	}
}

func TestClientHandlesOddAnswers(t *testing.T) {
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("the client followed a redirect")
	}))
	defer other.Close()
	tests := []struct {
		name    string
		handler http.HandlerFunc
		check   func(t *testing.T, err error)
	}{
		{"a body over the bound is refused", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `{"ActionStatus":"OK","ErrorCode":0,"Pad":"`+strings.Repeat("a", 2<<20)+`"}`)
		}, func(t *testing.T, err error) {
			if !errors.Is(err, tim.ErrResponseTooLarge) || tim.Classify(err) != tim.Permanent {
				t.Errorf("got %v (%v)", err, tim.Classify(err))
			}
		}},
		{"an envelope on a 503 keeps its code", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"ActionStatus":"FAIL","ErrorCode":10002,"ErrorInfo":"busy"}`)
		}, func(t *testing.T, err error) {
			var apiErr *tim.APIError
			if !errors.As(err, &apiErr) || apiErr.Code != 10002 || apiErr.HTTPStatus != 503 || tim.Classify(err) != tim.Retryable {
				t.Errorf("got %#v", err)
			}
		}},
		{"a 200 that is not JSON is retryable", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "<html>gateway</html>")
		}, func(t *testing.T, err error) {
			var tErr *tim.TransportError
			if !errors.As(err, &tErr) || tErr.Op != tim.OpDecode || tim.Classify(err) != tim.Retryable {
				t.Errorf("got %v", err)
			}
		}},
		{"FAIL without a code is an error", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `{"ActionStatus":"FAIL","ErrorCode":0,"ErrorInfo":"odd"}`)
		}, func(t *testing.T, err error) {
			var apiErr *tim.APIError
			if !errors.As(err, &apiErr) || apiErr.Info != "odd" {
				t.Errorf("got %v", err)
			}
		}},
		{"an ErrorInfo that quotes the UserSig is redacted", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, `{"ActionStatus":"FAIL","ErrorCode":70003,"ErrorInfo":"bad sig %s"}`, r.URL.Query().Get("usersig"))
		}, func(t *testing.T, err error) {
			var apiErr *tim.APIError
			if !errors.As(err, &apiErr) || apiErr.Info != "bad sig [redacted]" {
				t.Errorf("got %v", err)
			}
		}},
		{"a redirect is not followed", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, other.URL+r.URL.RequestURI(), http.StatusTemporaryRedirect)
		}, func(t *testing.T, err error) {
			var apiErr *tim.APIError
			if !errors.As(err, &apiErr) || apiErr.HTTPStatus != http.StatusTemporaryRedirect || tim.Classify(err) != tim.Permanent {
				t.Errorf("got %v", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			c, err := tim.NewClient(tim.ClientConfig{BaseURL: srv.URL, SDKAppID: testAppID, Admin: testAdmin, SecretKey: testKey, MaxResponseBytes: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			err = c.ForbidSendMsg(context.Background(), tim.ForbidSendMsgRequest{GroupID: groupID, Members: []string{"jared"}, MuteTime: 60})
			if err == nil {
				t.Fatal("the call succeeded")
			}
			tt.check(t, err)
			if strings.Contains(err.Error(), "usersig") {
				t.Errorf("%q mentions the usersig", err)
			}
		})
	}
}

func TestGetGroupInfoReadsEntriesBesideATopLevelError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"ActionStatus":"FAIL","ErrorCode":10015,"ErrorInfo":"","GroupInfo":[{"GroupId":"@TGS#x","ErrorCode":10015,"ErrorInfo":"invalid"}]}`)
	}))
	defer srv.Close()
	c, err := tim.NewClient(tim.ClientConfig{BaseURL: srv.URL, SDKAppID: testAppID, Admin: testAdmin, SecretKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	infos, err := c.GetGroupInfo(context.Background(), []string{"@TGS#x"})
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || tim.Code(infos[0].Err()) != tim.CodeBadGroupID {
		t.Errorf("GetGroupInfo = %+v", infos)
	}
}

type countingLimiter struct {
	n   atomic.Int32
	err error
}

func (l *countingLimiter) Wait(ctx context.Context) error {
	l.n.Add(1)
	return l.err
}

func TestClientWaitsOnTheLimiterBeforeEveryRequest(t *testing.T) {
	s := newServer(t, timtest.Options{}, publicGroup())
	lim := &countingLimiter{}
	c, _ := newClient(t, s, func(cfg *tim.ClientConfig) { cfg.Limiter = lim })
	ctx := context.Background()
	mute := tim.ForbidSendMsgRequest{GroupID: groupID, Members: []string{"jared"}, MuteTime: 60}
	if err := c.ForbidSendMsg(ctx, mute); err != nil {
		t.Fatal(err)
	}
	s.FailNext("", tim.CodeUserSigExpired, 1)
	if err := c.ForbidSendMsg(ctx, mute); err != nil {
		t.Fatal(err)
	}
	if got := lim.n.Load(); got != 3 {
		t.Errorf("Wait was called %d times for 3 requests", got)
	}

	lim.err = errors.New("budget exhausted")
	err := c.ForbidSendMsg(ctx, mute)
	if tim.Classify(err) != tim.RateLimited {
		t.Errorf("a limiter refusal: Classify(%v) = %v, want rate limited", err, tim.Classify(err))
	}
	if n := len(s.Calls()); n != 3 {
		t.Errorf("a refused call reached the server (%d calls)", n)
	}
}

func TestConcurrentCallsShareOneUserSig(t *testing.T) {
	s := newServer(t, timtest.Options{}, timtest.Group{ID: groupID, Type: "Public", Owner: "leckie", Members: accounts(64)})
	c, _ := newClient(t, s)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for _, acc := range accounts(64) {
		wg.Go(func() {
			errs <- c.ForbidSendMsg(context.Background(), tim.ForbidSendMsgRequest{GroupID: groupID, Members: []string{acc}, MuteTime: 60})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := len(s.Group(groupID).Muted); n != 64 {
		t.Errorf("%d members muted, want 64", n)
	}
	sigs := map[string]bool{}
	for _, call := range s.Calls() {
		sigs[call.UserSig] = true
	}
	if len(sigs) != 1 {
		t.Errorf("%d different UserSigs in 64 concurrent calls", len(sigs))
	}
}

func TestTheLogNeverHoldsSecrets(t *testing.T) {
	s := newServer(t, timtest.Options{}, publicGroup())
	c, logs := newClient(t, s)
	ctx := context.Background()
	mute := tim.ForbidSendMsgRequest{GroupID: groupID, Members: []string{"jared"}, MuteTime: 60}
	c.ForbidSendMsg(ctx, mute)
	s.FailNext("", tim.CodeUserSigExpired, 1)
	c.ForbidSendMsg(ctx, mute)
	s.FailNext("", tim.CodeBadParameter, 1)
	c.ForbidSendMsg(ctx, mute)
	s.SetFaults(timtest.Faults{DropRate: 1})
	c.ForbidSendMsg(ctx, mute)
	if !strings.Contains(logs.String(), "forbid_send_msg") {
		t.Fatalf("nothing was logged:\n%s", logs)
	}
	assertNoSecrets(t, "the log", logs.String(), timtest.DefaultSecretKey, recordedSigs(s))
}
