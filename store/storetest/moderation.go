package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/timguard/timguard/store"
)

// moderationTests cover what moderators change by hand: dead letters
// revived or dismissed, strikes cleared.
func moderationTests() []test {
	alice := store.UserRef{Group: "g", User: "alice"}
	return []test{
		{"a revived dead letter is claimed again at once, from its first attempt", func(t *testing.T, s store.Store) {
			deadLetter(t, s, action("a1", t0()), "IM said no")
			check(t, "revive", s.ReviveDead(t.Context(), "a1", t0().Add(time.Minute)))
			equalSlice(t, "dead after revive", deadIDs(t, s), []string{})
			c := claimOne(t, s, t0().Add(time.Minute), time.Minute)
			equal(t, "claimed", c.ID, "a1")
			equal(t, "attempt", c.Attempt, 1)
			equal(t, "last error", c.LastError, "")
			check(t, "complete", s.Complete(t.Context(), c))
		}},
		{"a dismissed dead letter is gone and its id may be enqueued again", func(t *testing.T, s store.Store) {
			deadLetter(t, s, action("a1", t0()), "IM said no")
			deadLetter(t, s, action("a2", t0()), "IM said no")
			check(t, "dismiss", s.DismissDead(t.Context(), "a1"))
			equalSlice(t, "dead after dismiss", deadIDs(t, s), []string{"a2"})
			equal(t, "dead counted", stats(t, s, t0()).Dead, 1)
			enqueue(t, s, action("a1", t0()))
			equal(t, "claimed again", claimOne(t, s, t0(), time.Minute).ID, "a1")
		}},
		{"reviving or dismissing what is not a dead letter says so and changes nothing", func(t *testing.T, s store.Store) {
			enqueue(t, s, action("a1", t0()))
			for what, err := range map[string]error{
				"revive a waiting action":   s.ReviveDead(t.Context(), "a1", t0()),
				"dismiss a waiting action":  s.DismissDead(t.Context(), "a1"),
				"revive an unknown action":  s.ReviveDead(t.Context(), "nope", t0()),
				"dismiss an unknown action": s.DismissDead(t.Context(), "nope"),
			} {
				if !errors.Is(err, store.ErrNoDeadLetter) {
					t.Errorf("%s: %v, want ErrNoDeadLetter", what, err)
				}
			}
			equal(t, "still waiting", claimOne(t, s, t0(), time.Minute).ID, "a1")
		}},
		{"cleared strikes count zero, in that group only", func(t *testing.T, s store.Store) {
			other := store.UserRef{Group: "g2", User: "alice"}
			commit(t, s, store.CommitRequest{Now: t0(), StrikeDecay: time.Hour, Strikes: []store.StrikeAdd{
				{UserRef: alice, N: 2, ID: "d1"}, {UserRef: other, N: 1, ID: "d1"},
			}})
			check(t, "clear", s.ClearStrikes(t.Context(), "g", "alice"))
			equalSlice(t, "strikes", strikes(t, s, t0(), time.Hour, alice, other), []int64{0, 1})
			check(t, "clear again", s.ClearStrikes(t.Context(), "g", "alice"))
		}},
	}
}
