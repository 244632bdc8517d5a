package schedule

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/internal/testclock"
	mutelife "github.com/timguard/timguard/mutes"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/store/memory"
	"github.com/timguard/timguard/tim"
	"github.com/timguard/timguard/tim/timtest"
)

const grp = "@TGS#reconcile"

// reconcileRig is one replica on the memory store against the fake IM
// server, all on one settable clock.
type reconcileRig struct {
	clk *testclock.Clock
	im  *timtest.Server
	s   *memory.Store
	log *auditLog
	obs *observations
}

func newReconcileRig(t *testing.T) *reconcileRig {
	clk := testclock.New(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC))
	im := timtest.New(timtest.Options{Now: clk.Now})
	t.Cleanup(im.Close)
	im.AddGroup(timtest.Group{ID: grp, Type: tim.GroupPublic, Owner: "owner", Members: []string{"carol", "dave", "eve"}})
	return &reconcileRig{clk: clk, im: im, s: memory.New(memory.Options{Now: clk.Now}), log: &auditLog{}, obs: &observations{}}
}

func (r *reconcileRig) replica(t *testing.T, name string) *replica {
	return newReplica(t, r.s, r.im, newHolder(mustRules(t, "version: 1\n")), r.log, r.clk.Now, name,
		func(c *Config) { c.Observe = r.obs.observe })
}

func TestReconciliationRecordsMutesLiftedEarlyAndNeverReappliesThem(t *testing.T) {
	ctx := context.Background()
	r := newReconcileRig(t)
	rep := r.replica(t, "r1")
	enqueue(t, r.s, r.clk.Now(),
		action("flood-carol", string(rules.ActMute), grp, "carol", 600, "You can write again."),
		action("flood-dave", string(rules.ActMute), grp, "dave", 600, ""),
		action("raid", string(rules.ActMuteGroup), grp, "", 900, "The group can talk again."))
	rep.drain(t)
	if st := r.im.Group(grp); !st.MuteAllMember || len(st.Muted) != 2 {
		t.Fatalf("IM state %+v, want the group and carol and dave muted", st)
	}

	// Two minutes later people act at the IM server: an admin lifts carol's
	// mute and switches the group mute off, and mutes eve herself.
	r.clk.Add(2 * time.Minute)
	r.im.SetMuteUntil(grp, "carol", time.Time{})
	human := newClient(t, r.im)
	if err := human.ModifyGroupBaseInfo(ctx, tim.ModifyGroupBaseInfoRequest{GroupID: grp, MuteAllMember: tim.MuteAllOff}); err != nil {
		t.Fatal(err)
	}
	r.im.SetMuteUntil(grp, "eve", r.clk.Now().Add(time.Hour))
	forbidBefore := len(r.im.CallsTo(tim.CommandForbidSendMsg))

	rep.sched.reconcile(ctx)

	mutes, err := r.s.ListMutes(ctx, grp)
	if err != nil {
		t.Fatal(err)
	}
	if len(mutes) != 1 || mutes[0].User != "dave" {
		t.Errorf("recorded mutes %+v, want only dave's", mutes)
	}
	var lifted []string
	for _, rec := range r.log.records(t, audit.KindSchedule) {
		if rec.Result != ResultLiftedEarly || rec.Command != ReconcileJob || rec.Group != grp || rec.Actor != "r1" ||
			!slices.Equal(rec.Rules, []string{"test-rule"}) || !strings.Contains(rec.Error, "lifted early") {
			t.Errorf("record %+v", rec)
		}
		lifted = append(lifted, rec.User)
	}
	slices.Sort(lifted)
	if !slices.Equal(lifted, []string{"", "carol"}) {
		t.Errorf("lifted early: %q, want the group and carol", lifted)
	}
	if got := r.obs.get(); got["reconcile lifted_early"] != 2 || got["reconcile done"] != 1 {
		t.Errorf("observed %v", got)
	}

	// When the mutes would have ended, nothing is lifted or announced:
	// the group stays as the admin left it.
	r.clk.Add(13 * time.Minute)
	rep.drain(t)
	if n := len(r.im.CallsTo(tim.CommandForbidSendMsg)); n != forbidBefore {
		t.Errorf("%d forbid_send_msg calls after reconciliation, want none: a lifted mute is not applied again", n-forbidBefore)
	}
	if on, off := muteAllCalls(t, r.im, grp, tim.MuteAllOn), muteAllCalls(t, r.im, grp, tim.MuteAllOff); on != 1 || off != 1 {
		t.Errorf("MuteAllMember On %d, Off %d times; want the raid's On and the admin's Off only", on, off)
	}
	if n := len(r.im.CallsTo(tim.CommandSendGroupSystemNotification)); n != 0 {
		t.Errorf("%d notices, want none: the ends of mutes lifted early are not announced", n)
	}
	skipped := map[string]string{}
	for _, rec := range r.log.records(t, audit.KindAction) {
		if rec.Result == audit.ResultSkipped {
			skipped[rec.Actions[0].ID] = rec.Error
		}
	}
	want := map[string]string{"flood-carol/end": mutelife.LiftedEarlyReason, "raid/end": mutelife.LiftedEarlyReason}
	if len(skipped) != len(want) || skipped["flood-carol/end"] != want["flood-carol/end"] || skipped["raid/end"] != want["raid/end"] {
		t.Errorf("skipped %v, want %v", skipped, want)
	}
	if until := r.im.MuteUntil(grp, "eve"); until.IsZero() {
		t.Error("eve's mute, which timguard did not record, was lifted")
	}
}

func TestReconciliationLeavesMutesAloneNearTheirStartAndEnd(t *testing.T) {
	tests := []struct {
		name   string
		after  time.Duration // from the mute to reconciliation
		judged bool
	}{
		{"a mute applied 30 seconds ago is not judged yet", 30 * time.Second, false},
		{"a mute applied 2 minutes ago is judged", 2 * time.Minute, true},
		{"a mute ending within the minute is not judged", 9*time.Minute + 30*time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			r := newReconcileRig(t)
			rep := r.replica(t, "r1")
			enqueue(t, r.s, r.clk.Now(), action("m", string(rules.ActMute), grp, "carol", 600, ""))
			rep.drain(t)
			r.im.SetMuteUntil(grp, "carol", time.Time{})
			r.clk.Add(tt.after)
			rep.sched.reconcile(ctx)
			mutes, _ := r.s.ListMutes(ctx, grp)
			if judged := len(mutes) == 0; judged != tt.judged {
				t.Errorf("mutes %+v after reconciliation; judged %v, want %v", mutes, judged, tt.judged)
			}
		})
	}
}

func TestReconciliationRunsOnOneReplicaPerPeriod(t *testing.T) {
	ctx := context.Background()
	r := newReconcileRig(t)
	a, b := r.replica(t, "a"), r.replica(t, "b")
	enqueue(t, r.s, r.clk.Now(), action("m", string(rules.ActMute), grp, "carol", 3600, ""))
	a.drain(t)
	r.clk.Add(2 * time.Minute)
	a.sched.reconcile(ctx)
	b.sched.reconcile(ctx)
	if n := len(r.im.CallsTo(tim.CommandGetGroupMutedAccount)); n != 1 {
		t.Errorf("%d get_group_muted_account calls in one period, want 1", n)
	}
	r.clk.Add(DefaultReconcileEvery)
	b.sched.reconcile(ctx)
	a.sched.reconcile(ctx)
	if n := len(r.im.CallsTo(tim.CommandGetGroupMutedAccount)); n != 2 {
		t.Errorf("%d get_group_muted_account calls in two periods, want 2", n)
	}
	if got := r.obs.get(); got["reconcile done"] != 2 || got["reconcile claimed_elsewhere"] != 2 {
		t.Errorf("observed %v", got)
	}
}

func TestReconciliationSkipsGroupsTheIMServerCannotDescribe(t *testing.T) {
	ctx := context.Background()
	r := newReconcileRig(t)
	rep := r.replica(t, "r1")
	enqueue(t, r.s, r.clk.Now(), action("raid", string(rules.ActMuteGroup), grp, "", 900, ""))
	rep.drain(t)
	r.im.RemoveGroup(grp)
	r.clk.Add(2 * time.Minute)
	rep.sched.reconcile(ctx)
	if mutes, _ := r.s.ListMutes(ctx, grp); len(mutes) != 1 {
		t.Errorf("mutes %+v, want the record kept: a group that cannot be described is not judged", mutes)
	}
	if recs := r.log.records(t, audit.KindSchedule); len(recs) != 0 {
		t.Errorf("records %+v, want none", recs)
	}
}

func TestWithoutAClientNothingIsReconciled(t *testing.T) {
	s := memory.New(memory.Options{})
	if err := s.SetMute(context.Background(), store.Mute{Group: grp, User: "carol", Until: time.Now().Add(time.Hour), Since: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	sched := mustNew(t, Config{Rules: newHolder(mustRules(t, "version: 1\n")), Store: s, Audit: &auditLog{}})
	sched.reconcile(context.Background())
	if mutes, _ := s.ListMutes(context.Background(), grp); len(mutes) != 1 {
		t.Errorf("mutes %+v, want the record kept", mutes)
	}
}

// stallingClient runs stall before its first read, as a reconciliation pass
// stalled between its start and the IM server's answer.
type stallingClient struct {
	Client
	once  sync.Once
	stall func()
}

func (c *stallingClient) GetGroupMutedAccount(ctx context.Context, groupID, topicID string) ([]tim.MutedAccount, error) {
	c.once.Do(c.stall)
	return c.Client.GetGroupMutedAccount(ctx, groupID, topicID)
}

func (c *stallingClient) GetGroupInfo(ctx context.Context, groupIDs []string) ([]tim.GroupInfo, error) {
	c.once.Do(c.stall)
	return c.Client.GetGroupInfo(ctx, groupIDs)
}

// A pass that stalls past the end of the mutes it is checking (here while
// timguard's own unmutes run) judges them at the IM server's answer: they
// ended, so they are not lifted early, and their announcements are made.
func TestReconciliationStalledPastAMutesEndLeavesItsOwnUnmuteAlone(t *testing.T) {
	ctx := context.Background()
	r := newReconcileRig(t)
	rep := r.replica(t, "r1")
	enqueue(t, r.s, r.clk.Now(),
		action("flood-carol", string(rules.ActMute), grp, "carol", 600, "You can write again."),
		action("raid", string(rules.ActMuteGroup), grp, "", 900, "The group can talk again."))
	rep.drain(t)
	r.clk.Add(2 * time.Minute)
	client := &stallingClient{Client: newClient(t, r.im), stall: func() {
		r.clk.Add(13 * time.Minute)
		rep.drain(t) // both mutes end: timguard unmutes and announces
	}}
	stalled := mustNew(t, Config{Rules: newHolder(mustRules(t, "version: 1\n")), Store: r.s, Client: client, Audit: r.log, Now: r.clk.Now, Replica: "r2"})
	stalled.reconcile(ctx)
	rep.drain(t)

	if recs := r.log.records(t, audit.KindSchedule); len(recs) != 0 {
		t.Errorf("schedule records %+v, want none: the mutes ended, nothing was lifted early", recs)
	}
	if n := len(r.im.Group(grp).Notifications); n != 2 {
		t.Errorf("%d announcements, want both ends announced", n)
	}
	if st := r.im.Group(grp); st.MuteAllMember || len(st.Muted) != 0 {
		t.Errorf("IM state %+v, want the group and carol unmuted", st)
	}
}
