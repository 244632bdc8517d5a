package actions

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/store/memory"
	"github.com/timguard/timguard/tim"
)

// A stop while the store is down does not wait for the store until the
// leases run out: recording an outcome keeps trying during Grace only,
// so that a supervisor's stop timeout is never reached. (The action whose
// completion could not be recorded runs again after its lease; the IM
// operations are idempotent in effect.)
func TestAStopWhileTheStoreIsDownEndsWithinTheGrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ks := &killableStore{Store: memory.New(memory.Options{})}
		a := act("m1", string(rules.ActMute), "@TGS#g", tim.GroupPublic, "u1", 600, "")
		a.Roles = []string{store.RoleOwner, store.RoleAdmin, string(rules.RoleAppAdmin)}
		enqueue(t, ks, time.Now(), a)

		called := make(chan struct{})
		client := newFakeClient()
		client.onCall = func(c fakeCall) {
			if c.Command == tim.CommandForbidSendMsg {
				ks.kill() // the store goes away while the call is made
				close(called)
			}
		}
		const lease, grace = time.Hour, 2 * time.Second
		log := &auditLog{}
		e := newTestExecutor(t, ks, client, log, func(c *Config) { c.Lease, c.Grace = lease, grace })
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			_ = e.Run(ctx)
			close(done)
		}()
		<-called
		stopped := time.Now()
		cancel()
		<-done
		if took := time.Since(stopped); took > grace+5*time.Second {
			t.Errorf("Run returned %v after the stop, want within the grace of %v (not the lease of %v)", took, grace, lease)
		}
		if recs := log.byAction(t)["m1"]; len(recs) != 1 {
			t.Errorf("records of m1: %+v, want one", recs)
		}
	})
}
