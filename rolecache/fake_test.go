package rolecache

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/timguard/timguard/tim"
)

const grp = "@TGS#1group"

// fakeCall is one call the fake client received.
type fakeCall struct {
	Command string
	Group   string
	Members []string
	At      time.Time
}

// fakeClient is a hand-written Lister that records what it was asked and
// answers as told.
type fakeClient struct {
	mu     sync.Mutex
	calls  []fakeCall
	groups map[string]tim.GroupInfo        // get_group_info answers
	roles  map[string]map[string]string    // group -> account -> tim role
	fail   func(c fakeCall) error          // nil: every call succeeds
	gate   func(ctx context.Context) error // waited on before each call, if set
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
	fail := f.fail
	f.mu.Unlock()
	if fail != nil {
		return fail(c)
	}
	return nil
}

func (f *fakeClient) CallsTo(command string) []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeCall
	for _, c := range f.calls {
		if c.Command == command {
			out = append(out, c)
		}
	}
	return out
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
