package storetest

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/timguard/timguard/store"
)

// BenchEnrich5Counters measures the per-event round trip: Enrich touching
// five counters, reading the user's strikes and marking a dedupe key. Events
// come from 1000 users in turn, as a busy group's traffic would.
func BenchEnrich5Counters(b *testing.B, s store.Store) { benchEnrich(b, s, false) }

// BenchEnrich5CountersAndActivity is BenchEnrich5Counters with the user's
// activity (user.first_seen, user.messages) read and recorded, as for a
// message when rules read them.
func BenchEnrich5CountersAndActivity(b *testing.B, s store.Store) { benchEnrich(b, s, true) }

func benchEnrich(b *testing.B, s store.Store, activity bool) {
	ctx := context.Background()
	const users = 1000
	reqs := make([]store.EnrichRequest, users)
	for u := range reqs {
		user := "u" + strconv.Itoa(u)
		reqs[u] = store.EnrichRequest{
			Strikes:     []store.UserRef{{Group: "@TGS#bench", User: user}},
			StrikeDecay: 24 * time.Hour,
			DedupeTTL:   time.Minute,
		}
		for i := range 5 {
			reqs[u].Counters = append(reqs[u].Counters, store.CounterTouch{
				Key: "c" + strconv.Itoa(i) + "|@TGS#bench/" + user, Window: 10 * time.Second, Add: 1,
			})
		}
		if activity {
			reqs[u].Activity = []store.ActivityRef{{UserRef: store.UserRef{Group: "@TGS#bench", User: user}, Seen: true}}
			reqs[u].ActivityTTL = 90 * 24 * time.Hour
		}
	}
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		req := reqs[i%users]
		req.Now = time.Now()
		req.EventID = "ev" + strconv.Itoa(i)
		req.Dedupe = req.EventID
		if activity {
			req.Activity = []store.ActivityRef{{UserRef: req.Activity[0].UserRef, Seen: true, Message: req.EventID}}
		}
		if _, err := s.Enrich(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchOutboxCycle measures one action through the outbox: enqueue, claim,
// complete.
func BenchOutboxCycle(b *testing.B, s store.Store) {
	ctx := context.Background()
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		now := time.Now()
		a := store.Action{ID: "a" + strconv.Itoa(i), Kind: "mute", Group: "@TGS#bench", User: "alice", Seconds: 600, Created: now}
		if err := s.Enqueue(ctx, a); err != nil {
			b.Fatal(err)
		}
		cs, err := s.Claim(ctx, now, 1, time.Minute)
		if err != nil || len(cs) != 1 {
			b.Fatalf("claim: %v, %d actions", err, len(cs))
		}
		if err := s.Complete(ctx, cs[0]); err != nil {
			b.Fatal(err)
		}
	}
}
