package memory

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/timguard/timguard/internal/testclock"
	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := New(Options{})
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

func TestSharedConformance(t *testing.T) {
	// One process has one memory store; two "replicas" share it.
	storetest.RunShared(t, func(t *testing.T) (store.Store, store.Store) {
		s := New(Options{})
		return s, s
	})
}

func TestDecisionCap(t *testing.T) {
	storetest.CheckDecisionCap(t, New(Options{MaxDecisions: 5}), 5)
}

func TestDeadLettersAreCapped(t *testing.T) {
	storetest.CheckDeadCap(t, New(Options{DeadMax: 5}), 5)
}

func TestDeadLettersExpireAfterDeadTTL(t *testing.T) {
	clk := testclock.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	s := New(Options{DeadTTL: time.Hour, Now: clk.Now})
	storetest.CheckDeadRetention(t, s, func() { clk.Add(time.Hour) })
}

func TestClaimDoesNotLookAtDeadLetters(t *testing.T) {
	s := New(Options{})
	ctx := t.Context()
	now := time.Now()
	for i := range 3 {
		a := store.Action{ID: fmt.Sprint("a", i), Kind: "warn", Group: "g", Text: "x", Created: now}
		if err := s.Enqueue(ctx, a); err != nil {
			t.Fatal(err)
		}
		cs, err := s.Claim(ctx, now, 1, time.Minute)
		if err != nil || len(cs) != 1 {
			t.Fatalf("claim: %v, %d actions", err, len(cs))
		}
		if err := s.DeadLetter(ctx, cs[0], "refused"); err != nil {
			t.Fatal(err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.items) != 0 || len(s.dead) != 3 {
		t.Errorf("%d outbox entries and %d dead letters, want the 3 dead letters kept apart from what Claim scans",
			len(s.items), len(s.dead))
	}
}

func TestDoneIDsAreForgottenAfterDoneTTL(t *testing.T) {
	clk := testclock.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	s := New(Options{DoneTTL: time.Hour, Now: clk.Now})
	ctx := t.Context()
	a := store.Action{ID: "a", Kind: "warn", Group: "g", Created: clk.Now()}
	if err := s.Enqueue(ctx, a); err != nil {
		t.Fatal(err)
	}
	cs, err := s.Claim(ctx, clk.Now(), 1, time.Minute)
	if err != nil || len(cs) != 1 {
		t.Fatalf("claim: %v, %d actions", err, len(cs))
	}
	if err := s.Complete(ctx, cs[0]); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		advance time.Duration
		ready   int
	}{
		{"an id completed within DoneTTL is not enqueued again", 59 * time.Minute, 0},
		{"an id completed DoneTTL ago is enqueued again", time.Minute, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			clk.Add(c.advance)
			if err := s.Enqueue(ctx, a); err != nil {
				t.Fatal(err)
			}
			st, err := s.Stats(ctx, clk.Now())
			if err != nil {
				t.Fatal(err)
			}
			if st.Ready != c.ready {
				t.Errorf("ready = %d, want %d", st.Ready, c.ready)
			}
		})
	}
}

func TestSweepDropsExpiredKeys(t *testing.T) {
	clk := testclock.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	s := New(Options{DoneTTL: time.Minute, Now: clk.Now})
	ctx := t.Context()
	for i := range 100 {
		id := string(rune('a'+i%26)) + string(rune('a'+i/26))
		_, err := s.Enrich(ctx, store.EnrichRequest{
			Now: clk.Now(), EventID: id,
			Counters: []store.CounterTouch{{Key: "k" + id, Window: time.Second, Add: 1}},
			Dedupe:   "d" + id, DedupeTTL: time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.ClaimOnce(ctx, "c"+id, time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Commit(ctx, store.CommitRequest{Now: clk.Now(), StrikeDecay: time.Second,
		Strikes: []store.StrikeAdd{{UserRef: store.UserRef{Group: "g", User: "u"}, N: 1, ID: "x"}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetRoles(ctx, "g", nil, clk.Now(), time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enrich(ctx, store.EnrichRequest{Now: clk.Now(), ActivityTTL: time.Second,
		Activity: []store.ActivityRef{{UserRef: store.UserRef{Group: "g", User: "u"}, Seen: true}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetMute(ctx, store.Mute{Group: "g", User: "u", Until: clk.Now().Add(time.Second)}); err != nil {
		t.Fatal(err)
	}

	clk.Add(2 * sweepEvery)
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, n := range map[string]int{
		"windows": len(s.windows), "strikes": len(s.strikes), "dedupe": len(s.dedupe),
		"claims": len(s.claims), "roles": len(s.roles), "mutes": len(s.mutes),
		"activity": len(s.activity),
	} {
		if n != 0 {
			t.Errorf("%s left after the sweep: %d", name, n)
		}
	}
}

func TestActivityIsKeptATTLAfterItWasLastRecorded(t *testing.T) {
	clk := testclock.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	s := New(Options{Now: clk.Now})
	alice := store.UserRef{Group: "g", User: "alice"}
	enrich := func(seen bool) store.EnrichResult {
		t.Helper()
		res, err := s.Enrich(t.Context(), store.EnrichRequest{Now: clk.Now(), ActivityTTL: time.Hour,
			Activity: []store.ActivityRef{{UserRef: alice, Seen: seen, Message: clk.Now().String()}}})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	first := clk.Now()
	enrich(true)
	clk.Add(50 * time.Minute)
	enrich(true) // keeps it another hour
	clk.Add(50 * time.Minute)
	if res := enrich(false); !res.FirstSeen[0].Equal(first) || res.Messages[0] != 2 {
		t.Fatalf("100 minutes after the first of two sightings 50 minutes apart: first seen %s, messages %d; want %s and 2",
			res.FirstSeen[0], res.Messages[0], first)
	}
	clk.Add(11 * time.Minute) // reading did not keep it
	if res := enrich(false); !res.FirstSeen[0].IsZero() || res.Messages[0] != 0 {
		t.Fatalf("an hour after the last sighting: first seen %s, messages %d; want forgotten", res.FirstSeen[0], res.Messages[0])
	}
}

func TestClosedStoreIsUnavailable(t *testing.T) {
	s := New(Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(t.Context()); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("ping after close: err = %v, want ErrUnavailable", err)
	}
	if _, err := s.Claim(t.Context(), time.Now(), 1, time.Minute); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("claim after close: err = %v, want ErrUnavailable", err)
	}
}

func TestLimiterFollowsAChangedBudget(t *testing.T) {
	clk := testclock.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	s := New(Options{Now: clk.Now})
	ctx := t.Context()
	allow := func(n, per int) bool {
		ok, _, err := s.Allow(ctx, n, per)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !allow(1, 10) {
		t.Fatal("the first call of 10 per second was refused")
	}
	if allow(1, 10) {
		t.Fatal("a second call in the same instant was allowed: calls are paced")
	}
	clk.Add(200 * time.Millisecond)
	if !allow(1, 10) {
		t.Fatal("a call 200ms later was refused with 10 per second")
	}
	if allow(1, 1) {
		t.Error("a lowered budget of 1 per second allowed a call 0ms after the last")
	}
	clk.Add(1100 * time.Millisecond)
	if !allow(1, 1) {
		t.Error("a lowered budget of 1 per second refused a call 1.1s later")
	}
}
