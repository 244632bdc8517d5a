package actions

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/timguard/timguard/audit"
	mutelife "github.com/timguard/timguard/mutes"
	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/tim"
)

// Suffixes of the delayed actions a successful call leaves behind, beside
// mutes.mutes.EndSuffix.
const (
	announceSuffix = "/announce"
	// banEndSuffix names the announcement at the end of a ban, which no mute
	// record describes.
	banEndSuffix = "/ban-end"
)

// checkEnds skips the delayed actions whose mute no longer ends when they
// were due: a later mute of the same subject is in force (a second
// mute_group extended the group mute), or the mute was lifted early. Of the
// delayed group unmutes claimed together (one per subject of a join wave),
// only one with the latest end goes on. It returns the jobs to go on with. A
// job whose check cannot be made (the store failing) is retried later.
func (e *Executor) checkEnds(work context.Context, group string, jobs []*job) []*job {
	var latest time.Time
	for _, j := range jobs {
		if a := j.c.Action; mutelife.IsEnd(a) && a.User == "" && a.NotBefore.After(latest) {
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
		if !mutelife.IsEnd(a) {
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
				strings.TrimSuffix(a.ID, mutelife.EndSuffix), a.NotBefore.UTC().Format(time.RFC3339), err))
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
	key := mutelife.LiftedKey(a.Group, a.User, a.NotBefore)
	lifted, ok := probed[key]
	if !ok {
		var err error
		if lifted, err = mutelife.WasLifted(ctx, e.cfg.Store, key); err != nil {
			return "", err
		}
		probed[key] = lifted
	}
	if lifted {
		return mutelife.LiftedEarlyReason, nil
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
