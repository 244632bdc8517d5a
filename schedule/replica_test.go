package schedule

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/timguard/timguard/actions"
	"github.com/timguard/timguard/rolecache"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/tim"
	"github.com/timguard/timguard/tim/timtest"
)

// replica is one timguard process as far as time is concerned: an executor
// and a scheduler on a store, calling the fake IM server.
type replica struct {
	store store.Store
	ex    *actions.Executor
	sched *Scheduler
}

func newReplica(t testing.TB, s store.Store, im *timtest.Server, rs RuleSource, log *auditLog, now func() time.Time, name string, mod func(*Config)) *replica {
	t.Helper()
	client := newClient(t, im)
	roles := rolecache.New(rolecache.Config{Client: client, Store: s, Now: now})
	t.Cleanup(roles.Close)
	ex, err := actions.New(actions.Config{
		Store: s, Client: client, Roles: roles, Audit: log, Now: now, Replica: name, AppAdmin: timtest.DefaultAdmin,
		Lease: 10 * time.Second, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		PollInterval: 10 * time.Millisecond, Linger: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Rules: rs, Store: s, Client: client, Audit: log, Now: now, Replica: name}
	if mod != nil {
		mod(&cfg)
	}
	return &replica{store: s, ex: ex, sched: mustNew(t, cfg)}
}

func newClient(t testing.TB, im *timtest.Server) *tim.Client {
	t.Helper()
	cfg := im.ClientConfig()
	cfg.Timeout = 3 * time.Second
	c, err := tim.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// run runs the executor and the scheduler until the returned function is
// called; it stops both and waits.
func (r *replica) run(t testing.TB) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := r.ex.Run(ctx); err != nil {
			t.Errorf("executor: %v", err)
		}
	})
	wg.Go(func() {
		if err := r.sched.Run(ctx); err != nil {
			t.Errorf("scheduler: %v", err)
		}
	})
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

// drain runs the executor until nothing is due.
func (r *replica) drain(t testing.TB) {
	t.Helper()
	for range 100 {
		n, err := r.ex.RunOnce(context.Background())
		if err != nil {
			t.Fatalf("executor: %v", err)
		}
		if n == 0 {
			return
		}
	}
	t.Fatal("the outbox never emptied")
}

// action builds an action as a rule decided it.
func action(id, kind, group, user string, seconds int64, text string) store.Action {
	return store.Action{
		ID: id, Kind: kind, Group: group, GroupType: tim.GroupPublic, User: user, Seconds: seconds, Text: text,
		Rule: "test-rule", EventID: "ev-" + id, Roles: []string{store.RoleOwner, store.RoleAdmin, string(rules.RoleAppAdmin)},
	}
}

func enqueue(t testing.TB, s store.Outbox, now time.Time, as ...store.Action) {
	t.Helper()
	for i := range as {
		as[i].Created = now
	}
	if err := s.Enqueue(context.Background(), as...); err != nil {
		t.Fatal(err)
	}
}

// muteAllCalls counts the modify_group_base_info calls the fake carried out
// that set MuteAllMember to value in group.
func muteAllCalls(t testing.TB, im *timtest.Server, group, value string) int {
	t.Helper()
	n := 0
	for _, c := range im.EffectiveCallsTo(tim.CommandModifyGroupBaseInfo) {
		var body struct {
			GroupID       string `json:"GroupId"`
			MuteAllMember string `json:"MuteAllMember"`
		}
		if err := json.Unmarshal(c.Body, &body); err != nil {
			t.Fatal(err)
		}
		if body.GroupID == group && body.MuteAllMember == value {
			n++
		}
	}
	return n
}

// waitFor polls cond until it holds or within passes.
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen within %v", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
