package actions

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/internal/redistest"
	"github.com/timguard/timguard/rolecache"
	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/store/memory"
	"github.com/timguard/timguard/store/redis"
	"github.com/timguard/timguard/tim"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// storeKind builds a fresh store for one test.
type storeKind struct {
	name string
	open func(t testing.TB) (store.Store, func(t testing.TB) store.Store)
}

// storeKinds are the stores the executor is tested against: the memory
// store and real Redis. The second function opens another handle on the
// same state (for Redis, a second client, as a second replica would have).
func storeKinds() []storeKind {
	return []storeKind{
		{"memory", func(t testing.TB) (store.Store, func(testing.TB) store.Store) {
			s := memory.New(memory.Options{})
			return s, func(testing.TB) store.Store { return s }
		}},
		{"redis", func(t testing.TB) (store.Store, func(testing.TB) store.Store) {
			url := redistest.URL(t)
			prefix := redistest.Prefix(t)
			redistest.CleanupPrefix(t, url, prefix)
			open := func(t testing.TB) store.Store {
				s, err := redis.New(context.Background(), redis.Options{URL: url, KeyPrefix: prefix, Timeout: 2 * time.Second})
				if err != nil {
					t.Fatalf("open redis store: %v", err)
				}
				t.Cleanup(func() { _ = s.Close() })
				return s
			}
			return open(t), open
		}},
	}
}

// auditLog collects audit lines.
type auditLog struct {
	mu    sync.Mutex
	lines [][]byte
}

func (l *auditLog) WriteLine(line []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, bytes.Clone(line))
}

func (l *auditLog) records(t testing.TB) []audit.Record {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]audit.Record, 0, len(l.lines))
	for _, line := range l.lines {
		var r audit.Record
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("audit line %s: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

// byAction maps action id to its records, in order.
func (l *auditLog) byAction(t testing.TB) map[string][]audit.Record {
	t.Helper()
	out := map[string][]audit.Record{}
	for _, r := range l.records(t) {
		if r.Kind != audit.KindAction || len(r.Actions) != 1 {
			t.Fatalf("record %+v is not one action record", r)
		}
		out[r.Actions[0].ID] = append(out[r.Actions[0].ID], r)
	}
	return out
}

// results lists each action's results in order, e.g. "retry,retry,done".
func (l *auditLog) results(t testing.TB) map[string]string {
	t.Helper()
	out := map[string]string{}
	for id, rs := range l.byAction(t) {
		var res []string
		for _, r := range rs {
			res = append(res, r.Result)
		}
		out[id] = strings.Join(res, ",")
	}
	return out
}

// fakeCall is one call the fake client received.
type fakeCall struct {
	Command string
	Group   string
	Members []string
	Seconds uint32
	Text    string
	At      time.Time
}

func (c fakeCall) String() string {
	return fmt.Sprintf("%s %s %v %d %q", c.Command, c.Group, c.Members, c.Seconds, c.Text)
}

// fakeClient is a hand-written Client and rolecache.Lister that records what it
// was asked and answers as told. Seconds of a send_group_msg call is its
// Random; Members its mentions.
type fakeClient struct {
	mu     sync.Mutex
	calls  []fakeCall
	groups map[string]tim.GroupInfo        // get_group_info answers
	roles  map[string]map[string]string    // group -> account -> tim role
	fail   func(c fakeCall) error          // nil: every call succeeds
	gate   func(ctx context.Context) error // waited on before each call, if set
	added  func(group, user string) int    // add_group_member Result; default 1
	onCall func(c fakeCall)                // hears about each call
}

func newFakeClient() *fakeClient {
	return &fakeClient{groups: map[string]tim.GroupInfo{}, roles: map[string]map[string]string{}}
}

func (f *fakeClient) do(ctx context.Context, c fakeCall) error {
	f.mu.Lock()
	gate := f.gate
	f.mu.Unlock()
	if gate != nil {
		if err := gate(ctx); err != nil {
			return &tim.TransportError{Command: c.Command, Op: tim.OpSend, Err: err, CallerDone: ctx.Err() != nil}
		}
	}
	c.At = time.Now()
	f.mu.Lock()
	f.calls = append(f.calls, c)
	fail, on := f.fail, f.onCall
	f.mu.Unlock()
	if on != nil {
		on(c)
	}
	if fail != nil {
		return fail(c)
	}
	return nil
}

func (f *fakeClient) Calls() []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeClient) CallsTo(command string) []fakeCall {
	var out []fakeCall
	for _, c := range f.Calls() {
		if c.Command == command {
			out = append(out, c)
		}
	}
	return out
}

func (f *fakeClient) ForbidSendMsg(ctx context.Context, req tim.ForbidSendMsgRequest) error {
	return f.do(ctx, fakeCall{Command: tim.CommandForbidSendMsg, Group: req.GroupID, Members: slices.Clone(req.Members), Seconds: req.MuteTime})
}

func (f *fakeClient) DeleteGroupMember(ctx context.Context, req tim.DeleteGroupMemberRequest) error {
	return f.do(ctx, fakeCall{Command: tim.CommandDeleteGroupMember, Group: req.GroupID, Members: slices.Clone(req.Members), Text: req.Reason})
}

func (f *fakeClient) AddGroupMember(ctx context.Context, req tim.AddGroupMemberRequest) ([]tim.AddMemberResult, error) {
	if err := f.do(ctx, fakeCall{Command: tim.CommandAddGroupMember, Group: req.GroupID, Members: slices.Clone(req.Members)}); err != nil {
		return nil, err
	}
	out := make([]tim.AddMemberResult, len(req.Members))
	for i, m := range req.Members {
		out[i] = tim.AddMemberResult{Account: m, Result: tim.AddResultAdded}
		if f.added != nil {
			out[i].Result = f.added(req.GroupID, m)
		}
	}
	return out, nil
}

func (f *fakeClient) BanGroupMember(ctx context.Context, group string, members []string, seconds uint32, desc string) error {
	return f.do(ctx, fakeCall{Command: tim.CommandBanGroupMember, Group: group, Members: slices.Clone(members), Seconds: seconds, Text: desc})
}

func (f *fakeClient) UnbanGroupMember(ctx context.Context, group string, members []string) error {
	return f.do(ctx, fakeCall{Command: tim.CommandUnbanGroupMember, Group: group, Members: slices.Clone(members)})
}

func (f *fakeClient) SendGroupSystemNotification(ctx context.Context, group string, to []string, content string) error {
	return f.do(ctx, fakeCall{Command: tim.CommandSendGroupSystemNotification, Group: group, Members: slices.Clone(to), Text: content})
}

func (f *fakeClient) SendGroupMsg(ctx context.Context, req tim.SendGroupMsgRequest) (tim.SendGroupMsgResult, error) {
	var text string
	if len(req.MsgBody) > 0 {
		text = req.MsgBody[0].MsgContent.Text
	}
	var at []string
	for _, a := range req.GroupAtInfo {
		at = append(at, a.Account)
	}
	return tim.SendGroupMsgResult{}, f.do(ctx, fakeCall{Command: tim.CommandSendGroupMsg, Group: req.GroupID, Members: at, Seconds: req.Random, Text: text})
}

func (f *fakeClient) ModifyGroupBaseInfo(ctx context.Context, req tim.ModifyGroupBaseInfoRequest) error {
	return f.do(ctx, fakeCall{Command: tim.CommandModifyGroupBaseInfo, Group: req.GroupID, Text: req.MuteAllMember})
}

func (f *fakeClient) GetGroupInfo(ctx context.Context, ids []string) ([]tim.GroupInfo, error) {
	if err := f.do(ctx, fakeCall{Command: tim.CommandGetGroupInfo, Members: slices.Clone(ids)}); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []tim.GroupInfo
	for _, id := range ids {
		gi, ok := f.groups[id]
		if !ok {
			gi = tim.GroupInfo{GroupID: id, ErrorCode: tim.CodeBadGroupID, ErrorInfo: "no such group"}
		}
		gi.GroupID = id
		out = append(out, gi)
	}
	return out, nil
}

// GetGroupMemberInfo refuses what the IM server refuses (like timtest):
// AVChatRoom groups, and Community groups listed without Next.
func (f *fakeClient) GetGroupMemberInfo(ctx context.Context, req tim.GetGroupMemberInfoRequest) (tim.GroupMembers, error) {
	if err := f.do(ctx, fakeCall{Command: tim.CommandGetGroupMemberInfo, Group: req.GroupID, Members: slices.Clone(req.RoleFilter)}); err != nil {
		return tim.GroupMembers{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch typ := f.groups[req.GroupID].Type; {
	case typ == tim.GroupAVChatRoom:
		return tim.GroupMembers{}, apiErr(tim.CommandGetGroupMemberInfo, tim.CodeNoPermission)
	case typ == tim.GroupCommunity && !req.Community:
		return tim.GroupMembers{}, apiErr(tim.CommandGetGroupMemberInfo, tim.CodeBadParameter)
	}
	var out tim.GroupMembers
	for acc, role := range f.roles[req.GroupID] {
		if len(req.RoleFilter) == 0 || slices.Contains(req.RoleFilter, role) {
			out.Members = append(out.Members, tim.MemberInfo{Account: acc, Role: role})
		}
	}
	return out, nil
}

// apiErr is an IM error answer.
func apiErr(command string, code int) error {
	return &tim.APIError{Service: tim.ServiceGroup, Command: command, Code: code, Info: "test", HTTPStatus: 200}
}

// mute, kick ... build actions for tests.
func act(id, kind, group, typ, user string, seconds int64, text string) store.Action {
	return store.Action{ID: id, Kind: kind, Group: group, GroupType: typ, User: user, Seconds: seconds, Text: text,
		Rule: "test-rule", EventID: "ev-" + id}
}

// enqueue adds actions created at now.
func enqueue(t testing.TB, s store.Outbox, now time.Time, as ...store.Action) {
	t.Helper()
	for i := range as {
		if as[i].Created.IsZero() {
			as[i].Created = now
		}
	}
	if err := s.Enqueue(context.Background(), as...); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
}

// newTestExecutor builds an executor on s and client with quick settings
// for tests; change cfg before use through mod.
func newTestExecutor(t testing.TB, s store.Store, client Client, log *auditLog, mod func(*Config)) *Executor {
	t.Helper()
	cfg := Config{
		Store: s, Audit: log, AppAdmin: "administrator",
		Lease: 10 * time.Second, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		PollInterval: 10 * time.Millisecond, Linger: 5 * time.Millisecond,
	}
	if client != nil {
		cfg.Client = client
		if ml, ok := client.(rolecache.Lister); ok {
			f := rolecache.New(rolecache.Config{Client: ml, Store: s})
			t.Cleanup(f.Close)
			cfg.Roles = f
		}
	}
	if mod != nil {
		mod(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatalf("new executor: %v", err)
	}
	return e
}

// drain runs RunOnce until a round claims nothing.
func drain(t testing.TB, e *Executor) {
	t.Helper()
	for range 1000 {
		n, err := e.RunOnce(context.Background())
		if err != nil {
			t.Fatalf("run once: %v", err)
		}
		if n == 0 {
			return
		}
	}
	t.Fatal("the outbox never emptied")
}

// members returns n member ids "prefix0".."prefix{n-1}".
func members(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%03d", prefix, i)
	}
	return out
}
