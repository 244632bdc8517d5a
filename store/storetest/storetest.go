// Package storetest is the conformance suite every store.Store must pass.
//
// Run checks one store at a time; RunShared checks two stores on one backend
// (two replicas on one Redis). Times that the contract passes explicitly
// (Enrich, Commit, Claim, Stats) are chosen by the tests, so windows, strikes
// and leases are tested without sleeping; keys with a time to live use real
// time and short TTLs.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/timguard/timguard/store"
)

// t0 is the suite's reference time, on a whole second.
func t0() time.Time { return time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC) }

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// Run runs the suite; newStore returns a fresh, empty store for each subtest
// and arranges for it to be closed.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	groups := []struct {
		name  string
		tests []test
	}{
		{"counters", counterTests()},
		{"strikes", strikeTests()},
		{"enrich", enrichTests()},
		{"activity", activityTests()},
		{"commit", commitTests()},
		{"outbox", outboxTests()},
		{"claim once", claimOnceTests()},
		{"limiter", limiterTests()},
		{"decisions", decisionTests()},
		{"mutes", muteTests()},
		{"validation", validationTests()},
		{"moderation", moderationTests()},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.run(t, newStore(t))
				})
			}
		})
	}
}

type test struct {
	name string
	run  func(t *testing.T, s store.Store)
}

// ---------------------------------------------------------------------------
// Helpers.

func check(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func enrich(t *testing.T, s store.Store, req store.EnrichRequest) store.EnrichResult {
	t.Helper()
	res, err := s.Enrich(t.Context(), req)
	check(t, "enrich", err)
	return res
}

// count touches one window and returns its count.
func count(t *testing.T, s store.Store, key string, window time.Duration, now time.Time, event string, add int) int64 {
	t.Helper()
	res := enrich(t, s, store.EnrichRequest{
		Now: now, EventID: event,
		Counters: []store.CounterTouch{{Key: key, Window: window, Add: add}},
	})
	if len(res.Counts) != 1 {
		t.Fatalf("enrich returned %d counts for 1 counter", len(res.Counts))
	}
	return res.Counts[0]
}

func strikes(t *testing.T, s store.Store, now time.Time, decay time.Duration, refs ...store.UserRef) []int64 {
	t.Helper()
	return enrich(t, s, store.EnrichRequest{Now: now, Strikes: refs, StrikeDecay: decay}).Strikes
}

func commit(t *testing.T, s store.Store, req store.CommitRequest) {
	t.Helper()
	check(t, "commit", s.Commit(t.Context(), req))
}

func action(id string, created time.Time) store.Action {
	return store.Action{
		ID: id, Kind: "mute", Group: "@TGS#g", GroupType: "Public", User: "u-" + id,
		Seconds: 600, Text: "flood", Rule: "flood", EventID: "ev-" + id,
		Roles: []string{"admin"}, Created: created,
	}
}

func enqueue(t *testing.T, s store.Store, as ...store.Action) {
	t.Helper()
	check(t, "enqueue", s.Enqueue(t.Context(), as...))
}

func claim(t *testing.T, s store.Store, now time.Time, limit int, lease time.Duration) []store.Claimed {
	t.Helper()
	cs, err := s.Claim(t.Context(), now, limit, lease)
	check(t, "claim", err)
	return cs
}

func claimOne(t *testing.T, s store.Store, now time.Time, lease time.Duration) store.Claimed {
	t.Helper()
	cs := claim(t, s, now, 1, lease)
	if len(cs) != 1 {
		t.Fatalf("claim at %s: got %d actions, want 1", now.Format(time.RFC3339Nano), len(cs))
	}
	return cs[0]
}

func claimedIDs(cs []store.Claimed) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

func actionIDs(as []store.Action) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.ID
	}
	return out
}

func sameJSON(t *testing.T, what string, got, want any) {
	t.Helper()
	g, err := json.Marshal(got)
	check(t, "marshal", err)
	w, err := json.Marshal(want)
	check(t, "marshal", err)
	if string(g) != string(w) {
		t.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

func equal[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func equalSlice[T comparable](t *testing.T, what string, got, want []T) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func equalStats(t *testing.T, what string, got, want store.OutboxStats) {
	t.Helper()
	if got.Ready != want.Ready || got.Due != want.Due || got.Claimed != want.Claimed || got.Dead != want.Dead || !got.Oldest.Equal(want.Oldest) {
		t.Errorf("%s = %+v, want %+v", what, got, want)
	}
}

func leaseLost(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("%s: err = %v, want ErrLeaseLost", what, err)
	}
}

func stats(t *testing.T, s store.Store, now time.Time) store.OutboxStats {
	t.Helper()
	st, err := s.Stats(t.Context(), now)
	check(t, "stats", err)
	return st
}

// race runs f in n goroutines released at once and waits for them.
func race(n int, f func(i int)) {
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range n {
		done.Go(func() {
			start.Wait()
			f(i)
		})
	}
	start.Done()
	done.Wait()
}

// ---------------------------------------------------------------------------
// Counters.

func counterTests() []test {
	return []test{
		{"an entry exactly Window old no longer counts and one a millisecond newer does", func(t *testing.T, s store.Store) {
			w := 10 * time.Second
			equal(t, "count after e1", count(t, s, "k", w, t0(), "e1", 1), 1)
			equal(t, "count after e2", count(t, s, "k", w, t0().Add(ms(1)), "e2", 1), 2)
			equal(t, "count 1ms before e1 leaves", count(t, s, "k", w, t0().Add(w-ms(1)), "", 0), 2)
			equal(t, "count when e1 is exactly Window old", count(t, s, "k", w, t0().Add(w), "", 0), 1)
			equal(t, "count when e2 is exactly Window old", count(t, s, "k", w, t0().Add(w+ms(1)), "", 0), 0)
		}},
		{"a burst straddling a fixed-bucket boundary is counted in full", func(t *testing.T, s store.Store) {
			// Fixed 10s buckets starting at t0 would see 5 in each bucket.
			w := 10 * time.Second
			var last int64
			for i := range 10 {
				at := t0().Add(9500*time.Millisecond + time.Duration(i)*100*time.Millisecond)
				last = count(t, s, "burst", w, at, "e"+strconv.Itoa(i), 1)
			}
			equal(t, "count after the burst", last, 10)
			equal(t, "count once the first half is Window old", count(t, s, "burst", w, t0().Add(19900*time.Millisecond), "", 0), 5)
		}},
		{"touching a counter twice for one event counts it once", func(t *testing.T, s store.Store) {
			w := time.Minute
			equal(t, "first touch", count(t, s, "k", w, t0(), "e1", 3), 3)
			equal(t, "second touch of the same event", count(t, s, "k", w, t0().Add(time.Second), "e1", 3), 3)
			equal(t, "touch by another event", count(t, s, "k", w, t0().Add(time.Second), "e2", 1), 4)
		}},
		{"reading a counter with Add 0 adds nothing", func(t *testing.T, s store.Store) {
			w := time.Minute
			equal(t, "read of an empty counter", count(t, s, "k", w, t0(), "e1", 0), 0)
			equal(t, "second read", count(t, s, "k", w, t0(), "e1", 0), 0)
			equal(t, "touch", count(t, s, "k", w, t0(), "e1", 1), 1)
			equal(t, "read after the touch", count(t, s, "k", w, t0(), "e2", 0), 1)
		}},
		{"counters with different keys or windows are independent", func(t *testing.T, s store.Store) {
			count(t, s, "a", time.Minute, t0(), "e1", 2)
			equal(t, "other key", count(t, s, "b", time.Minute, t0(), "", 0), 0)
			equal(t, "same key, shorter window, later", count(t, s, "a", time.Second, t0().Add(time.Second), "", 0), 0)
		}},
		{"entries added at a later time than the read are not counted", func(t *testing.T, s store.Store) {
			count(t, s, "k", time.Minute, t0().Add(time.Second), "late", 1)
			equal(t, "read before the entry", count(t, s, "k", time.Minute, t0(), "", 0), 0)
		}},
	}
}

// ---------------------------------------------------------------------------
// Strikes.

func strikeTests() []test {
	alice := store.UserRef{Group: "g", User: "alice"}
	return []test{
		{"strikes decay one by one after StrikeDecay", func(t *testing.T, s store.Store) {
			decay := time.Hour
			commit(t, s, store.CommitRequest{Now: t0(), StrikeDecay: decay, Strikes: []store.StrikeAdd{{UserRef: alice, N: 1, ID: "d1"}}})
			commit(t, s, store.CommitRequest{Now: t0().Add(10 * time.Minute), StrikeDecay: decay, Strikes: []store.StrikeAdd{{UserRef: alice, N: 2, ID: "d2"}}})
			for _, c := range []struct {
				at   time.Duration
				want int64
			}{
				{0, 1},
				{20 * time.Minute, 3},
				{time.Hour - ms(1), 3},
				{time.Hour, 2},
				{70*time.Minute - ms(1), 2},
				{70 * time.Minute, 0},
			} {
				equal(t, "strikes at t0+"+c.at.String(), strikes(t, s, t0().Add(c.at), decay, alice)[0], c.want)
			}
		}},
		{"committing the same strike id twice adds it once", func(t *testing.T, s store.Store) {
			req := store.CommitRequest{Now: t0(), StrikeDecay: time.Hour, Strikes: []store.StrikeAdd{{UserRef: alice, N: 2, ID: "d1"}}}
			commit(t, s, req)
			req.Now = t0().Add(time.Minute)
			commit(t, s, req)
			equal(t, "strikes", strikes(t, s, t0().Add(2*time.Minute), time.Hour, alice)[0], 2)
		}},
		{"strikes belong to one user in one group", func(t *testing.T, s store.Store) {
			ab := store.UserRef{Group: "a:b", User: "c"}
			commit(t, s, store.CommitRequest{Now: t0(), StrikeDecay: time.Hour, Strikes: []store.StrikeAdd{
				{UserRef: alice, N: 1, ID: "d1"},
				{UserRef: ab, N: 2, ID: "d1"},
			}})
			got := strikes(t, s, t0(), time.Hour,
				alice, store.UserRef{Group: "g2", User: "alice"}, store.UserRef{Group: "g", User: "bob"},
				ab, store.UserRef{Group: "a", User: "b:c"})
			equalSlice(t, "strikes", got, []int64{1, 0, 0, 2, 0})
		}},
	}
}

// ---------------------------------------------------------------------------
// Enrich: dedupe, roles, modes, order.

func enrichTests() []test {
	return []test{
		{"counts come back in request order for five counters", func(t *testing.T, s store.Store) {
			w := time.Minute
			for i := range 5 {
				for j := range i {
					count(t, s, "c"+strconv.Itoa(i), w, t0(), "pre"+strconv.Itoa(j), 1)
				}
			}
			req := store.EnrichRequest{Now: t0().Add(time.Second), EventID: "ev"}
			for i := range 5 {
				req.Counters = append(req.Counters, store.CounterTouch{Key: "c" + strconv.Itoa(i), Window: w, Add: 1})
			}
			equalSlice(t, "counts", enrich(t, s, req).Counts, []int64{1, 2, 3, 4, 5})
		}},
		{"the second sighting of a dedupe key is a duplicate", func(t *testing.T, s store.Store) {
			req := store.EnrichRequest{Now: t0(), Dedupe: "cb-1", DedupeTTL: time.Minute}
			equal(t, "first sighting duplicate", enrich(t, s, req).Duplicate, false)
			equal(t, "second sighting duplicate", enrich(t, s, req).Duplicate, true)
			req.Dedupe = "cb-2"
			equal(t, "other key duplicate", enrich(t, s, req).Duplicate, false)
			req.Dedupe = ""
			equal(t, "no key duplicate", enrich(t, s, req).Duplicate, false)
		}},
		{"a dedupe key is forgotten after its TTL", func(t *testing.T, s store.Store) {
			req := store.EnrichRequest{Now: t0(), Dedupe: "cb-1", DedupeTTL: 100 * time.Millisecond}
			equal(t, "first sighting duplicate", enrich(t, s, req).Duplicate, false)
			time.Sleep(250 * time.Millisecond)
			equal(t, "sighting after the TTL duplicate", enrich(t, s, req).Duplicate, false)
		}},
		{"roles are uncached until set, then name owner and admins and default to member", func(t *testing.T, s store.Store) {
			req := store.EnrichRequest{Now: t0(), RoleGroup: "g", RoleUsers: []string{"ann", "bob", "cid"}}
			res := enrich(t, s, req)
			equal(t, "cached before SetRoles", res.RolesCached, false)
			equalSlice(t, "roles before SetRoles", res.Roles, []string{"", "", ""})
			equal(t, "read at, before SetRoles", res.RolesAt, time.Time{})

			// at keeps its milliseconds, not finer.
			at := t0().Add(-time.Hour + 1500*time.Microsecond)
			check(t, "set roles", s.SetRoles(t.Context(), "g", map[string]string{"ann": store.RoleOwner, "bob": store.RoleAdmin}, at, time.Minute))
			res = enrich(t, s, req)
			equal(t, "cached after SetRoles", res.RolesCached, true)
			equalSlice(t, "roles after SetRoles", res.Roles, []string{store.RoleOwner, store.RoleAdmin, store.RoleMember})
			equal(t, "read at, after SetRoles", res.RolesAt, t0().Add(-time.Hour+time.Millisecond))

			check(t, "set roles", s.SetRoles(t.Context(), "g", map[string]string{"cid": store.RoleAdmin}, t0(), time.Minute))
			res = enrich(t, s, req)
			equalSlice(t, "roles after replacing them", res.Roles, []string{store.RoleMember, store.RoleMember, store.RoleAdmin})
			equal(t, "read at, after replacing them", res.RolesAt, t0())

			check(t, "set roles", s.SetRoles(t.Context(), "g", nil, t0(), time.Minute))
			res = enrich(t, s, req)
			equal(t, "cached with no admins", res.RolesCached, true)
			equalSlice(t, "roles with no admins", res.Roles, []string{store.RoleMember, store.RoleMember, store.RoleMember})

			check(t, "forget roles", s.ForgetRoles(t.Context(), "g"))
			res = enrich(t, s, req)
			equal(t, "cached after ForgetRoles", res.RolesCached, false)
			equalSlice(t, "roles after ForgetRoles", res.Roles, []string{"", "", ""})
			equal(t, "read at, after ForgetRoles", res.RolesAt, time.Time{})
			check(t, "forget roles twice", s.ForgetRoles(t.Context(), "g"))
		}},
		{"cached roles expire after their TTL", func(t *testing.T, s store.Store) {
			check(t, "set roles", s.SetRoles(t.Context(), "g", map[string]string{"ann": store.RoleOwner}, t0(), time.Second))
			req := store.EnrichRequest{Now: t0(), RoleGroup: "g", RoleUsers: []string{"ann"}}
			equal(t, "cached at once", enrich(t, s, req).RolesCached, true)
			time.Sleep(1500 * time.Millisecond)
			equal(t, "cached after the TTL", enrich(t, s, req).RolesCached, false)
		}},
		{"modes are on until they switch off or are cleared", func(t *testing.T, s store.Store) {
			ctx := t.Context()
			check(t, "set quiet", s.SetMode(ctx, "quiet", t0().Add(time.Hour)))
			check(t, "set raid", s.SetMode(ctx, "raid", t0().Add(time.Minute)))
			check(t, "set old", s.SetMode(ctx, "old", t0().Add(-time.Second)))
			modes := enrich(t, s, store.EnrichRequest{Now: t0(), WithModes: true}).Modes
			equal(t, "modes on", len(modes), 2)
			equal(t, "quiet until", modes["quiet"].Equal(t0().Add(time.Hour)), true)
			equal(t, "raid until", modes["raid"].Equal(t0().Add(time.Minute)), true)

			modes = enrich(t, s, store.EnrichRequest{Now: t0().Add(time.Minute), WithModes: true}).Modes
			equal(t, "modes on when raid ends", len(modes), 1)

			check(t, "clear quiet", s.ClearMode(ctx, "quiet"))
			check(t, "clear unknown", s.ClearMode(ctx, "unknown"))
			equal(t, "modes on after clearing", len(enrich(t, s, store.EnrichRequest{Now: t0(), WithModes: true}).Modes), 1)
			equal(t, "modes without WithModes", enrich(t, s, store.EnrichRequest{Now: t0()}).Modes == nil, true)
		}},
		{"an empty request returns empty results", func(t *testing.T, s store.Store) {
			res := enrich(t, s, store.EnrichRequest{Now: t0()})
			equal(t, "counts", len(res.Counts), 0)
			equal(t, "strikes", len(res.Strikes), 0)
			equal(t, "duplicate", res.Duplicate, false)
			equal(t, "roles", res.Roles == nil, true)
		}},
		{"ping answers", func(t *testing.T, s store.Store) {
			check(t, "ping", s.Ping(t.Context()))
		}},
	}
}

// ---------------------------------------------------------------------------
// Activity.

func activityTests() []test {
	alice := store.UserRef{Group: "g", User: "alice"}
	bob := store.UserRef{Group: "g", User: "bob"}
	seen := func(ref store.UserRef, msg string) store.ActivityRef {
		return store.ActivityRef{UserRef: ref, Seen: true, Message: msg}
	}
	read := func(ref store.UserRef) store.ActivityRef { return store.ActivityRef{UserRef: ref} }
	req := func(now time.Time, refs ...store.ActivityRef) store.EnrichRequest {
		return store.EnrichRequest{Now: now, Activity: refs, ActivityTTL: time.Hour}
	}
	return []test{
		{"a user never seen reads no first sighting and no messages", func(t *testing.T, s store.Store) {
			res := enrich(t, s, req(t0(), read(alice)))
			equal(t, "first seen is zero", res.FirstSeen[0].IsZero(), true)
			equalSlice(t, "messages", res.Messages, []int64{0})
			res = enrich(t, s, req(t0(), read(alice)))
			equal(t, "reading does not record", res.FirstSeen[0].IsZero(), true)
		}},
		{"the first sighting is kept and messages are counted, this one included", func(t *testing.T, s store.Store) {
			res := enrich(t, s, req(t0(), seen(alice, "m1")))
			equal(t, "first seen", res.FirstSeen[0].Equal(t0()), true)
			equalSlice(t, "messages after the first", res.Messages, []int64{1})
			res = enrich(t, s, req(t0().Add(time.Minute), seen(alice, "m2"), read(bob)))
			equal(t, "first seen stays", res.FirstSeen[0].Equal(t0()), true)
			equalSlice(t, "messages after the second", res.Messages, []int64{2, 0})
			res = enrich(t, s, req(t0().Add(2*time.Minute), seen(alice, "")))
			equalSlice(t, "a sighting without a message", res.Messages, []int64{2})
		}},
		{"a message named twice in a row is counted once", func(t *testing.T, s store.Store) {
			enrich(t, s, req(t0(), seen(alice, "m1")))
			res := enrich(t, s, req(t0(), seen(alice, "m1")))
			equalSlice(t, "messages", res.Messages, []int64{1})
		}},
		{"users and groups are kept apart", func(t *testing.T, s store.Store) {
			other := store.UserRef{Group: "g2", User: "alice"}
			enrich(t, s, req(t0(), seen(alice, "m1")))
			res := enrich(t, s, req(t0().Add(time.Hour/2), seen(other, "m2"), read(bob), read(alice)))
			equal(t, "first seen in the other group", res.FirstSeen[0].Equal(t0().Add(time.Hour/2)), true)
			equal(t, "bob never seen", res.FirstSeen[1].IsZero(), true)
			equal(t, "alice in g", res.FirstSeen[2].Equal(t0()), true)
			equalSlice(t, "messages", res.Messages, []int64{1, 0, 1})
		}},
		{"activity is forgotten a TTL after it was last recorded, and starts again", func(t *testing.T, s store.Store) {
			r := store.EnrichRequest{Now: t0(), Activity: []store.ActivityRef{seen(alice, "m1")}, ActivityTTL: 200 * time.Millisecond}
			enrich(t, s, r)
			time.Sleep(600 * time.Millisecond)
			res := enrich(t, s, req(t0(), read(alice)))
			equal(t, "forgotten", res.FirstSeen[0].IsZero(), true)
			equalSlice(t, "messages forgotten", res.Messages, []int64{0})
			res = enrich(t, s, req(t0().Add(time.Hour), seen(alice, "m2")))
			equal(t, "seen again", res.FirstSeen[0].Equal(t0().Add(time.Hour)), true)
			equalSlice(t, "messages start again", res.Messages, []int64{1})
		}},
		{"a request without activity returns none", func(t *testing.T, s store.Store) {
			res := enrich(t, s, store.EnrichRequest{Now: t0()})
			equal(t, "first seen", res.FirstSeen == nil, true)
			equal(t, "messages", res.Messages == nil, true)
		}},
	}
}

// ---------------------------------------------------------------------------
// Commit.

func commitTests() []test {
	alice := store.UserRef{Group: "g", User: "alice"}
	full := func() store.CommitRequest {
		return store.CommitRequest{
			Now:         t0(),
			EventID:     "ev1",
			StrikeDecay: time.Hour,
			Strikes:     []store.StrikeAdd{{UserRef: alice, N: 2, ID: "ev1/spam"}},
			Actions:     []store.Action{action("a1", t0()), action("a2", t0())},
			Touch:       []store.CounterTouch{{Key: "budget|spam", Window: time.Minute, Add: 1}},
			Decisions:   []store.DecisionRecord{{Time: t0(), Group: "g", User: "alice", Body: []byte(`{"verdict":"block"}`)}},
		}
	}
	return []test{
		{"Commit adds strikes, touches windows, enqueues actions and logs decisions", func(t *testing.T, s store.Store) {
			commit(t, s, full())
			equal(t, "strikes", strikes(t, s, t0(), time.Hour, alice)[0], 2)
			equal(t, "window", count(t, s, "budget|spam", time.Minute, t0(), "", 0), 1)
			pending, err := s.Pending(t.Context(), 10)
			check(t, "pending", err)
			equalSlice(t, "pending", actionIDs(pending), []string{"a1", "a2"})
			ds, err := s.RecentDecisions(t.Context(), store.DecisionFilter{})
			check(t, "recent decisions", err)
			if len(ds) != 1 {
				t.Fatalf("got %d decisions, want 1", len(ds))
			}
			equal(t, "decision body", string(ds[0].Body), `{"verdict":"block"}`)
		}},
		{"committing one decision twice adds its strikes, entries and actions once", func(t *testing.T, s store.Store) {
			commit(t, s, full())
			again := full()
			again.Now = t0().Add(time.Second)
			commit(t, s, again)
			equal(t, "strikes", strikes(t, s, t0().Add(time.Second), time.Hour, alice)[0], 2)
			equal(t, "window", count(t, s, "budget|spam", time.Minute, t0().Add(time.Second), "", 0), 1)
			equal(t, "ready", stats(t, s, t0()).Ready, 2)
		}},
		{"an empty commit succeeds", func(t *testing.T, s store.Store) {
			commit(t, s, store.CommitRequest{Now: t0()})
		}},
	}
}

// ---------------------------------------------------------------------------
// Outbox.

func outboxTests() []test {
	lease := time.Minute
	return []test{
		{"an enqueued action is claimed once with attempt 1 and a token, then completed", func(t *testing.T, s store.Store) {
			a := action("a1", t0())
			a.NotBefore = time.Time{}
			enqueue(t, s, a)
			c := claimOne(t, s, t0(), lease)
			sameJSON(t, "claimed action", c.Action, a)
			equal(t, "attempt", c.Attempt, 1)
			equal(t, "token set", c.Token != "", true)
			equal(t, "last error", c.LastError, "")
			equal(t, "claims while held", len(claim(t, s, t0(), 10, lease)), 0)
			check(t, "complete", s.Complete(t.Context(), c))
			leaseLost(t, "complete twice", s.Complete(t.Context(), c))
			equalStats(t, "stats after complete", stats(t, s, t0()), store.OutboxStats{})
		}},
		{"a claim on an action the store has no trace of is unknown, not lost to another worker", func(t *testing.T, s store.Store) {
			// What a worker holds when Redis restarted without its data.
			forgotten := store.Claimed{Action: action("forgotten", t0()), Attempt: 1, Token: "t:1"}
			for op, err := range map[string]error{
				"extend":      s.Extend(t.Context(), forgotten, t0(), lease),
				"complete":    s.Complete(t.Context(), forgotten),
				"retry":       s.Retry(t.Context(), forgotten, t0(), "x"),
				"dead letter": s.DeadLetter(t.Context(), forgotten, "x"),
			} {
				if !errors.Is(err, store.ErrActionUnknown) || errors.Is(err, store.ErrLeaseLost) {
					t.Errorf("%s of an unknown action: err = %v, want ErrActionUnknown", op, err)
				}
			}
			// Known actions held by nobody, or finished, are lost leases.
			enqueue(t, s, action("a1", t0()), action("a2", t0()))
			c1 := claimOne(t, s, t0(), lease)
			c2 := claimOne(t, s, t0(), lease)
			check(t, "complete", s.Complete(t.Context(), c1))
			leaseLost(t, "complete of a completed action", s.Complete(t.Context(), c1))
			check(t, "dead letter", s.DeadLetter(t.Context(), c2, "x"))
			leaseLost(t, "retry of a dead action", s.Retry(t.Context(), c2, t0(), "x"))
		}},
		{"an action without Created is due at once", func(t *testing.T, s store.Store) {
			enqueue(t, s, store.Action{ID: "a1", Kind: "warn", Group: "g"})
			claimOne(t, s, time.Now().Add(time.Second), lease)
		}},
		{"enqueue is idempotent while pending, claimed, completed and dead", func(t *testing.T, s store.Store) {
			enqueue(t, s, action("a", t0()), action("a", t0()))
			enqueue(t, s, action("a", t0()))
			equal(t, "ready after enqueueing a thrice", stats(t, s, t0()).Ready, 1)
			c := claimOne(t, s, t0(), lease)
			enqueue(t, s, action("a", t0()))
			equalStats(t, "stats while claimed", stats(t, s, t0()), store.OutboxStats{Claimed: 1})
			check(t, "complete", s.Complete(t.Context(), c))
			enqueue(t, s, action("a", t0()))
			equalStats(t, "stats after complete and enqueue", stats(t, s, t0()), store.OutboxStats{})

			enqueue(t, s, action("b", t0()))
			check(t, "dead letter", s.DeadLetter(t.Context(), claimOne(t, s, t0(), lease), "gone"))
			enqueue(t, s, action("b", t0()))
			equalStats(t, "stats after dead letter and enqueue", stats(t, s, t0()), store.OutboxStats{Dead: 1})
		}},
		{"racing goroutines claim each action exactly once", func(t *testing.T, s store.Store) {
			const n = 40
			for i := range n {
				enqueue(t, s, action(fmt.Sprintf("a%02d", i), t0()))
			}
			var mu sync.Mutex
			got := map[string]int{}
			var failed atomic.Value
			race(8, func(int) {
				for {
					cs, err := s.Claim(context.Background(), t0(), 3, lease)
					if err != nil {
						failed.Store(err)
						return
					}
					if len(cs) == 0 {
						return
					}
					for _, c := range cs {
						if err := s.Complete(context.Background(), c); err != nil {
							failed.Store(err)
						}
						mu.Lock()
						got[c.ID]++
						mu.Unlock()
					}
				}
			})
			if err, _ := failed.Load().(error); err != nil {
				t.Fatal(err)
			}
			equal(t, "distinct actions claimed", len(got), n)
			for id, k := range got {
				if k != 1 {
					t.Errorf("%s claimed %d times", id, k)
				}
			}
		}},
		{"a lapsed lease brings the action back with the next attempt and refuses the old token", func(t *testing.T, s store.Store) {
			ctx := t.Context()
			enqueue(t, s, action("a", t0()))
			old := claimOne(t, s, t0(), 30*time.Second)
			equal(t, "claims before the lease lapses", len(claim(t, s, t0().Add(30*time.Second-ms(1)), 1, lease)), 0)
			equalStats(t, "stats while leased", stats(t, s, t0().Add(time.Second)), store.OutboxStats{Claimed: 1})
			equalStats(t, "stats once lapsed", stats(t, s, t0().Add(30*time.Second)), store.OutboxStats{Ready: 1, Due: 1, Oldest: t0()})

			c := claimOne(t, s, t0().Add(30*time.Second), lease)
			equal(t, "attempt", c.Attempt, 2)
			equal(t, "new token", c.Token != old.Token, true)
			leaseLost(t, "complete with the old token", s.Complete(ctx, old))
			leaseLost(t, "retry with the old token", s.Retry(ctx, old, t0(), "x"))
			leaseLost(t, "dead letter with the old token", s.DeadLetter(ctx, old, "x"))
			leaseLost(t, "extend with the old token", s.Extend(ctx, old, t0(), lease))
			check(t, "release with the old token", s.Release(ctx, old))
			check(t, "complete with the new token", s.Complete(ctx, c))
		}},
		{"a worker whose lease lapsed can still complete while nobody reclaimed it", func(t *testing.T, s store.Store) {
			enqueue(t, s, action("a", t0()))
			c := claimOne(t, s, t0(), time.Second)
			equal(t, "due after the lease", stats(t, s, t0().Add(time.Minute)).Due, 1)
			check(t, "complete", s.Complete(t.Context(), c))
			equal(t, "claims after complete", len(claim(t, s, t0().Add(time.Minute), 1, lease)), 0)
		}},
		{"extending a lease keeps the action from other claimers", func(t *testing.T, s store.Store) {
			enqueue(t, s, action("a", t0()))
			c := claimOne(t, s, t0(), 10*time.Second)
			check(t, "extend", s.Extend(t.Context(), c, t0().Add(5*time.Second), 10*time.Second))
			equal(t, "claims after the first deadline", len(claim(t, s, t0().Add(12*time.Second), 1, lease)), 0)
			again := claimOne(t, s, t0().Add(15*time.Second), lease)
			equal(t, "attempt after the extended lease", again.Attempt, 2)
		}},
		{"retry puts the action back at the given time with the error recorded", func(t *testing.T, s store.Store) {
			ctx := t.Context()
			enqueue(t, s, action("a", t0()))
			c := claimOne(t, s, t0(), lease)
			check(t, "retry", s.Retry(ctx, c, t0().Add(time.Minute), "IM error 10002"))
			leaseLost(t, "retry twice", s.Retry(ctx, c, t0().Add(time.Minute), "again"))
			equal(t, "claims before the retry time", len(claim(t, s, t0().Add(time.Minute-ms(1)), 1, lease)), 0)
			equalStats(t, "stats before the retry time", stats(t, s, t0()), store.OutboxStats{Ready: 1})
			pending, err := s.Pending(ctx, 10)
			check(t, "pending", err)
			equalSlice(t, "pending", actionIDs(pending), []string{"a"})

			c = claimOne(t, s, t0().Add(time.Minute), lease)
			equal(t, "attempt", c.Attempt, 2)
			equal(t, "last error", c.LastError, "IM error 10002")
			check(t, "complete", s.Complete(ctx, c))
		}},
		{"release hands actions back at once without counting the attempt", func(t *testing.T, s store.Store) {
			ctx := t.Context()
			enqueue(t, s, action("a", t0()), action("b", t0().Add(time.Second)))
			cs := claim(t, s, t0().Add(time.Second), 10, lease)
			equalSlice(t, "claimed", claimedIDs(cs), []string{"a", "b"})
			stale := cs[0]
			stale.Token = "not-a-token"
			check(t, "release", s.Release(ctx, append(cs, stale)...))
			check(t, "release nothing", s.Release(ctx))
			equalStats(t, "stats after release", stats(t, s, t0().Add(time.Second)), store.OutboxStats{Ready: 2, Due: 2, Oldest: t0()})
			again := claim(t, s, t0().Add(time.Second), 10, lease)
			equalSlice(t, "claimed again", claimedIDs(again), []string{"a", "b"})
			for i, c := range again {
				equal(t, c.ID+" attempt", c.Attempt, 1)
				leaseLost(t, c.ID+" complete with the released token", s.Complete(ctx, cs[i]))
				check(t, c.ID+" complete", s.Complete(ctx, c))
			}
		}},
		{"dead-lettered actions are listed newest first with their reason", func(t *testing.T, s store.Store) {
			ctx := t.Context()
			enqueue(t, s, action("a", t0()), action("b", t0()), action("c", t0()))
			cs := claim(t, s, t0(), 10, lease)
			before := time.Now().Truncate(time.Millisecond)
			check(t, "dead letter a", s.DeadLetter(ctx, cs[0], "user not found"))
			time.Sleep(5 * time.Millisecond)
			check(t, "dead letter b", s.DeadLetter(ctx, cs[1], "no permission"))
			after := time.Now()
			leaseLost(t, "dead letter b twice", s.DeadLetter(ctx, cs[1], "again"))
			leaseLost(t, "complete a dead action", s.Complete(ctx, cs[0]))

			dead, err := s.Dead(ctx, 10)
			check(t, "dead", err)
			if len(dead) != 2 {
				t.Fatalf("got %d dead actions, want 2", len(dead))
			}
			equal(t, "newest dead", dead[0].ID, "b")
			equal(t, "newest reason", dead[0].Reason, "no permission")
			equal(t, "oldest reason", dead[1].Reason, "user not found")
			sameJSON(t, "dead action", dead[1].Action, action("a", t0()))
			for _, d := range dead {
				if d.At.Before(before) || d.At.After(after) {
					t.Errorf("%s died at %s, want between %s and %s", d.ID, d.At, before, after)
				}
			}
			one, err := s.Dead(ctx, 1)
			check(t, "dead with limit 1", err)
			equal(t, "dead with limit 1", len(one), 1)
			equalStats(t, "stats", stats(t, s, t0()), store.OutboxStats{Claimed: 1, Dead: 2})
		}},
		{"a delayed action is not claimed before NotBefore and is claimed once by competing claimers after", func(t *testing.T, s store.Store) {
			a := action("unmute-group", t0())
			a.NotBefore = t0().Add(time.Hour)
			enqueue(t, s, a)
			equal(t, "claims before due", len(claim(t, s, t0().Add(time.Hour-ms(1)), 10, lease)), 0)
			equalStats(t, "stats before due", stats(t, s, t0()), store.OutboxStats{Ready: 1})
			var won atomic.Int64
			var failed atomic.Value
			race(10, func(int) {
				cs, err := s.Claim(context.Background(), t0().Add(time.Hour), 5, lease)
				if err != nil {
					failed.Store(err)
				}
				won.Add(int64(len(cs)))
			})
			if err, _ := failed.Load().(error); err != nil {
				t.Fatal(err)
			}
			equal(t, "claims among competing claimers", won.Load(), 1)
		}},
		{"stats count ready, due, claimed and dead actions and the oldest due", func(t *testing.T, s store.Store) {
			later := action("c", t0())
			later.NotBefore = t0().Add(time.Hour)
			enqueue(t, s, action("a", t0()), action("b", t0().Add(time.Second)), later, action("d", t0().Add(-time.Minute)))
			equal(t, "first claim", claimOne(t, s, t0(), lease).ID, "d")
			equalStats(t, "stats", stats(t, s, t0().Add(2*time.Second)), store.OutboxStats{Ready: 3, Due: 2, Claimed: 1, Oldest: t0()})
		}},
		{"pending lists waiting actions soonest first", func(t *testing.T, s store.Store) {
			ctx := t.Context()
			later := action("c", t0())
			later.NotBefore = t0().Add(time.Hour)
			enqueue(t, s, later, action("b", t0().Add(time.Second)), action("a", t0()), action("z", t0().Add(-time.Hour)))
			claimOne(t, s, t0(), lease)
			all, err := s.Pending(ctx, 10)
			check(t, "pending", err)
			equalSlice(t, "pending", actionIDs(all), []string{"a", "b", "c"})
			two, err := s.Pending(ctx, 2)
			check(t, "pending 2", err)
			equalSlice(t, "pending 2", actionIDs(two), []string{"a", "b"})
		}},
		{"an empty outbox claims, lists and counts nothing", func(t *testing.T, s store.Store) {
			equal(t, "claims", len(claim(t, s, t0(), 10, lease)), 0)
			equal(t, "claims of zero", len(claim(t, s, t0(), 0, lease)), 0)
			equalStats(t, "stats", stats(t, s, t0()), store.OutboxStats{})
			dead, err := s.Dead(t.Context(), 10)
			check(t, "dead", err)
			equal(t, "dead", len(dead), 0)
			pending, err := s.Pending(t.Context(), 10)
			check(t, "pending", err)
			equal(t, "pending", len(pending), 0)
			check(t, "enqueue nothing", s.Enqueue(t.Context()))
			if err := s.Complete(t.Context(), store.Claimed{Action: store.Action{ID: "x"}, Token: "t"}); !errors.Is(err, store.ErrActionUnknown) {
				t.Errorf("complete an unknown action: err = %v, want ErrActionUnknown", err)
			}
		}},
	}
}

// ---------------------------------------------------------------------------
// ClaimOnce.

func claimOnceTests() []test {
	return []test{
		{"ClaimOnce has exactly one winner among competing claimers", func(t *testing.T, s store.Store) {
			key := "schedule:quiet-hours:2030-01-02T23:00:00+08:00"
			var won atomic.Int64
			var failed atomic.Value
			race(16, func(int) {
				ok, err := s.ClaimOnce(context.Background(), key, time.Minute)
				if err != nil {
					failed.Store(err)
				}
				if ok {
					won.Add(1)
				}
			})
			if err, _ := failed.Load().(error); err != nil {
				t.Fatal(err)
			}
			equal(t, "winners", won.Load(), 1)
			ok, err := s.ClaimOnce(t.Context(), key+"x", time.Minute)
			check(t, "claim once", err)
			equal(t, "other key won", ok, true)
		}},
		{"ClaimOnce can be won again after the key lives out its TTL", func(t *testing.T, s store.Store) {
			ok, err := s.ClaimOnce(t.Context(), "job", 100*time.Millisecond)
			check(t, "claim once", err)
			equal(t, "first claim", ok, true)
			time.Sleep(250 * time.Millisecond)
			ok, err = s.ClaimOnce(t.Context(), "job", time.Minute)
			check(t, "claim once", err)
			equal(t, "claim after the TTL", ok, true)
		}},
	}
}

// ---------------------------------------------------------------------------
// Limiter.

func limiterTests() []test {
	return []test{
		{"the limiter lets through no more than the burst plus the rate over time across callers", func(t *testing.T, s store.Store) {
			checkBudget(t, s, s)
		}},
		{"a refused call takes nothing and says how long to wait", func(t *testing.T, s store.Store) {
			ctx := t.Context()
			ok, _, err := s.Allow(ctx, 1, 2)
			check(t, "allow 1", err)
			equal(t, "allow the first call", ok, true)
			ok, wait, err := s.Allow(ctx, 1, 2)
			check(t, "allow 1", err)
			equal(t, "allow a second call at once", ok, false)
			if wait <= 0 || wait > time.Second {
				t.Errorf("wait = %s, want in (0, 1s]", wait)
			}
			// Had the refused call taken anything, the next would need
			// another half second.
			time.Sleep(wait + 20*time.Millisecond)
			ok, _, err = s.Allow(ctx, 1, 2)
			check(t, "allow 1", err)
			equal(t, "allow a call after the wait", ok, true)
		}},
		{"the limiter refuses to take several calls at once", func(t *testing.T, s store.Store) {
			_, _, err := s.Allow(t.Context(), 2, 5)
			if err == nil || errors.Is(err, store.ErrUnavailable) {
				t.Errorf("allow 2 of 5: err = %v, want a request error", err)
			}
			ok, _, err := s.Allow(t.Context(), 0, 5)
			check(t, "allow 0", err)
			equal(t, "allow 0", ok, true)
		}},
		{"no one-second window holds more calls than the budget", func(t *testing.T, s store.Store) {
			checkWindows(t, s, s)
		}},
	}
}

// checkWindows takes calls as fast as the budget allows for a little over a
// second from several goroutines and checks every sliding one-second window.
func checkWindows(t *testing.T, a, b store.Store) {
	t.Helper()
	const perSecond = 25
	var mu sync.Mutex
	var times []time.Time
	stop := time.Now().Add(1300 * time.Millisecond)
	race(6, func(i int) {
		s := a
		if i%2 == 1 {
			s = b
		}
		for time.Now().Before(stop) {
			ok, wait, err := s.Allow(context.Background(), 1, perSecond)
			if err != nil {
				t.Error(err)
				return
			}
			if ok {
				mu.Lock()
				times = append(times, time.Now())
				mu.Unlock()
				continue
			}
			time.Sleep(min(wait, 5*time.Millisecond))
		}
	})
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	most := 0
	for i := range times {
		j := sort.Search(len(times), func(j int) bool { return times[j].Sub(times[i]) >= time.Second })
		most = max(most, j-i)
	}
	if most > perSecond {
		t.Errorf("%d calls in one second, budget %d", most, perSecond)
	}
	if len(times) < perSecond/2 {
		t.Errorf("only %d calls in 1.3s with a budget of %d a second", len(times), perSecond)
	}
}

// checkBudget hammers the budget through a and b for a short while and
// checks that no more calls went through than the budget allows: the burst
// plus the rate over the time spent.
func checkBudget(t *testing.T, a, b store.Store) {
	t.Helper()
	const perSecond = 20
	var allowed atomic.Int64
	var failed atomic.Value
	start := time.Now()
	stop := start.Add(300 * time.Millisecond)
	race(8, func(i int) {
		s := a
		if i%2 == 1 {
			s = b
		}
		// At least three calls each, so that even a stalled machine makes
		// more attempts than the burst.
		for n := 0; n < 3 || time.Now().Before(stop); n++ {
			ok, _, err := s.Allow(context.Background(), 1, perSecond)
			if err != nil {
				failed.Store(err)
				return
			}
			if ok {
				allowed.Add(1)
			}
		}
	})
	elapsed := time.Since(start)
	if err, _ := failed.Load().(error); err != nil {
		t.Fatal(err)
	}
	limit := 1 + int64(math.Ceil(elapsed.Seconds()*perSecond))
	if got := allowed.Load(); got < 2 || got > limit {
		t.Errorf("allowed %d calls in %s, want between 2 and %d", got, elapsed, limit)
	}
}

// ---------------------------------------------------------------------------
// Decisions.

func decisionTests() []test {
	return []test{
		{"recent decisions come newest first, filtered by group and user, up to the limit", func(t *testing.T, s store.Store) {
			who := [][2]string{{"g1", "u1"}, {"g1", "u2"}, {"g2", "u1"}, {"g1", "u1"}, {"g2", "u2"}}
			var ds []store.DecisionRecord
			for i, w := range who {
				ds = append(ds, store.DecisionRecord{Time: t0().Add(time.Duration(i) * time.Second), Group: w[0], User: w[1], Body: []byte(strconv.Itoa(i))})
			}
			commit(t, s, store.CommitRequest{Now: t0(), Decisions: ds[:3]})
			commit(t, s, store.CommitRequest{Now: t0(), Decisions: ds[3:4]})
			commit(t, s, store.CommitRequest{Now: t0(), Decisions: ds[4:]})
			bodies := func(f store.DecisionFilter) []string {
				got, err := s.RecentDecisions(t.Context(), f)
				check(t, "recent decisions", err)
				out := make([]string, len(got))
				for i, d := range got {
					out[i] = string(d.Body)
				}
				return out
			}
			for _, c := range []struct {
				f    store.DecisionFilter
				want []string
			}{
				{store.DecisionFilter{}, []string{"4", "3", "2", "1", "0"}},
				{store.DecisionFilter{Group: "g1"}, []string{"3", "1", "0"}},
				{store.DecisionFilter{User: "u1"}, []string{"3", "2", "0"}},
				{store.DecisionFilter{Group: "g1", User: "u1"}, []string{"3", "0"}},
				{store.DecisionFilter{User: "u1", Limit: 2}, []string{"3", "2"}},
				{store.DecisionFilter{Limit: 1}, []string{"4"}},
				{store.DecisionFilter{Group: "nobody"}, []string{}},
			} {
				equalSlice(t, fmt.Sprintf("bodies for %+v", c.f), bodies(c.f), c.want)
			}
			got, err := s.RecentDecisions(t.Context(), store.DecisionFilter{})
			check(t, "recent decisions", err)
			seen := map[string]bool{}
			for i, d := range got {
				want := ds[len(ds)-1-i]
				equal(t, "time of "+string(d.Body), d.Time.Equal(want.Time), true)
				equal(t, "group of "+string(d.Body), d.Group, want.Group)
				equal(t, "user of "+string(d.Body), d.User, want.User)
				if d.ID == "" || seen[d.ID] {
					t.Errorf("decision %s has id %q, want a unique one", d.Body, d.ID)
				}
				seen[d.ID] = true
			}
		}},
		{"a decision without a time or body comes back without them", func(t *testing.T, s store.Store) {
			commit(t, s, store.CommitRequest{Now: t0(), Decisions: []store.DecisionRecord{{Group: "g"}}})
			got, err := s.RecentDecisions(t.Context(), store.DecisionFilter{})
			check(t, "recent decisions", err)
			if len(got) != 1 {
				t.Fatalf("got %d decisions, want 1", len(got))
			}
			equal(t, "time is zero", got[0].Time.IsZero(), true)
			equal(t, "body", len(got[0].Body), 0)
			equal(t, "group", got[0].Group, "g")
		}},
		{"an empty decision log returns nothing", func(t *testing.T, s store.Store) {
			got, err := s.RecentDecisions(t.Context(), store.DecisionFilter{Limit: 10})
			check(t, "recent decisions", err)
			equal(t, "decisions", len(got), 0)
		}},
	}
}

// CheckDecisionCap commits more than maxDecisions decisions to s, which must
// have been made with that cap, and checks that only the newest maxDecisions
// are returned.
func CheckDecisionCap(t *testing.T, s store.Store, maxDecisions int) {
	t.Helper()
	var ds []store.DecisionRecord
	for i := range maxDecisions + 7 {
		ds = append(ds, store.DecisionRecord{Time: t0(), Group: "g", User: "u", Body: []byte(strconv.Itoa(i))})
	}
	commit(t, s, store.CommitRequest{Now: t0(), Decisions: ds})
	got, err := s.RecentDecisions(t.Context(), store.DecisionFilter{Limit: maxDecisions * 2})
	check(t, "recent decisions", err)
	if len(got) != maxDecisions {
		t.Fatalf("got %d decisions, want the cap %d", len(got), maxDecisions)
	}
	equal(t, "newest", string(got[0].Body), strconv.Itoa(maxDecisions+6))
	equal(t, "oldest kept", string(got[len(got)-1].Body), "7")
	filtered, err := s.RecentDecisions(t.Context(), store.DecisionFilter{Group: "g", Limit: maxDecisions * 2})
	check(t, "recent decisions of g", err)
	equal(t, "decisions of g", len(filtered), maxDecisions)
}

// deadLetter enqueues a, claims it at t0 and dead-letters it.
func deadLetter(t *testing.T, s store.Store, a store.Action, reason string) {
	t.Helper()
	enqueue(t, s, a)
	c := claimOne(t, s, t0(), time.Minute)
	equal(t, "claimed", c.ID, a.ID)
	check(t, "dead letter "+a.ID, s.DeadLetter(t.Context(), c, reason))
}

// deadIDs lists the ids of s's dead letters, newest first.
func deadIDs(t *testing.T, s store.Store) []string {
	t.Helper()
	dead, err := s.Dead(t.Context(), 1000)
	check(t, "dead", err)
	out := make([]string, len(dead))
	for i, d := range dead {
		out[i] = d.ID
	}
	return out
}

// CheckDeadCap dead-letters more than deadMax actions in s, which must have
// been made with that cap (DeadMax), and checks that only the newest
// deadMax are kept: listed, counted, and still refused by Enqueue; the
// oldest are dropped with their data, so enqueueing one again adds it.
func CheckDeadCap(t *testing.T, s store.Store, deadMax int) {
	t.Helper()
	n := deadMax + 3
	id := func(i int) string { return fmt.Sprintf("dead-%03d", i) }
	for i := range n {
		deadLetter(t, s, action(id(i), t0()), "refused "+strconv.Itoa(i))
	}
	var want []string
	for i := n - 1; i >= n-deadMax; i-- {
		want = append(want, id(i))
	}
	equalSlice(t, "dead letters kept, newest first", deadIDs(t, s), want)
	equal(t, "dead letters counted", stats(t, s, t0()).Dead, deadMax)
	dead, err := s.Dead(t.Context(), 1)
	check(t, "dead", err)
	if len(dead) != 1 || dead[0].Reason != "refused "+strconv.Itoa(n-1) || dead[0].User != "u-"+id(n-1) {
		t.Errorf("newest dead letter %+v, want %s with its reason and action", dead, id(n-1))
	}
	enqueue(t, s, action(id(0), t0()), action(id(n-1), t0()))
	pending, err := s.Pending(t.Context(), 10)
	check(t, "pending", err)
	equalSlice(t, "pending after enqueueing a dropped and a kept dead letter again", actionIDs(pending), []string{id(0)})
	c := claimOne(t, s, t0(), time.Minute)
	equal(t, "attempt of a dropped dead letter enqueued again", c.Attempt, 1)
	equal(t, "its last error", c.LastError, "")
}

// CheckDeadRetention dead-letters an action in s, which must have been made
// with a DeadTTL that pass lets go by on the store's clock, then another,
// and checks that the first was dropped with its data.
func CheckDeadRetention(t *testing.T, s store.Store, pass func()) {
	t.Helper()
	deadLetter(t, s, action("old", t0()), "refused")
	pass()
	deadLetter(t, s, action("new", t0()), "refused")
	equalSlice(t, "dead letters kept", deadIDs(t, s), []string{"new"})
	equal(t, "dead letters counted", stats(t, s, t0()).Dead, 1)
	enqueue(t, s, action("old", t0()))
	pending, err := s.Pending(t.Context(), 10)
	check(t, "pending", err)
	equalSlice(t, "pending after enqueueing the dropped dead letter again", actionIDs(pending), []string{"old"})
}

// ---------------------------------------------------------------------------
// Mutes.

func muteTests() []test {
	users := func(ms []store.Mute) []string {
		out := make([]string, len(ms))
		for i, m := range ms {
			out[i] = m.Group + "/" + m.User
		}
		return out
	}
	return []test{
		{"mutes are listed group-wide first and cleared one by one", func(t *testing.T, s store.Store) {
			ctx := t.Context()
			now := time.Now().UTC().Truncate(time.Millisecond)
			in := []store.Mute{
				{Group: "g", User: "bob", Until: now.Add(time.Hour), Since: now, Rule: "flood", EventID: "e1"},
				{Group: "g", Until: now.Add(15 * time.Minute), Since: now, Rule: "raid"},
				{Group: "g", User: "alice", Until: now.Add(time.Hour), Since: now},
				{Group: "h", User: "carol", Until: now.Add(time.Hour), Since: now},
			}
			for _, m := range in {
				check(t, "set mute", s.SetMute(ctx, m))
			}
			got, err := s.ListMutes(ctx, "g")
			check(t, "list mutes", err)
			equalSlice(t, "mutes of g", users(got), []string{"g/", "g/alice", "g/bob"})
			sameJSON(t, "group-wide mute", got[0], in[1])
			sameJSON(t, "bob's mute", got[2], in[0])
			groups, err := s.MutedGroups(ctx)
			check(t, "muted groups", err)
			equalSlice(t, "muted groups", groups, []string{"g", "h"})

			check(t, "clear alice", s.ClearMute(ctx, "g", "alice"))
			check(t, "clear nobody", s.ClearMute(ctx, "g", "nobody"))
			check(t, "clear in an unknown group", s.ClearMute(ctx, "x", "nobody"))
			got, err = s.ListMutes(ctx, "g")
			check(t, "list mutes", err)
			equalSlice(t, "mutes of g after clearing alice", users(got), []string{"g/", "g/bob"})

			check(t, "clear carol", s.ClearMute(ctx, "h", "carol"))
			groups, err = s.MutedGroups(ctx)
			check(t, "muted groups", err)
			equalSlice(t, "muted groups after clearing h", groups, []string{"g"})
			none, err := s.ListMutes(ctx, "h")
			check(t, "list mutes of h", err)
			equal(t, "mutes of h", len(none), 0)
		}},
		{"expired mutes are neither listed nor counted as muted groups", func(t *testing.T, s store.Store) {
			ctx := t.Context()
			now := time.Now()
			for _, m := range []store.Mute{
				{Group: "g", User: "bob", Until: now.Add(-time.Second)},
				{Group: "g", User: "amy", Until: now.Add(time.Hour)},
				{Group: "h", User: "old", Until: now.Add(-time.Second)},
				{Group: "k", User: "forever"},
			} {
				check(t, "set mute", s.SetMute(ctx, m))
			}
			got, err := s.ListMutes(ctx, "g")
			check(t, "list mutes", err)
			equalSlice(t, "mutes of g", users(got), []string{"g/amy"})
			groups, err := s.MutedGroups(ctx)
			check(t, "muted groups", err)
			equalSlice(t, "muted groups", groups, []string{"g", "k"})
			got, err = s.ListMutes(ctx, "k")
			check(t, "list mutes", err)
			equalSlice(t, "mutes without an end", users(got), []string{"k/forever"})
		}},
		{"setting a mute again replaces the record", func(t *testing.T, s store.Store) {
			ctx := t.Context()
			now := time.Now().UTC().Truncate(time.Millisecond)
			check(t, "set mute", s.SetMute(ctx, store.Mute{Group: "g", User: "bob", Until: now.Add(time.Hour)}))
			check(t, "set mute", s.SetMute(ctx, store.Mute{Group: "g", User: "bob", Until: now.Add(time.Minute), Rule: "again"}))
			got, err := s.ListMutes(ctx, "g")
			check(t, "list mutes", err)
			if len(got) != 1 {
				t.Fatalf("got %d mutes, want 1", len(got))
			}
			equal(t, "rule", got[0].Rule, "again")
			equal(t, "until", got[0].Until.Equal(now.Add(time.Minute)), true)
		}},
	}
}

// ---------------------------------------------------------------------------
// Validation.

func validationTests() []test {
	ctx := context.Background
	alice := store.UserRef{Group: "g", User: "alice"}
	calls := []struct {
		name string
		call func(s store.Store) error
	}{
		{"a counter without a window", func(s store.Store) error {
			_, err := s.Enrich(ctx(), store.EnrichRequest{Now: t0(), EventID: "e", Counters: []store.CounterTouch{{Key: "k", Add: 1}}})
			return err
		}},
		{"a counter touch without an event id", func(s store.Store) error {
			_, err := s.Enrich(ctx(), store.EnrichRequest{Now: t0(), Counters: []store.CounterTouch{{Key: "k", Window: time.Second, Add: 1}}})
			return err
		}},
		{"strikes read without a decay", func(s store.Store) error {
			_, err := s.Enrich(ctx(), store.EnrichRequest{Now: t0(), Strikes: []store.UserRef{alice}})
			return err
		}},
		{"a dedupe key without a TTL", func(s store.Store) error {
			_, err := s.Enrich(ctx(), store.EnrichRequest{Now: t0(), Dedupe: "d"})
			return err
		}},
		{"strikes committed without an id", func(s store.Store) error {
			return s.Commit(ctx(), store.CommitRequest{Now: t0(), StrikeDecay: time.Hour, Strikes: []store.StrikeAdd{{UserRef: alice, N: 1}}})
		}},
		{"an action without an id", func(s store.Store) error {
			return s.Enqueue(ctx(), store.Action{Kind: "mute"})
		}},
		{"a claim without a lease", func(s store.Store) error {
			_, err := s.Claim(ctx(), t0(), 1, 0)
			return err
		}},
		{"a ClaimOnce without a TTL", func(s store.Store) error {
			_, err := s.ClaimOnce(ctx(), "k", 0)
			return err
		}},
		{"roles with an unknown role", func(s store.Store) error {
			return s.SetRoles(ctx(), "g", map[string]string{"a": "king"}, t0(), time.Minute)
		}},
		{"roles without the time they were read", func(s store.Store) error {
			return s.SetRoles(ctx(), "g", map[string]string{"a": store.RoleAdmin}, time.Time{}, time.Minute)
		}},
		{"a mute without a group", func(s store.Store) error {
			return s.SetMute(ctx(), store.Mute{User: "a"})
		}},
	}
	var out []test
	for _, c := range calls {
		out = append(out, test{c.name + " is refused", func(t *testing.T, s store.Store) {
			err := c.call(s)
			if err == nil || errors.Is(err, store.ErrUnavailable) {
				t.Errorf("err = %v, want a request error", err)
			}
		}})
	}
	return out
}

// ---------------------------------------------------------------------------
// Two stores on one backend.

// RunShared checks that two stores on one backend, as two replicas, agree:
// newPair returns two fresh stores over the same empty state.
func RunShared(t *testing.T, newPair func(t *testing.T) (store.Store, store.Store)) {
	tests := []struct {
		name string
		run  func(t *testing.T, a, b store.Store)
	}{
		{"two stores claim each action exactly once", func(t *testing.T, a, b store.Store) {
			const n = 40
			for i := range n {
				enqueue(t, a, action(fmt.Sprintf("a%02d", i), t0()))
			}
			var mu sync.Mutex
			got := map[string]int{}
			var failed atomic.Value
			race(8, func(i int) {
				s := a
				if i%2 == 1 {
					s = b
				}
				for {
					cs, err := s.Claim(context.Background(), t0(), 2, time.Minute)
					if err != nil {
						failed.Store(err)
						return
					}
					if len(cs) == 0 {
						return
					}
					mu.Lock()
					for _, c := range cs {
						got[c.ID]++
					}
					mu.Unlock()
				}
			})
			if err, _ := failed.Load().(error); err != nil {
				t.Fatal(err)
			}
			equal(t, "distinct actions claimed", len(got), n)
			for id, k := range got {
				if k != 1 {
					t.Errorf("%s claimed %d times", id, k)
				}
			}
		}},
		{"two stores racing for one action: only one wins", func(t *testing.T, a, b store.Store) {
			enqueue(t, a, action("x", t0()))
			var won atomic.Int64
			var failed atomic.Value
			race(8, func(i int) {
				s := a
				if i%2 == 1 {
					s = b
				}
				cs, err := s.Claim(context.Background(), t0(), 1, time.Minute)
				if err != nil {
					failed.Store(err)
				}
				won.Add(int64(len(cs)))
			})
			if err, _ := failed.Load().(error); err != nil {
				t.Fatal(err)
			}
			equal(t, "winners", won.Load(), 1)
		}},
		{"a claim made through one store is finished through the other", func(t *testing.T, a, b store.Store) {
			enqueue(t, a, action("x", t0()))
			c := claimOne(t, a, t0(), time.Minute)
			check(t, "complete through b", b.Complete(t.Context(), c))
			leaseLost(t, "complete through a", a.Complete(t.Context(), c))
		}},
		{"a lapsed claim of one store is taken over by the other", func(t *testing.T, a, b store.Store) {
			enqueue(t, a, action("x", t0()))
			old := claimOne(t, a, t0(), time.Second)
			c := claimOne(t, b, t0().Add(time.Second), time.Minute)
			equal(t, "attempt", c.Attempt, 2)
			leaseLost(t, "complete with a's lapsed token", a.Complete(t.Context(), old))
			check(t, "complete through b", b.Complete(t.Context(), c))
		}},
		{"ClaimOnce across two stores has one winner", func(t *testing.T, a, b store.Store) {
			var won atomic.Int64
			race(8, func(i int) {
				s := a
				if i%2 == 1 {
					s = b
				}
				if ok, err := s.ClaimOnce(context.Background(), "job@t", time.Minute); err == nil && ok {
					won.Add(1)
				}
			})
			equal(t, "winners", won.Load(), 1)
		}},
		{"two stores share counters, strikes and dedupe marks", func(t *testing.T, a, b store.Store) {
			count(t, a, "k", time.Minute, t0(), "e1", 1)
			equal(t, "count through b", count(t, b, "k", time.Minute, t0(), "e2", 1), 2)
			alice := store.UserRef{Group: "g", User: "alice"}
			commit(t, a, store.CommitRequest{Now: t0(), StrikeDecay: time.Hour, Strikes: []store.StrikeAdd{{UserRef: alice, N: 1, ID: "d"}}})
			equal(t, "strikes through b", strikes(t, b, t0(), time.Hour, alice)[0], 1)
			req := store.EnrichRequest{Now: t0(), Dedupe: "cb", DedupeTTL: time.Minute}
			enrich(t, a, req)
			equal(t, "duplicate through b", enrich(t, b, req).Duplicate, true)
		}},
		{"two stores share one REST budget", func(t *testing.T, a, b store.Store) {
			checkBudget(t, a, b)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, b := newPair(t)
			tc.run(t, a, b)
		})
	}
}
