package actions

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/tim"
)

// Suffixes of the delayed actions a successful call leaves behind. An
// action whose ID ends in EndSuffix ends a group mute (unmute_group) or
// announces the end of a member mute (warn with a user); before it runs, the
// executor checks that the mute it belongs to still ends then.
const (
	EndSuffix      = "/end"
	announceSuffix = "/announce"
	// banEndSuffix names the announcement at the end of a ban, which no mute
	// record describes.
	banEndSuffix = "/ban-end"
)

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
// of wasLifted holds it (for probeTTL). So a false answer is tried again
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

// probeTTL is how long wasLifted's probe holds a mark's key.
const probeTTL = time.Millisecond

// markAttempts and markRetryWait bound MarkLifted's attempts when the key is
// taken: the wait outlasts a probe.
const (
	markAttempts  = 3
	markRetryWait = 2 * probeTTL
)

// wasLifted reports whether the mark key (see LiftedKey) is set. ClaimOnce is the
// only way to read a mark, so the probe sets the key itself for probeTTL: too
// short to be mistaken for a mark when the action is retried, and nobody
// marks a mute whose end has passed (a mark set while the probe holds the key
// is retried by MarkLifted).
func wasLifted(ctx context.Context, c Claimer, key string) (bool, error) {
	free, err := c.ClaimOnce(ctx, key, probeTTL)
	if err != nil {
		return false, err
	}
	return !free, nil
}

// isEnd reports whether a is the delayed action that ends a group mute or
// announces the end of a member mute.
func isEnd(a store.Action) bool {
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

// checkEnds skips the delayed actions whose mute no longer ends when they
// were due: a later mute of the same subject is in force (a second
// mute_group extended the group mute), or the mute was lifted early. Of the
// delayed group unmutes claimed together (one per subject of a join wave),
// only one with the latest end goes on. It returns the jobs to go on with. A
// job whose check cannot be made (the store failing) is retried later.
func (e *Executor) checkEnds(work context.Context, group string, jobs []*job) []*job {
	var latest time.Time
	for _, j := range jobs {
		if a := j.c.Action; isEnd(a) && a.User == "" && a.NotBefore.After(latest) {
			latest = a.NotBefore
		}
	}
	var mutes []store.Mute
	var listErr error
	listed := false
	// Jobs ending the same mute share one probe: a second probe of the
	// same mark within 1ms would find the first one's.
	probed := map[string]bool{}
	unmuting := false // a delayed group unmute of this batch goes on
	out := jobs[:0]
	for _, j := range jobs {
		a := j.c.Action
		if !isEnd(a) {
			out = append(out, j)
			continue
		}
		var reason string
		var err error
		if a.User == "" && a.NotBefore.Before(latest) {
			reason = "a later group mute is in force until " + latest.UTC().Format(time.RFC3339Nano)
		} else {
			if !listed {
				mutes, listErr = e.cfg.Store.ListMutes(work, group)
				listed = true
			}
			reason, err = e.endReason(work, a, mutes, listErr, probed)
			if err == nil && reason == "" && a.User == "" {
				if unmuting {
					reason = "another delayed unmute ends the same group mute"
				}
				unmuting = true
			}
		}
		switch {
		case err != nil:
			e.retryLater(work, j, fmt.Errorf("check whether the mute of %s still ends at %s: %w",
				strings.TrimSuffix(a.ID, EndSuffix), a.NotBefore.UTC().Format(time.RFC3339), err))
		case reason != "":
			e.finishWithoutCall(work, j, audit.ResultSkipped, reason)
		default:
			out = append(out, j)
		}
	}
	return out
}

// endReason says why the delayed action a is skipped, or "" when its mute
// ends now.
func (e *Executor) endReason(ctx context.Context, a store.Action, mutes []store.Mute, listErr error, probed map[string]bool) (string, error) {
	if listErr != nil {
		return "", listErr
	}
	what := "mute"
	if a.User == "" {
		what = "group mute"
	}
	for _, m := range mutes {
		if m.User != a.User {
			continue
		}
		if m.Until.IsZero() {
			return "a later " + what + " is in force without end", nil
		}
		if m.Until.After(a.NotBefore) {
			return "a later " + what + " is in force until " + m.Until.UTC().Format(time.RFC3339Nano), nil
		}
	}
	key := LiftedKey(a.Group, a.User, a.NotBefore)
	lifted, ok := probed[key]
	if !ok {
		var err error
		if lifted, err = wasLifted(ctx, e.cfg.Store, key); err != nil {
			return "", err
		}
		probed[key] = lifted
	}
	if lifted {
		return LiftedEarlyReason, nil
	}
	return "", nil
}

// retryLater puts j back after a backoff because something it depends on
// (not the REST call) failed, or dead-letters it after MaxAttempts.
func (e *Executor) retryLater(work context.Context, j *job, err error) {
	if j.c.Attempt >= e.cfg.MaxAttempts {
		e.dead(work, j, "", fmt.Sprintf("gave up after %d attempts: %s", j.c.Attempt, err))
		return
	}
	e.retry(work, j, "", e.cfg.Now().Add(e.backoff(j.c.Attempt, tim.Retryable)), err.Error())
}

// laterGroupMute reports whether a group-wide mute in force ends after end
// (a zero end or Until means without end). A shorter mute_group decided
// while a longer one is in force does not shorten it.
func laterGroupMute(mutes []store.Mute, end time.Time) bool {
	for _, m := range mutes {
		if m.User != "" {
			continue
		}
		switch {
		case m.Until.IsZero():
			return true
		case end.IsZero():
			return false
		case m.Until.After(end):
			return true
		}
	}
	return false
}

// keepLongerMutes skips the member mutes that would shorten a longer mute of
// the same member: one timguard recorded (the IM server keeps only the last
// MuteTime it was sent), or a longer one in the same batch. An explicit
// unmute still lifts any mute, and clears its record. The group's records
// are read only when the batch holds a mute; when they cannot be read, the
// mutes are retried later.
func (e *Executor) keepLongerMutes(work context.Context, group string, jobs []*job) []*job {
	now := e.cfg.Now()
	// The latest end of each member's mutes in this batch (zero: no end).
	batch := map[string]time.Time{}
	for _, j := range jobs {
		if j.op != opMute {
			continue
		}
		end := muteEnd(now, j.seconds)
		if cur, ok := batch[j.c.User]; !ok || endsAfter(end, cur) {
			batch[j.c.User] = end
		}
	}
	if len(batch) == 0 {
		return jobs
	}
	recorded := map[string]time.Time{}
	mutes, err := e.cfg.Store.ListMutes(work, group)
	for _, m := range mutes {
		if m.User != "" {
			recorded[m.User] = m.Until
		}
	}
	out := jobs[:0]
	for _, j := range jobs {
		if j.op != opMute {
			out = append(out, j)
			continue
		}
		end := muteEnd(now, j.seconds)
		rec, isRec := recorded[j.c.User]
		switch {
		case err != nil:
			e.retryLater(work, j, fmt.Errorf("check for a longer mute of %s in %s: %w", j.c.User, group, err))
		case isRec && endsAfter(rec, end):
			e.finishWithoutCall(work, j, audit.ResultSkipped, "a longer mute is in force "+endText(rec))
		case endsAfter(batch[j.c.User], end):
			e.finishWithoutCall(work, j, audit.ResultSkipped, "a longer mute in the same batch lasts "+endText(batch[j.c.User]))
		default:
			out = append(out, j)
		}
	}
	return out
}

// muteEnd is when a mute of seconds from now ends; zero means without end.
func muteEnd(now time.Time, seconds int64) time.Time {
	if permanent(seconds) {
		return time.Time{}
	}
	return now.Add(time.Duration(seconds) * time.Second)
}

// endsAfter reports whether a mute ending at a outlasts one ending at b; a
// zero end is no end.
func endsAfter(a, b time.Time) bool {
	return !b.IsZero() && (a.IsZero() || a.After(b))
}

// endText says when a mute ends: "until TIME" or "without end".
func endText(end time.Time) string {
	if end.IsZero() {
		return "without end"
	}
	return "until " + end.UTC().Format(time.RFC3339)
}

// markLiftedRecord marks the live record of user ("" for the group-wide
// mute) in group as lifted early when it ends after now: timguard itself
// lifts it before its end. The executor's unmutes and the Lifter share it.
func markLiftedRecord(ctx context.Context, s LiftStore, group, user string, now time.Time) error {
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
