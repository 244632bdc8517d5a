package actions

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/internal/redistest"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/store/redis"
	"github.com/timguard/timguard/tim"
)

// Redis restarts without persistence while the executor holds claims: the
// store forgets every action it held. None is dropped: each is carried out
// from the copy the executor holds and ends in exactly one final audit
// record. Three paths meet the forgetting store:
//
//   - a call that then fails and must be retried (Retry finds nothing to
//     put back: the action is enqueued again);
//   - a call that then succeeds (Complete finds nothing to complete);
//   - an action whose lease is renewed before its call (Extend finds
//     nothing to extend), in the same group after a slow call.
func TestActionsTheStoreForgotAreCarriedOutAndAuditedOnce(t *testing.T) {
	srv := redistest.StartServer(t)
	s, err := redis.New(context.Background(), redis.Options{URL: srv.URL(), KeyPrefix: "forgot:", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })

	const lease = 2 * time.Second
	const g1, g2 = "@TGS#one", "@TGS#two"
	all := []string{store.RoleOwner, store.RoleAdmin, string(rules.RoleAppAdmin)}
	as := []store.Action{
		act("retried", string(rules.ActMute), g1, tim.GroupPublic, "u1", 600, ""),
		act("completed", string(rules.ActMute), g2, tim.GroupPublic, "u3", 600, ""),
		act("renewed", string(rules.ActKick), g1, tim.GroupPublic, "u2", 0, "spam"),
	}
	now := time.Now()
	for i := range as {
		as[i].Roles = all
		// Due in this order: the kick after g1's mute.
		as[i].Created = now.Add(time.Duration(i-len(as)) * time.Second)
	}
	enqueue(t, s, now, as...)

	// The first mute call of each group waits until Redis has restarted
	// empty; then the one in g1 fails (retryable), the one in g2 succeeds.
	entered := make(chan string, 2)
	restarted := make(chan struct{})
	var mu sync.Mutex
	first := map[string]bool{}
	client := newFakeClient()
	client.fail = func(c fakeCall) error {
		if c.Command != tim.CommandForbidSendMsg {
			return nil
		}
		mu.Lock()
		seen := first[c.Group]
		first[c.Group] = true
		mu.Unlock()
		if seen {
			return nil
		}
		entered <- c.Group
		<-restarted
		if c.Group == g1 {
			return apiErr(c.Command, tim.CodeInternalError)
		}
		return nil
	}
	log := &auditLog{}
	e := newTestExecutor(t, s, client, log, func(c *Config) { c.Lease = lease })
	stop := run(t, e)
	defer stop()

	<-entered
	<-entered
	claimed := time.Now() // the claims were made before the calls began
	srv.Restart()
	// Past half the lease, the kick waiting behind g1's mute renews its
	// lease before its own call.
	time.Sleep(time.Until(claimed.Add(lease/2 + 200*time.Millisecond)))
	close(restarted)

	final := func(r string) bool {
		return r == audit.ResultDone || r == audit.ResultDead || r == audit.ResultSkipped || r == audit.ResultLost
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		byAction := log.byAction(t)
		n := 0
		for _, a := range as {
			for _, r := range byAction[a.ID] {
				if final(r.Result) {
					n++
				}
			}
		}
		if n >= len(as) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60s, results %v: the actions the store forgot were dropped", log.results(t))
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()

	byAction := log.byAction(t)
	for _, a := range as {
		var finals []string
		for _, r := range byAction[a.ID] {
			if final(r.Result) {
				finals = append(finals, r.Result+": "+r.Error)
			}
		}
		if len(finals) != 1 || byAction[a.ID][len(byAction[a.ID])-1].Result != audit.ResultDone {
			t.Errorf("%s: final records %q (all: %s), want exactly one, done", a.ID, finals, log.results(t)[a.ID])
		}
	}
	calls := map[string]int{}
	for _, c := range client.Calls() {
		if c.Command == tim.CommandForbidSendMsg || c.Command == tim.CommandDeleteGroupMember {
			for _, m := range c.Members {
				calls[c.Command+" "+m]++
			}
		}
	}
	want := map[string]int{
		tim.CommandForbidSendMsg + " u1":     2, // failed, then done after it was enqueued again
		tim.CommandDeleteGroupMember + " u2": 1,
		tim.CommandForbidSendMsg + " u3":     1,
	}
	if !mapsEqualInt(calls, want) {
		t.Errorf("calls %v, want %v", calls, want)
	}
}
