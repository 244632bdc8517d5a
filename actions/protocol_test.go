package actions

// Tests of how the executor and the role filler follow Tencent's documented
// behaviour per group type, against the fake IM server (which refuses what
// the real one refuses) or the hand-written client.

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/internal/testclock"
	"github.com/timguard/timguard/rolecache"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/store/memory"
	"github.com/timguard/timguard/tim"
	"github.com/timguard/timguard/tim/timtest"
)

// TestRoleFillerAsksEachGroupTypeWhatItAnswers: a live group's owner comes
// from get_group_info (no member lookup, which the server refuses there); a
// Community group is listed with Next; a group of unknown type is looked up
// first.
func TestRoleFillerAsksEachGroupTypeWhatItAnswers(t *testing.T) {
	admins := members("admin", 150) // two pages of a Community listing
	tests := []struct {
		name     string
		group    timtest.Group
		typ      string // what the caller says; "" unknown
		want     map[string]string
		commands []string
	}{
		{
			name:     "a live group's owner comes from get_group_info",
			group:    timtest.Group{ID: "@TGS#live", Type: "AVChatRoom", Owner: "host", Members: []string{"carol"}},
			typ:      tim.GroupAVChatRoom,
			want:     map[string]string{"host": "owner"},
			commands: []string{tim.CommandGetGroupInfo},
		},
		{
			name:     "a live group given by its SDK name is a live group",
			group:    timtest.Group{ID: "@TGS#live", Type: "AVChatRoom", Owner: "host"},
			typ:      "Live",
			want:     map[string]string{"host": "owner"},
			commands: []string{tim.CommandGetGroupInfo},
		},
		{
			name:     "a live group of unknown type is looked up once",
			group:    timtest.Group{ID: "@TGS#live", Type: "AVChatRoom", Owner: "host"},
			want:     map[string]string{"host": "owner"},
			commands: []string{tim.CommandGetGroupInfo},
		},
		{
			name:     "a Community group is listed page by page with Next",
			group:    timtest.Group{ID: "@TGS#community", Type: "Community", Owner: "olga", Admins: admins, Members: []string{"carol"}},
			typ:      tim.GroupCommunity,
			want:     roleMap("olga", admins),
			commands: []string{tim.CommandGetGroupMemberInfo, tim.CommandGetGroupMemberInfo},
		},
		{
			name:     "a Community group of unknown type is looked up, then listed with Next",
			group:    timtest.Group{ID: "@TGS#community", Type: "Community", Owner: "olga", Admins: []string{"adam"}},
			want:     map[string]string{"olga": "owner", "adam": "admin"},
			commands: []string{tim.CommandGetGroupInfo, tim.CommandGetGroupMemberInfo},
		},
		{
			name:     "a Public group is listed in one call",
			group:    timtest.Group{ID: "@TGS#public", Type: "Public", Owner: "olga", Admins: admins, Members: []string{"carol"}},
			typ:      tim.GroupPublic,
			want:     roleMap("olga", admins),
			commands: []string{tim.CommandGetGroupMemberInfo},
		},
		{
			name:     "a Work group is listed in one call",
			group:    timtest.Group{ID: "@TGS#work", Type: "Work", Owner: "olga", Members: []string{"carol"}},
			typ:      "Work",
			want:     map[string]string{"olga": "owner"},
			commands: []string{tim.CommandGetGroupMemberInfo},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := memory.New(memory.Options{})
			rig := newIMRig(t, 1000, timtest.Options{})
			rig.im.AddGroup(tt.group)
			f := rolecache.New(rolecache.Config{Client: rig.client(t, s), Store: s})
			t.Cleanup(f.Close)
			got, err := f.FillRoles(t.Context(), tt.group.ID, tt.typ)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("roles %v, want %v", got, tt.want)
			}
			var commands []string
			for _, c := range rig.im.Calls() {
				commands = append(commands, c.Command)
				if !c.Effective() {
					t.Errorf("the IM server refused %s: %d", c.Command, c.Code)
				}
			}
			if !slices.Equal(commands, tt.commands) {
				t.Errorf("calls %v, want %v", commands, tt.commands)
			}
			// The executor's lookups read the same cache: no further call.
			roles, err := f.GroupRoles(t.Context(), tt.group.ID, tt.typ, []string{tt.group.Owner, "carol"})
			if err != nil || roles[tt.group.Owner] != "owner" || roles["carol"] != "member" {
				t.Errorf("GroupRoles = %v, %v", roles, err)
			}
			if n := len(rig.im.Calls()); n != len(tt.commands) {
				t.Errorf("%d calls after the cache was filled, want %d", n, len(tt.commands))
			}
		})
	}
}

func roleMap(owner string, admins []string) map[string]string {
	out := map[string]string{owner: "owner"}
	for _, a := range admins {
		out[a] = "admin"
	}
	return out
}

// TestANoticeWhoseAnswerWasLostIsNotSentAgain: the IM server carried the
// notice out but answered after the client gave up. A notice has no key by
// which the server could drop a repeat, so it is dead-lettered with the
// reason instead of being sent twice.
func TestANoticeWhoseAnswerWasLostIsNotSentAgain(t *testing.T) {
	s := memory.New(memory.Options{})
	rig := newIMRig(t, 1000, timtest.Options{})
	rig.im.AddGroup(timtest.Group{ID: grp, Type: "Public", Owner: "olga", Members: []string{"carol"}})
	rig.im.AnswerLate(tim.CommandSendGroupSystemNotification, time.Hour, 1)
	log := &auditLog{}
	e := newTestExecutor(t, s, rig.clientWithTimeout(t, s, 300*time.Millisecond), log, nil)
	enqueue(t, s, time.Now(), act("w", string(rules.ActWarn), grp, tim.GroupPublic, "carol", 0, "Please stay on topic."))
	drain(t, e)
	if n := len(rig.im.Group(grp).Notifications); n != 1 {
		t.Errorf("%d notices delivered, want the one whose answer was lost", n)
	}
	if n := len(rig.im.CallsTo(tim.CommandSendGroupSystemNotification)); n != 1 {
		t.Errorf("%d send_group_system_notification calls, want 1", n)
	}
	recs := log.byAction(t)["w"]
	if len(recs) != 1 || recs[0].Result != audit.ResultDead || !strings.Contains(recs[0].Error, "may have delivered the notice") {
		t.Errorf("audit %+v, want one dead record saying the notice may have been delivered", recs)
	}
}

// TestAMessageWhoseAnswerWasLostIsRetriedAndDroppedAsARepeat: a warning to
// a member of a live group is a message; its Random is the same on every
// attempt, so the retry of a call whose answer was lost is dropped by the
// IM server and the member is told once.
func TestAMessageWhoseAnswerWasLostIsRetriedAndDroppedAsARepeat(t *testing.T) {
	s := memory.New(memory.Options{})
	rig := newIMRig(t, 1000, timtest.Options{})
	rig.im.AddGroup(timtest.Group{ID: live, Type: "AVChatRoom", Owner: "host", Members: []string{"carol"}})
	rig.im.AnswerLate(tim.CommandSendGroupMsg, time.Hour, 1)
	log := &auditLog{}
	e := newTestExecutor(t, s, rig.clientWithTimeout(t, s, 300*time.Millisecond), log, nil)
	enqueue(t, s, time.Now(), act("w", string(rules.ActWarn), live, tim.GroupAVChatRoom, "carol", 0, "Please stay on topic."))
	drainAll(t, s, e, 10*time.Second)
	msgs := rig.im.Group(live).Messages
	if len(msgs) != 1 || !slices.Equal(msgs[0].AtAccounts, []string{"carol"}) || msgs[0].Random != actionRandom("w") {
		t.Errorf("messages %+v, want one mentioning carol", msgs)
	}
	calls := rig.im.CallsTo(tim.CommandSendGroupMsg)
	if len(calls) != 2 {
		t.Fatalf("%d send_group_msg calls, want the one answered late and its retry", len(calls))
	}
	if string(calls[0].Body) != string(calls[1].Body) {
		t.Errorf("the retry differs from the first call:\n%s\n%s", calls[0].Body, calls[1].Body)
	}
	if got := log.results(t)["w"]; got != "retry,done" {
		t.Errorf("results %s, want retry,done", got)
	}
	if n := len(rig.im.CallsTo(tim.CommandGetGroupMemberInfo)); n != 0 {
		t.Errorf("%d member lookups in a live group", n)
	}
}

// TestAMessageIsNotRetriedPastTheRepeatWindow: once the IM server would no
// longer recognise a repeat (5 minutes), a message an earlier attempt may
// have delivered is not sent again.
func TestAMessageIsNotRetriedPastTheRepeatWindow(t *testing.T) {
	clk := testclock.New(t0)
	s := memory.New(memory.Options{Now: clk.Now})
	fc := newFakeClient()
	fc.groups[live] = tim.GroupInfo{Type: tim.GroupAVChatRoom, Owner: "host"}
	lost := &tim.TransportError{Command: tim.CommandSendGroupMsg, Op: tim.OpRead, Err: errors.New("connection reset"), Sent: true}
	fc.fail = func(c fakeCall) error {
		if c.Command == tim.CommandSendGroupMsg {
			return lost
		}
		return nil
	}
	log := &auditLog{}
	e := newTestExecutor(t, s, fc, log, func(c *Config) {
		c.Now, c.MinBackoff, c.MaxBackoff = clk.Now, 2*time.Minute, 2*time.Minute
	})
	enqueue(t, s, t0, act("w", string(rules.ActWarn), live, tim.GroupAVChatRoom, "carol", 0, "Stop."))
	for range 3 {
		if _, err := e.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		clk.Add(3 * time.Minute)
	}
	if n := len(fc.CallsTo(tim.CommandSendGroupMsg)); n != 2 {
		t.Errorf("%d send_group_msg calls, want 2 (at 0 and 3 minutes; none at 6)", n)
	}
	got := log.byAction(t)["w"]
	if len(got) != 3 || got[2].Result != audit.ResultDead || !strings.Contains(got[2].Error, "only within 5 minutes") {
		t.Errorf("audit %+v, want retry, retry, dead past the window", got)
	}
}

// drainAll runs e until the outbox is empty, waiting for retries that are
// due later.
func drainAll(t *testing.T, s store.Outbox, e *Executor, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if _, err := e.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		st, err := s.Stats(context.Background(), time.Now())
		if err == nil && st.Ready == 0 && st.Claimed == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("the outbox was not empty after %v", within)
}
