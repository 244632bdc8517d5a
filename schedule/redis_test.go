package schedule

// Several replicas on one real Redis, with the fake IM server. Redis expires
// keys by its own clock, so these tests run on the real clock shifted by
// what they skip ahead.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/internal/redistest"
	"github.com/timguard/timguard/internal/testclock"
	"github.com/timguard/timguard/mutes"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/store/redis"
	"github.com/timguard/timguard/tim"
	"github.com/timguard/timguard/tim/timtest"
)

const raidGroup = "@TGS#raid"

// redisRig opens handles on one Redis key space, as replicas do.
type redisRig struct {
	url, prefix string
}

func newRedisRig(t *testing.T) *redisRig {
	url := redistest.URL(t)
	prefix := redistest.Prefix(t)
	redistest.CleanupPrefix(t, url, prefix)
	return &redisRig{url: url, prefix: prefix}
}

func (r *redisRig) open(t *testing.T) store.Store {
	t.Helper()
	s, err := redis.New(context.Background(), redis.Options{URL: r.url, KeyPrefix: r.prefix, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("open redis store: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// endPending reports whether the delayed unmute of the action id waits in
// the outbox.
func endPending(t *testing.T, s store.Outbox, id string) bool {
	t.Helper()
	pending, err := s.Pending(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range pending {
		if a.ID == id+mutes.EndSuffix {
			return true
		}
	}
	return false
}

func newIM(t *testing.T, now func() time.Time, groups ...string) *timtest.Server {
	im := timtest.New(timtest.Options{Now: now})
	t.Cleanup(im.Close)
	for _, g := range groups {
		im.AddGroup(timtest.Group{ID: g, Type: tim.GroupPublic, Owner: "owner", Members: []string{"carol"}})
	}
	return im
}

// results counts the action records of id by result.
func results(t *testing.T, log *auditLog, id string) map[string]int {
	out := map[string]int{}
	for _, r := range log.records(t, audit.KindAction) {
		if r.Actions[0].ID == id {
			out[r.Result]++
		}
	}
	return out
}

func TestARaidMuteEndsWithOneUnmuteAcrossThreeReplicas(t *testing.T) {
	rr := newRedisRig(t)
	clk := &testclock.Shift{}
	im := newIM(t, clk.Now, raidGroup)
	log := &auditLog{}
	rs := newHolder(mustRules(t, "version: 1\n"))
	var reps []*replica
	for i := range 3 {
		rep := newReplica(t, rr.open(t), im, rs, log, clk.Now, fmt.Sprint("r", i+1),
			func(c *Config) { c.ReconcileEvery = 50 * time.Millisecond })
		rep.run(t)
		reps = append(reps, rep)
	}
	// What the raid rule's decision commits: a 15-minute group mute.
	const id = "ev-raid/0/raid/0"
	enqueue(t, reps[0].store, clk.Now(), action(id, string(rules.ActMuteGroup), raidGroup, "", 900, "The group can talk again."))
	// The clock jumps only once the mute is recorded done: an action still
	// in flight when it jumps finds its lease passed, and another replica
	// carries it out again.
	waitFor(t, 60*time.Second, "the raid mute done", func() bool {
		return im.Group(raidGroup).MuteAllMember && endPending(t, reps[1].store, id) && results(t, log, id)[audit.ResultDone] == 1
	})
	// Reconciliation runs on every replica meanwhile; it must leave a group
	// mute the IM server still has alone.
	clk.Add(2 * time.Minute)
	waitFor(t, 60*time.Second, "reconciliation", func() bool { return len(im.CallsTo(tim.CommandGetGroupInfo)) > 0 })
	clk.Add(13 * time.Minute)
	waitFor(t, 60*time.Second, "the unmute and its announcement", func() bool {
		return !im.Group(raidGroup).MuteAllMember && len(im.Group(raidGroup).Notifications) == 1
	})
	time.Sleep(300 * time.Millisecond) // every replica polls the outbox many more times

	if on, off := muteAllCalls(t, im, raidGroup, tim.MuteAllOn), muteAllCalls(t, im, raidGroup, tim.MuteAllOff); on != 1 || off != 1 {
		t.Errorf("MuteAllMember On %d and Off %d times at the IM server, want once each", on, off)
	}
	if n := len(im.Group(raidGroup).Notifications); n != 1 {
		t.Errorf("%d announcements, want 1", n)
	}
	if got := results(t, log, id+mutes.EndSuffix); got[audit.ResultDone] != 1 || len(got) != 1 {
		t.Errorf("the delayed unmute's records %v, want one done", got)
	}
	if recs := log.records(t, audit.KindSchedule); len(recs) != 0 {
		t.Errorf("schedule records %+v, want none: reconciliation found nothing lifted", recs)
	}
}

func TestAJobDueWhileEveryReplicaWasDownRunsOnceWhenOneComesBack(t *testing.T) {
	ctx := context.Background()
	rr := newRedisRig(t)
	clk := &testclock.Shift{}
	const quiet = "@TGS#quiet"
	im := newIM(t, clk.Now, raidGroup, quiet)
	log := &auditLog{}
	obs := &observations{}

	// The first replica runs without schedules, so that the real clock
	// cannot fire one before the outage.
	first := newReplica(t, rr.open(t), im, newHolder(mustRules(t, "version: 1\n")), log, clk.Now, "r0", nil)
	stopFirst := first.run(t)
	const id = "ev-raid/0/raid/0"
	enqueue(t, first.store, clk.Now(), action(id, string(rules.ActMuteGroup), raidGroup, "", 900, ""))
	waitFor(t, 5*time.Second, "the raid mute", func() bool {
		return im.Group(raidGroup).MuteAllMember && endPending(t, first.store, id)
	})
	stopFirst()
	if err := first.store.Close(); err != nil {
		t.Fatal(err)
	}

	// Every replica is down past the end of the raid mute and past a
	// schedule's firing at 03:00 UTC; they come back at 03:10.
	down := clk.Now()
	back := time.Date(down.Year(), down.Month(), down.Day(), 3, 10, 0, 0, time.UTC)
	for back.Before(down.Add(15 * time.Minute)) {
		back = back.AddDate(0, 0, 1)
	}
	clk.Add(back.Sub(down))
	rs := newHolder(mustRules(t, `version: 1
schedules:
  - name: nightly
    cron: "0 3 * * *"
    timezone: UTC
    groups: ["@TGS#quiet"]
    actions: [{mute_group: 1h}]
    mode: {name: night, for: 4h}
`))
	var reps []*replica
	for i := range 3 {
		rep := newReplica(t, rr.open(t), im, rs, log, clk.Now, fmt.Sprint("r", i+1),
			func(c *Config) { c.ReconcileEvery, c.Observe = 50*time.Millisecond, obs.observe })
		reps = append(reps, rep)
	}
	for _, rep := range reps {
		rep.run(t)
	}
	waitFor(t, 5*time.Second, "the unmute and the caught-up quiet hours", func() bool {
		return !im.Group(raidGroup).MuteAllMember && im.Group(quiet).MuteAllMember
	})
	time.Sleep(300 * time.Millisecond)

	if off := muteAllCalls(t, im, raidGroup, tim.MuteAllOff); off != 1 {
		t.Errorf("MuteAllMember Off %d times in the raided group, want once", off)
	}
	if on := muteAllCalls(t, im, quiet, tim.MuteAllOn); on != 1 {
		t.Errorf("MuteAllMember On %d times in the quiet group, want once", on)
	}
	at := time.Date(back.Year(), back.Month(), back.Day(), 3, 0, 0, 0, time.UTC)
	var firings []audit.Record
	for _, r := range log.records(t, audit.KindSchedule) {
		if r.EventID == FiringID("nightly", at) {
			firings = append(firings, r)
		}
	}
	if len(firings) != 1 || firings[0].Result != audit.ResultDone || !strings.Contains(firings[0].Error, "caught up 10m") {
		t.Errorf("firing records %+v, want one caught up 10m late", firings)
	}
	if got := obs.get(); got["nightly caught_up"] != 1 || got["nightly claimed_elsewhere"] != 2 {
		t.Errorf("observed %v, want one replica to catch up and two to find it claimed", got)
	}
	// The caught-up mute keeps its end: 04:00, not 04:10.
	mutes, err := reps[0].store.ListMutes(ctx, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if len(mutes) != 1 || mutes[0].Until.Sub(at.Add(time.Hour)).Abs() > 2*time.Second {
		t.Errorf("quiet group mutes %+v, want one until %v", mutes, at.Add(time.Hour))
	}
	res, err := reps[0].store.Enrich(ctx, store.EnrichRequest{Now: clk.Now(), EventID: "e", WithModes: true})
	if err != nil {
		t.Fatal(err)
	}
	if until := res.Modes["night"]; !until.Equal(at.Add(4 * time.Hour)) {
		t.Errorf("modes %v, want night until %v", res.Modes, at.Add(4*time.Hour))
	}
}
