package actions

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/timguard/timguard/internal/testclock"
	mutelife "github.com/timguard/timguard/mutes"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/store/memory"
	"github.com/timguard/timguard/tim"
)

// step is one moment of a follow-up scenario: at offset from the start,
// enqueue the actions, or lift a mute the way reconciliation does, then run
// the executor until nothing is due.
type step struct {
	at      time.Duration
	enqueue []store.Action
	// liftedOutside marks the recorded mute of this user ("-" for the whole
	// group) as lifted early and clears it, as reconciliation does when a
	// human lifted it at the IM server.
	liftedOutside string
}

func TestDelayedEndsRespectLaterAndLiftedMutes(t *testing.T) {
	everyone := []string{store.RoleOwner, store.RoleAdmin, string(rules.RoleAppAdmin)}
	mute := func(id, user string, seconds int64, announce string) store.Action {
		a := act(id, string(rules.ActMute), grp, tim.GroupPublic, user, seconds, announce)
		a.Roles = everyone
		return a
	}
	muteGroup := func(id string, seconds int64, announce string) store.Action {
		return act(id, string(rules.ActMuteGroup), grp, tim.GroupPublic, "", seconds, announce)
	}
	tests := []struct {
		name    string
		steps   []step
		calls   []string // modify_group_base_info and notices, in order
		mutes   []string // forbid_send_msg calls as "members seconds", checked when set
		results map[string]string
		reason  map[string]string // action id -> part of the audit error
	}{
		{
			name: "a second group mute that ends later skips the first one's unmute",
			steps: []step{
				{at: 0, enqueue: []store.Action{muteGroup("raid1", 900, "")}},
				{at: 5 * time.Minute, enqueue: []store.Action{muteGroup("raid2", 900, "")}},
				{at: 15 * time.Minute},
				{at: 20 * time.Minute},
			},
			calls:   []string{"modify_group_base_info On", "modify_group_base_info On", "modify_group_base_info Off"},
			results: map[string]string{"raid1": "done", "raid2": "done", "raid1/end": "skipped", "raid2/end": "done"},
			reason:  map[string]string{"raid1/end": "a later group mute is in force until"},
		},
		{
			name: "two group mutes of one join wave end with one unmute and one announcement",
			steps: []step{
				{at: 0, enqueue: []store.Action{muteGroup("wave/1", 900, "Talk again."), muteGroup("wave/2", 900, "Talk again.")}},
				{at: 15 * time.Minute},
			},
			calls: []string{"modify_group_base_info On", "modify_group_base_info Off", "send_group_system_notification Talk again."},
			results: map[string]string{"wave/1": "done", "wave/2": "done", "wave/1/end": "done", "wave/2/end": "skipped",
				"wave/1/end/announce": "done"},
			reason: map[string]string{"wave/2/end": "another delayed unmute ends the same group mute"},
		},
		{
			name: "group mutes a second apart whose unmutes are claimed together end with one unmute",
			steps: []step{
				{at: 0, enqueue: []store.Action{muteGroup("wave/1", 900, "Talk again.")}},
				{at: time.Second, enqueue: []store.Action{muteGroup("wave/2", 900, "Talk again.")}},
				{at: 15*time.Minute + time.Second},
			},
			calls: []string{"modify_group_base_info On", "modify_group_base_info On", "modify_group_base_info Off",
				"send_group_system_notification Talk again."},
			results: map[string]string{"wave/1": "done", "wave/2": "done", "wave/1/end": "skipped", "wave/2/end": "done",
				"wave/2/end/announce": "done"},
			reason: map[string]string{"wave/1/end": "a later group mute is in force until"},
		},
		{
			name: "a shorter group mute inside a longer one does not end it early",
			steps: []step{
				{at: 0, enqueue: []store.Action{muteGroup("quiet", 3600, "Good morning.")}},
				{at: 10 * time.Minute, enqueue: []store.Action{muteGroup("raid", 900, "Talk again.")}},
				{at: 25 * time.Minute},
				{at: 60 * time.Minute},
			},
			calls: []string{"modify_group_base_info On", "modify_group_base_info On", "modify_group_base_info Off",
				"send_group_system_notification Good morning."},
			results: map[string]string{"quiet": "done", "raid": "done", "raid/end": "skipped", "quiet/end": "done", "quiet/end/announce": "done"},
			reason:  map[string]string{"raid/end": "a later group mute is in force until"},
		},
		{
			name: "a group mute without end is not lifted when a shorter one inside it ends",
			steps: []step{
				{at: 0, enqueue: []store.Action{muteGroup("lockdown", rules.PermanentSeconds, "")}},
				{at: 5 * time.Minute, enqueue: []store.Action{muteGroup("raid", 900, "")}},
				{at: 20 * time.Minute},
			},
			calls:   []string{"modify_group_base_info On", "modify_group_base_info On"},
			results: map[string]string{"lockdown": "done", "raid": "done", "raid/end": "skipped"},
			reason:  map[string]string{"raid/end": "a later group mute is in force without end"},
		},
		{
			name: "a group mute lifted at the IM server before its end is not unmuted again",
			steps: []step{
				{at: 0, enqueue: []store.Action{muteGroup("raid", 900, "Talk again.")}},
				{at: 5 * time.Minute, liftedOutside: "-"},
				{at: 15 * time.Minute},
			},
			calls:   []string{"modify_group_base_info On"},
			results: map[string]string{"raid": "done", "raid/end": "skipped"},
			reason:  map[string]string{"raid/end": mutelife.LiftedEarlyReason},
		},
		{
			name: "a group mute lifted by an unmute_group rule skips its delayed unmute",
			steps: []step{
				{at: 0, enqueue: []store.Action{muteGroup("raid", 900, "")}},
				{at: 5 * time.Minute, enqueue: []store.Action{act("lift", string(rules.ActUnmuteGroup), grp, tim.GroupPublic, "", 0, "")}},
				{at: 15 * time.Minute},
			},
			calls:   []string{"modify_group_base_info On", "modify_group_base_info Off"},
			results: map[string]string{"raid": "done", "lift": "done", "raid/end": "skipped"},
			reason:  map[string]string{"raid/end": mutelife.LiftedEarlyReason},
		},
		{
			name: "a member unmuted early is not told later that the mute ended",
			steps: []step{
				{at: 0, enqueue: []store.Action{mute("flood", "carol", 600, "You can write again.")}},
				{at: time.Minute, enqueue: []store.Action{act("pardon", string(rules.ActUnmute), grp, tim.GroupPublic, "carol", 0, "")}},
				{at: 10 * time.Minute},
			},
			calls:   nil,
			results: map[string]string{"flood": "done", "pardon": "done", "flood/end": "skipped"},
			reason:  map[string]string{"flood/end": mutelife.LiftedEarlyReason},
		},
		{
			name: "a member mute lifted at the IM server is not announced",
			steps: []step{
				{at: 0, enqueue: []store.Action{mute("flood", "carol", 600, "You can write again.")}},
				{at: 2 * time.Minute, liftedOutside: "carol"},
				{at: 10 * time.Minute},
			},
			results: map[string]string{"flood": "done", "flood/end": "skipped"},
			reason:  map[string]string{"flood/end": mutelife.LiftedEarlyReason},
		},
		{
			name: "a member muted again for longer hears only about the later end",
			steps: []step{
				{at: 0, enqueue: []store.Action{mute("flood1", "carol", 600, "You can write again.")}},
				{at: time.Minute, enqueue: []store.Action{mute("flood2", "carol", 1200, "You can write again.")}},
				{at: 10 * time.Minute},
				{at: 21 * time.Minute},
			},
			calls:   []string{"send_group_system_notification You can write again."},
			results: map[string]string{"flood1": "done", "flood2": "done", "flood1/end": "skipped", "flood2/end": "done"},
			reason:  map[string]string{"flood1/end": "a later mute is in force until"},
		},
		{
			name: "a shorter mute of a member muted for longer is skipped and does not end the longer one early",
			steps: []step{
				{at: 0, enqueue: []store.Action{mute("day", "carol", 86400, "You can write again.")}},
				{at: time.Minute, enqueue: []store.Action{mute("flood", "carol", 600, "You can write again.")}},
				{at: 11 * time.Minute},
				{at: 24 * time.Hour},
			},
			calls:   []string{"send_group_system_notification You can write again."},
			mutes:   []string{"[carol] 86400"},
			results: map[string]string{"day": "done", "flood": "skipped", "day/end": "done"},
			reason:  map[string]string{"flood": "a longer mute is in force until "},
		},
		{
			name: "a timed mute of a member muted without end is skipped",
			steps: []step{
				{at: 0, enqueue: []store.Action{mute("forever", "carol", rules.PermanentSeconds, "")}},
				{at: time.Minute, enqueue: []store.Action{mute("flood", "carol", 600, "You can write again.")}},
				{at: 11 * time.Minute},
			},
			mutes:   []string{fmt.Sprintf("[carol] %d", tim.MuteForever)},
			results: map[string]string{"forever": "done", "flood": "skipped"},
			reason:  map[string]string{"flood": "a longer mute is in force without end"},
		},
		{
			name: "of two mutes of a member claimed together only the longer one is applied",
			steps: []step{
				{at: 0, enqueue: []store.Action{mute("flood", "carol", 600, "Flood over."), mute("spam", "carol", 3600, "Spam over.")}},
				{at: time.Hour},
			},
			calls:   []string{"send_group_system_notification Spam over."},
			mutes:   []string{"[carol] 3600"},
			results: map[string]string{"flood": "skipped", "spam": "done", "spam/end": "done"},
			reason:  map[string]string{"flood": "a longer mute in the same batch lasts until "},
		},
		{
			name: "after an unmute a shorter mute applies again",
			steps: []step{
				{at: 0, enqueue: []store.Action{mute("day", "carol", 86400, "Day over.")}},
				{at: time.Minute, enqueue: []store.Action{act("pardon", string(rules.ActUnmute), grp, tim.GroupPublic, "carol", 0, "")}},
				{at: 2 * time.Minute, enqueue: []store.Action{mute("flood", "carol", 600, "Flood over.")}},
				{at: 12 * time.Minute},
				{at: 24 * time.Hour},
			},
			calls:   []string{"send_group_system_notification Flood over."},
			mutes:   []string{"[carol] 86400", "[carol] 0", "[carol] 600"},
			results: map[string]string{"day": "done", "pardon": "done", "flood": "done", "flood/end": "done", "day/end": "skipped"},
			reason:  map[string]string{"day/end": mutelife.LiftedEarlyReason},
		},
		{
			name: "another member's lifted mute does not stop this member's announcement",
			steps: []step{
				{at: 0, enqueue: []store.Action{mute("a", "carol", 600, "Carol again."), mute("b", "dave", 600, "Dave again.")}},
				{at: time.Minute, liftedOutside: "dave"},
				{at: 10 * time.Minute},
			},
			calls:   []string{"send_group_system_notification Carol again."},
			results: map[string]string{"a": "done", "b": "done", "a/end": "done", "b/end": "skipped"},
		},
	}
	for _, kind := range storeKinds() {
		for _, tt := range tests {
			t.Run(kind.name+"/"+tt.name, func(t *testing.T) {
				ctx := context.Background()
				s, _ := kind.open(t)
				// Redis expires mute records by its own clock, so the test
				// clock starts at the real time.
				start := time.Now().Truncate(time.Second)
				clk := testclock.New(start)
				if kind.name == "memory" {
					s = memory.New(memory.Options{Now: clk.Now})
				}
				fc := newFakeClient()
				log := &auditLog{}
				e := newTestExecutor(t, s, fc, log, func(c *Config) { c.Now = clk.Now })
				for _, st := range tt.steps {
					clk.Add(start.Add(st.at).Sub(clk.Now()))
					enqueue(t, s, clk.Now(), st.enqueue...)
					if st.liftedOutside != "" {
						liftOutside(t, s, strings.TrimPrefix(st.liftedOutside, "-"), clk.Now())
					}
					drain(t, e)
				}
				var got []string
				for _, c := range fc.Calls() {
					if c.Command == tim.CommandModifyGroupBaseInfo || c.Command == tim.CommandSendGroupSystemNotification {
						got = append(got, strings.TrimSpace(c.Command+" "+c.Text))
					}
				}
				if !slices.Equal(got, tt.calls) {
					t.Errorf("calls %q, want %q", got, tt.calls)
				}
				if tt.mutes != nil {
					var mutes []string
					for _, c := range fc.CallsTo(tim.CommandForbidSendMsg) {
						mutes = append(mutes, fmt.Sprintf("%v %d", c.Members, c.Seconds))
					}
					if !slices.Equal(mutes, tt.mutes) {
						t.Errorf("forbid_send_msg calls %q, want %q", mutes, tt.mutes)
					}
				}
				if got := log.results(t); !mapsEqual(got, tt.results) {
					t.Errorf("results %v, want %v", got, tt.results)
				}
				recs := log.byAction(t)
				for id, want := range tt.reason {
					if r := recs[id]; len(r) == 0 || !strings.Contains(r[len(r)-1].Error, want) {
						t.Errorf("%s: records %+v, want the error to say %q", id, r, want)
					}
				}
				if pending, _ := s.Pending(ctx, 10); len(pending) != 0 {
					t.Errorf("pending %+v, want nothing left", pending)
				}
			})
		}
	}
}

// liftOutside does what reconciliation does when the IM server no longer
// has a recorded mute of user ("" for the group): mark it lifted, clear it.
func liftOutside(t *testing.T, s store.Store, user string, now time.Time) {
	t.Helper()
	ctx := context.Background()
	mutes, err := s.ListMutes(ctx, grp)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mutes {
		if m.User != user {
			continue
		}
		if err := mutelife.MarkLifted(ctx, s, m, now); err != nil {
			t.Fatal(err)
		}
		if err := s.ClearMute(ctx, grp, user); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("no recorded mute of %q in %v", user, mutes)
}

// listFailStore fails ListMutes while down is set.
type listFailStore struct {
	store.Store
	down atomic.Bool
}

func (s *listFailStore) ListMutes(ctx context.Context, group string) ([]store.Mute, error) {
	if s.down.Load() {
		return nil, fmt.Errorf("memory list mutes: %w: test outage", store.ErrUnavailable)
	}
	return s.Store.ListMutes(ctx, group)
}

func TestADelayedUnmuteThatCannotBeCheckedIsRetried(t *testing.T) {
	clk := testclock.New(t0)
	s := &listFailStore{Store: memory.New(memory.Options{Now: clk.Now})}
	fc := newFakeClient()
	log := &auditLog{}
	e := newTestExecutor(t, s, fc, log, func(c *Config) { c.Now = clk.Now })
	enqueue(t, s, t0, act("raid", string(rules.ActMuteGroup), grp, tim.GroupPublic, "", 900, ""))
	drain(t, e)
	clk.Add(15 * time.Minute)
	s.down.Store(true)
	drain(t, e)
	if n := len(fc.CallsTo(tim.CommandModifyGroupBaseInfo)); n != 1 {
		t.Fatalf("%d modify_group_base_info calls while the check failed, want only the mute", n)
	}
	s.down.Store(false)
	clk.Add(time.Second) // past the backoff
	drain(t, e)
	if got := log.results(t)["raid/end"]; got != "retry,done" {
		t.Errorf("raid/end results %q, want retry,done", got)
	}
	if c := fc.CallsTo(tim.CommandModifyGroupBaseInfo); len(c) != 2 || c[1].Text != tim.MuteAllOff {
		t.Errorf("calls %v, want the unmute after the retry", c)
	}
}

func TestOnlyMuteEndsAreChecked(t *testing.T) {
	at := t0.Add(time.Hour)
	tests := []struct {
		name string
		a    store.Action
		want bool
	}{
		{"the unmute at the end of a group mute is checked", store.Action{ID: "x/end", Kind: string(rules.ActUnmuteGroup), NotBefore: at}, true},
		{"the announcement at the end of a member mute is checked", store.Action{ID: "x/end", Kind: string(rules.ActWarn), User: "u", NotBefore: at}, true},
		{"an unmute_group a rule decided is not checked", store.Action{ID: "x", Kind: string(rules.ActUnmuteGroup)}, false},
		{"an announcement after a group unmute is not checked", store.Action{ID: "x/end/announce", Kind: string(rules.ActWarn)}, false},
		{"the announcement at the end of a ban is not checked", store.Action{ID: "x/ban-end", Kind: string(rules.ActWarn), User: "u", NotBefore: at}, false},
		{"an action that is not delayed is not checked", store.Action{ID: "x/end", Kind: string(rules.ActUnmuteGroup)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mutelife.IsEnd(tt.a); got != tt.want {
				t.Errorf("mutelife.IsEnd(%+v) = %v, want %v", tt.a, got, tt.want)
			}
		})
	}
}
