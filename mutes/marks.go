package mutes

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/store"
)

// EndSuffix ends the ID of the delayed action a successful mute leaves
// behind: it ends a group mute (unmute_group) or announces the end of a
// member mute (warn with a user). Before it runs, the executor checks that
// the mute it belongs to still ends then.
const EndSuffix = "/end"

// LiftedEarlyReason is the audit error of a delayed unmute or announcement
// skipped because its mute was lifted before its end.
const LiftedEarlyReason = "lifted early"

// liftedMarkTTL is how long a mark that a mute was lifted early outlives the
// mute's end: long enough for the delayed action to be claimed after an
// outage of every replica, or after its retries.
const liftedMarkTTL = 7 * 24 * time.Hour

// Claimer sets one-shot marks; store.Store implements it.
type Claimer interface {
	ClaimOnce(ctx context.Context, key string, ttl time.Duration) (bool, error)
}

// LiftedKey names the mark that the mute of user (empty: the whole group)
// in group recorded until until was lifted before that time.
//
// A mute record drops out of the store when its Until passes, which is
// exactly when the delayed action that ends or announces it becomes due, so
// the absence of a record cannot tell an early lift from the natural end.
// The mark can: whoever lifts a recorded mute early (the executor's unmute,
// reconciliation) sets it, and the delayed action looks for it.
func LiftedKey(group, user string, until time.Time) string {
	return "lifted|" + group + "|" + user + "|" + strconv.FormatInt(until.UnixMilli(), 10)
}

// MarkLifted records that m was lifted before its end, so that the delayed
// action ending or announcing m is skipped. A mute without end has no such
// action and needs no mark.
//
// A mark is set with ClaimOnce, which also finds the key taken while a probe
// of WasLifted holds it (for probeTTL). So a false answer is tried again
// after the probe's lifetime, a few times: a key still taken then is a real
// mark, set by whoever lifted the mute first.
func MarkLifted(ctx context.Context, c Claimer, m store.Mute, now time.Time) error {
	if m.Until.IsZero() {
		return nil
	}
	ttl := max(m.Until.Sub(now), 0) + liftedMarkTTL
	key := LiftedKey(m.Group, m.User, m.Until)
	for i := 1; ; i++ {
		set, err := c.ClaimOnce(ctx, key, ttl)
		if err != nil {
			return fmt.Errorf("mark the mute of %q in %s as lifted early: %w", m.User, m.Group, err)
		}
		if set || i == markAttempts {
			return nil
		}
		if !sleep(ctx, markRetryWait) {
			return fmt.Errorf("mark the mute of %q in %s as lifted early: %w", m.User, m.Group, ctx.Err())
		}
	}
}

// probeTTL is how long WasLifted's probe holds a mark's key.
const probeTTL = time.Millisecond

// markAttempts and markRetryWait bound MarkLifted's attempts when the key is
// taken: the wait outlasts a probe.
const (
	markAttempts  = 3
	markRetryWait = 2 * probeTTL
)

// WasLifted reports whether the mark key (see LiftedKey) is set. ClaimOnce is the
// only way to read a mark, so the probe sets the key itself for probeTTL: too
// short to be mistaken for a mark when the action is retried, and nobody
// marks a mute whose end has passed (a mark set while the probe holds the key
// is retried by MarkLifted).
func WasLifted(ctx context.Context, c Claimer, key string) (bool, error) {
	free, err := c.ClaimOnce(ctx, key, probeTTL)
	if err != nil {
		return false, err
	}
	return !free, nil
}

// IsEnd reports whether a is the delayed action that ends a group mute or
// announces the end of a member mute.
func IsEnd(a store.Action) bool {
	if !strings.HasSuffix(a.ID, EndSuffix) || a.NotBefore.IsZero() {
		return false
	}
	switch rules.ActionKind(a.Kind) {
	case rules.ActUnmuteGroup:
		return a.User == ""
	case rules.ActWarn:
		return a.User != ""
	}
	return false
}

// MarkLiftedRecord marks the live record of user ("" for the group-wide
// mute) in group as lifted early when it ends after now: timguard itself
// lifts it before its end. The executor's unmutes and the Lifter share it.
func MarkLiftedRecord(ctx context.Context, s LiftStore, group, user string, now time.Time) error {
	mutes, err := s.ListMutes(ctx, group)
	if err != nil {
		return fmt.Errorf("read the mutes of %s: %w", group, err)
	}
	for _, m := range mutes {
		if m.User == user && m.Until.After(now) {
			return MarkLifted(ctx, s, m, now)
		}
	}
	return nil
}

// sleep waits d or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
