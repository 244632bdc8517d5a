package rolecache

import (
	"context"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/store/memory"
	"github.com/timguard/timguard/tim"
)

func newRoleRig(t *testing.T) (*memory.Store, *fakeClient, *Filler) {
	s := memory.New(memory.Options{})
	fc := newFakeClient()
	fc.roles[grp] = map[string]string{"olga": tim.RoleOwner, "adam": tim.RoleAdmin, "anna": tim.RoleAdmin, "carol": tim.RoleMember}
	f := New(Config{Client: fc, Store: s, Cooldown: time.Minute})
	t.Cleanup(f.Close)
	return s, fc, f
}

func TestRoleFillerSharesOneCallPerGroup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, fc, f := newRoleRig(t)
		fc.gate = func(context.Context) error { time.Sleep(100 * time.Millisecond); return nil }
		var wg sync.WaitGroup
		for range 5 {
			wg.Go(func() {
				roles, err := f.FillRoles(t.Context(), grp, tim.GroupPublic)
				if err != nil || roles["olga"] != "owner" || roles["adam"] != "admin" {
					t.Errorf("FillRoles = %v, %v", roles, err)
				}
			})
		}
		wg.Wait()
		got, err := f.GroupRoles(t.Context(), grp, tim.GroupPublic, []string{"olga", "adam", "carol", "zed"})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"olga": "owner", "adam": "admin", "carol": "member", "zed": "member"}
		if !maps.Equal(got, want) {
			t.Errorf("roles %v, want %v", got, want)
		}
		synctest.Wait()
		calls := fc.CallsTo(tim.CommandGetGroupMemberInfo)
		if len(calls) != 1 || !slices.Equal(calls[0].Members, []string{tim.RoleOwner, tim.RoleAdmin}) {
			t.Errorf("calls %v, want one get_group_member_info filtered to Owner and Admin", calls)
		}
		// The policy engine reads the same cache.
		res, err := s.Enrich(t.Context(), store.EnrichRequest{Now: time.Now(), RoleGroup: grp, RoleUsers: []string{"anna", "carol"}})
		if err != nil || !res.RolesCached || !slices.Equal(res.Roles, []string{"admin", "member"}) {
			t.Errorf("cached roles %+v, %v", res, err)
		}
		// A filled cache answers without a call.
		if _, err := f.GroupRoles(t.Context(), grp, tim.GroupPublic, []string{"anna"}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.FillRoles(t.Context(), "", tim.GroupPublic); err == nil {
			t.Error("FillRoles of no group did not fail")
		}
		synctest.Wait()
		if n := len(fc.CallsTo(tim.CommandGetGroupMemberInfo)); n != 1 {
			t.Errorf("%d calls after the cache was filled, want 1", n)
		}
	})
}

func TestRoleFillerWaitsAfterAFailedFill(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, fc, f := newRoleRig(t)
		fc.fail = func(c fakeCall) error { return apiErr(c.Command, tim.CodeInternalError) }
		if _, err := f.FillRoles(t.Context(), grp, tim.GroupPublic); err == nil {
			t.Fatal("a failed fill reported no error")
		}
		if _, err := f.FillRoles(t.Context(), grp, tim.GroupPublic); err == nil { // within the cooldown: no call
			t.Fatal("a fill within the cooldown reported no error")
		}
		synctest.Wait()
		if n := len(fc.CallsTo(tim.CommandGetGroupMemberInfo)); n != 1 {
			t.Fatalf("%d calls within the cooldown, want 1", n)
		}
		// The executor's lookups do not wait: they report the error.
		if _, err := f.GroupRoles(t.Context(), grp, tim.GroupPublic, []string{"olga"}); tim.Classify(err) != tim.Retryable {
			t.Errorf("GroupRoles = %v, want the retryable error", err)
		}
		time.Sleep(time.Minute + time.Second)
		fc.mu.Lock()
		fc.fail = nil
		fc.mu.Unlock()
		if _, err := f.FillRoles(t.Context(), grp, tim.GroupPublic); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if n := len(fc.CallsTo(tim.CommandGetGroupMemberInfo)); n != 3 {
			t.Errorf("%d calls after the cooldown, want 3", n)
		}
	})
}

func TestRoleFillerCloseWaitsForFills(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, fc, f := newRoleRig(t)
		fc.gate = func(ctx context.Context) error {
			select {
			case <-time.After(time.Hour):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		if _, err := f.FillRoles(ctx, grp, tim.GroupPublic); err == nil {
			t.Error("a fill that outlived its wait reported no error")
		}
		cancel()
		synctest.Wait()
		f.Close()
		if _, err := f.FillRoles(t.Context(), grp, tim.GroupPublic); err == nil { // closed: nothing happens
			t.Error("a fill after Close reported no error")
		}
		synctest.Wait()
		res, _ := s.Enrich(context.Background(), store.EnrichRequest{Now: time.Now(), RoleGroup: grp})
		if res.RolesCached {
			t.Error("a cancelled fill cached roles")
		}
	})
}

func TestRoleFillerRefreshesOldRolesOncePerInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, fc, f := newRoleRig(t)
		if _, err := f.FillRoles(t.Context(), grp, tim.GroupPublic); err != nil {
			t.Fatal(err)
		}
		calls := func() int { synctest.Wait(); return len(fc.CallsTo(tim.CommandGetGroupMemberInfo)) }
		// What the policy engine passes: when the store says the roles were
		// read.
		cachedAt := func() time.Time {
			res, _ := s.Enrich(t.Context(), store.EnrichRequest{Now: time.Now(), RoleGroup: grp})
			return res.RolesAt
		}
		if at := cachedAt(); !at.Equal(time.Now().Truncate(time.Millisecond)) {
			t.Fatalf("the fill cached roles read at %v, want now (%v)", at, time.Now())
		}
		f.RefreshRoles(grp, tim.GroupPublic, cachedAt(), false)
		if n := calls(); n != 1 {
			t.Fatalf("%d calls: fresh roles were refreshed", n)
		}
		time.Sleep(DefaultRefresh + time.Second)
		fc.mu.Lock()
		fc.roles[grp]["carol"] = tim.RoleAdmin
		fc.mu.Unlock()
		old := cachedAt()
		f.RefreshRoles(grp, tim.GroupPublic, old, false)
		f.RefreshRoles(grp, tim.GroupPublic, old, false)
		if n := calls(); n != 2 {
			t.Fatalf("%d calls after the refresh interval, want one refresh", n)
		}
		res, _ := s.Enrich(t.Context(), store.EnrichRequest{Now: time.Now(), RoleGroup: grp, RoleUsers: []string{"carol"}})
		if !res.RolesCached || res.Roles[0] != "admin" {
			t.Errorf("after the refresh carol is %v, want admin", res.Roles)
		}
		if !res.RolesAt.After(old) {
			t.Errorf("after the refresh the roles were read at %v, want later than %v", res.RolesAt, old)
		}
		// An event that read the old time before the refresh landed asks
		// again: this replica refreshed them already.
		f.RefreshRoles(grp, tim.GroupPublic, old, false)
		if n := calls(); n != 2 {
			t.Errorf("%d calls after a late event, want no second refresh", n)
		}
		// Roles cached without a time (zero: unknown) are refreshed once per
		// interval too.
		time.Sleep(DefaultRefresh + time.Second)
		f.RefreshRoles(grp, tim.GroupPublic, time.Time{}, false)
		f.RefreshRoles(grp, tim.GroupPublic, time.Time{}, false)
		if n := calls(); n != 3 {
			t.Errorf("%d calls for roles of unknown age, want one refresh more", n)
		}
		// A role change the IM server reports refreshes at once.
		f.RefreshRoles(grp, tim.GroupPublic, cachedAt(), true)
		if n := calls(); n != 4 {
			t.Errorf("%d calls after a reported role change, want a forced refresh", n)
		}
	})
}

// TestRolesAnotherReplicaRefreshedAreNotRefreshedAgain: replicas share the
// store, so the time the roles were read there tells every replica they are
// fresh, not only the one that read them.
func TestRolesAnotherReplicaRefreshedAreNotRefreshedAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, fc, a := newRoleRig(t)
		bs := &claimCounter{Store: s}
		b := New(Config{Client: fc, Store: bs, Cooldown: time.Minute})
		t.Cleanup(b.Close)
		calls := func() int { synctest.Wait(); return len(fc.CallsTo(tim.CommandGetGroupMemberInfo)) }
		cachedAt := func() time.Time {
			res, _ := s.Enrich(t.Context(), store.EnrichRequest{Now: time.Now(), RoleGroup: grp})
			return res.RolesAt
		}
		if _, err := a.FillRoles(t.Context(), grp, tim.GroupPublic); err != nil {
			t.Fatal(err)
		}
		time.Sleep(DefaultRefresh + time.Second)
		a.RefreshRoles(grp, tim.GroupPublic, cachedAt(), false)
		if n := calls(); n != 2 {
			t.Fatalf("%d calls, want the fill and replica a's refresh", n)
		}
		// Replica b never refreshed this group itself.
		b.RefreshRoles(grp, tim.GroupPublic, cachedAt(), false)
		if n := calls(); n != 2 {
			t.Errorf("%d calls: replica b refreshed roles replica a had just refreshed", n)
		}
		if n := bs.claims.Load(); n != 0 {
			t.Errorf("replica b asked the store for the refresh claim %d times, want none: the roles were fresh", n)
		}
	})
}

// TestRolesReadAheadOfThisClockAreNotTakenForFresh: a time the roles were
// read that is ahead of this replica's clock (the replica that read them
// runs fast) does not keep them from refreshing: this replica refreshes
// them once per interval, as if it did not know when they were read.
func TestRolesReadAheadOfThisClockAreNotTakenForFresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, fc, f := newRoleRig(t)
		calls := func() int { synctest.Wait(); return len(fc.CallsTo(tim.CommandGetGroupMemberInfo)) }
		ahead := time.Now().Add(time.Hour)
		f.RefreshRoles(grp, tim.GroupPublic, ahead, false)
		f.RefreshRoles(grp, tim.GroupPublic, ahead, false)
		if n := calls(); n != 1 {
			t.Errorf("%d calls for roles read an hour ahead of this clock, want one refresh", n)
		}
	})
}

// TestFailedRefreshesAreNotRepeatedWithinTheInterval: while the IM server
// refuses to list a group, its roles stay old in the store and every event
// asks again; this replica tries once per interval.
func TestFailedRefreshesAreNotRepeatedWithinTheInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, fc, f := newRoleRig(t)
		fc.fail = func(fakeCall) error {
			return &tim.APIError{Command: tim.CommandGetGroupMemberInfo, Code: 10002, Info: "internal error"}
		}
		calls := func() int { synctest.Wait(); return len(fc.CallsTo(tim.CommandGetGroupMemberInfo)) }
		old := time.Now().Add(-time.Hour)
		for range 5 {
			f.RefreshRoles(grp, tim.GroupPublic, old, false)
			synctest.Wait()
		}
		if n := calls(); n != 1 {
			t.Fatalf("%d calls while the IM server refuses, want one", n)
		}
		time.Sleep(DefaultRefresh + time.Second)
		f.RefreshRoles(grp, tim.GroupPublic, old, false)
		f.RefreshRoles(grp, tim.GroupPublic, old, false)
		if n := calls(); n != 2 {
			t.Errorf("%d calls an interval later, want one more", n)
		}
	})
}

// claimCounter is a role filler's store that counts refresh claims.
type claimCounter struct {
	Store
	claims atomic.Int32
}

func (c *claimCounter) ClaimOnce(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	c.claims.Add(1)
	return c.Store.ClaimOnce(ctx, key, ttl)
}
