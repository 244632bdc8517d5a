package actions

import (
	"context"
	"maps"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/timguard/timguard/store"
	memstore "github.com/timguard/timguard/store/memory"
	"github.com/timguard/timguard/tim"
)

func newRoleRig(t *testing.T) (*memstore.Store, *fakeClient, *RoleFiller) {
	s := memstore.New(memstore.Options{})
	fc := newFakeClient()
	fc.roles[grp] = map[string]string{"olga": tim.RoleOwner, "adam": tim.RoleAdmin, "anna": tim.RoleAdmin, "carol": tim.RoleMember}
	f := NewRoleFiller(RoleFillerConfig{Client: fc, Store: s, Cooldown: time.Minute})
	t.Cleanup(f.Close)
	return s, fc, f
}

func TestRoleFillerSharesOneCallPerGroup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, fc, f := newRoleRig(t)
		fc.gate = func(context.Context) error { time.Sleep(100 * time.Millisecond); return nil }
		for range 5 {
			f.FillRoles(grp)
		}
		got, err := f.GroupRoles(t.Context(), grp, []string{"olga", "adam", "carol", "zed"})
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
		if _, err := f.GroupRoles(t.Context(), grp, []string{"anna"}); err != nil {
			t.Fatal(err)
		}
		f.FillRoles("")
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
		f.FillRoles(grp)
		synctest.Wait()
		f.FillRoles(grp) // within the cooldown: no call
		synctest.Wait()
		if n := len(fc.CallsTo(tim.CommandGetGroupMemberInfo)); n != 1 {
			t.Fatalf("%d calls within the cooldown, want 1", n)
		}
		// The executor's lookups do not wait: they report the error.
		if _, err := f.GroupRoles(t.Context(), grp, []string{"olga"}); tim.Classify(err) != tim.Retryable {
			t.Errorf("GroupRoles = %v, want the retryable error", err)
		}
		time.Sleep(time.Minute + time.Second)
		fc.mu.Lock()
		fc.fail = nil
		fc.mu.Unlock()
		f.FillRoles(grp)
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
		f.FillRoles(grp)
		synctest.Wait()
		f.Close()
		f.FillRoles(grp) // closed: nothing happens
		synctest.Wait()
		res, _ := s.Enrich(context.Background(), store.EnrichRequest{Now: time.Now(), RoleGroup: grp})
		if res.RolesCached {
			t.Error("a cancelled fill cached roles")
		}
	})
}
