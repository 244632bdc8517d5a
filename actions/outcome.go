package actions

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/timguard/timguard/audit"
	mutelife "github.com/timguard/timguard/mutes"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/tim"
)

// finishParallel bounds how many jobs of one call are settled at once (each
// settles with a few store round trips).
const finishParallel = 16

// each runs fn for every job, finishParallel at a time.
func each(jobs []*job, fn func(*job)) {
	if len(jobs) == 1 {
		fn(jobs[0])
		return
	}
	sem := make(chan struct{}, finishParallel)
	var wg sync.WaitGroup
	for _, j := range jobs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			fn(j)
		})
	}
	wg.Wait()
}

// settleCtx bounds the store operations that record j's outcome: they are
// retried while the store is unavailable until j's lease runs out (after
// that another worker may take the action over anyway), also during
// shutdown, but not past its grace (work ends then): a stop while the
// store is down must not wait for the lease.
func (e *Executor) settleCtx(work context.Context, j *job) (context.Context, context.CancelFunc) {
	left := e.cfg.Lease - e.cfg.Now().Sub(j.claimed)
	return context.WithTimeout(work, min(max(left, time.Second), e.cfg.Lease))
}

// settle runs op, a store write that records j's outcome. Without a
// journal it is retried while the store is unavailable, within settleCtx.
// With one, a store that cannot take it now is not waited for: keep writes
// the outcome to the journal, and settle reports it kept (with op's error).
// When the journal fails too, op is retried as without one.
func (e *Executor) settle(work context.Context, j *job, op func(context.Context) error, keep func() bool) (kept bool, err error) {
	ctx, cancel := e.settleCtx(work, j)
	defer cancel()
	if e.cfg.Journal != nil {
		err := op(ctx)
		if err == nil || !errors.Is(err, store.ErrUnavailable) {
			return false, err
		}
		if keep() {
			return true, err
		}
	}
	return false, retryStore(ctx, op)
}

// complete records j as finished, retrying while the store is unavailable
// (or keeping the outcome in the journal) so that a store outage after a
// successful call does not make the call happen again. It returns the note
// to add to the audit record, if any.
func (e *Executor) complete(work context.Context, j *job) string {
	at := e.cfg.Now()
	kept, err := e.settle(work, j, func(ctx context.Context) error { return e.cfg.Store.Complete(ctx, j.c) },
		func() bool { return e.keep(j, keptOutcome{At: at}) })
	switch {
	case kept:
		return keptNote
	case err == nil:
		return ""
	case errors.Is(err, store.ErrLeaseLost):
		e.log.Warn("the action's lease was lost before its completion was recorded; another worker may repeat it",
			"action", j.c.ID, "kind", j.c.Kind, "group", j.c.Group)
		return "lease lost before the completion was recorded; another worker may repeat the action"
	case errors.Is(err, store.ErrActionUnknown):
		e.log.Warn("the store had forgotten the action (Redis lost its data); it was carried out from the copy held, and its completion is not recorded",
			"action", j.c.ID, "kind", j.c.Kind, "group", j.c.Group)
		return forgottenNote + "; carried out from the copy this worker held, its completion not recorded"
	default:
		e.log.Error("could not record the action's completion; it may run again after its lease", "action", j.c.ID, "err", err)
		return "completion not recorded: " + err.Error()
	}
}

// finishWithoutCall completes a job that needs no call (skipped, dry run)
// and audits result with reason.
func (e *Executor) finishWithoutCall(work context.Context, j *job, result, reason string) {
	e.renewOne(work, j)
	note := e.complete(work, j)
	if result == audit.ResultSkipped {
		e.log.Debug("action skipped", "action", j.c.ID, "kind", j.c.Kind, "group", j.c.Group, "user", j.c.User, "reason", reason)
	}
	e.record(j, result, "", joinNote(reason, note))
}

// done records the effects of a successful call (mute records, delayed
// follow-ups), then completes and audits the job. When the effects cannot
// be recorded the job is left to its lease, so that it runs again and
// records them then.
func (e *Executor) done(work context.Context, j *job, command string) {
	// A lost lease shows when completing; the effects are recorded anyway
	// (recording them twice is harmless, missing them is not).
	e.renewOne(work, j)
	now := e.cfg.Now()
	kept, err := e.settle(work, j, func(ctx context.Context) error { return e.followUps(ctx, j, now) },
		func() bool { return e.keep(j, keptOutcome{At: now, FollowUp: followUpOf(j)}) })
	if kept {
		e.log.Debug("action done; its outcome is kept in state_dir", "action", j.c.ID, "kind", j.c.Kind, "command", command)
		e.record(j, audit.ResultDone, command, keptNote)
		return
	}
	if err != nil {
		e.log.Error("the call succeeded but its follow-up could not be recorded; the action runs again after its lease",
			"action", j.c.ID, "kind", j.c.Kind, "group", j.c.Group, "err", err)
		e.record(j, audit.ResultRetry, command, "the call succeeded but its follow-up could not be recorded: "+err.Error())
		return
	}
	note := e.complete(work, j)
	e.log.Debug("action done", "action", j.c.ID, "kind", j.c.Kind, "command", command, "group", j.c.Group, "user", j.c.User)
	e.record(j, audit.ResultDone, command, note)
}

// followUps records what a successful call, made at now, leaves behind:
// the mute record, and the delayed action that ends or announces it.
// Recording them twice is harmless.
func (e *Executor) followUps(ctx context.Context, j *job, now time.Time) error {
	a := j.c.Action
	until := func() time.Time {
		if permanent(j.seconds) {
			return time.Time{} // a mute without end
		}
		return now.Add(time.Duration(j.seconds) * time.Second)
	}
	later := func(kind rules.ActionKind, suffix, user, text string, at time.Time) store.Action {
		return store.Action{
			ID: a.ID + suffix, Kind: string(kind), Group: a.Group, GroupType: a.GroupType, User: user, Text: text,
			Rule: a.Rule, EventID: a.EventID, Roles: a.Roles, NotBefore: at, Created: now,
		}
	}
	switch j.op {
	case opMute:
		end := until()
		if err := e.cfg.Store.SetMute(ctx, store.Mute{Group: a.Group, User: a.User, Until: end, Since: now, Rule: a.Rule, EventID: a.EventID}); err != nil {
			return fmt.Errorf("record the mute of %s in %s: %w", a.User, a.Group, err)
		}
		if j.announce != "" && !end.IsZero() {
			if err := e.cfg.Store.Enqueue(ctx, later(rules.ActWarn, mutelife.EndSuffix, a.User, j.announce, end)); err != nil {
				return fmt.Errorf("queue the announcement of the end of the mute of %s in %s: %w", a.User, a.Group, err)
			}
		}
	case opUnmute:
		// The delayed announcement of the mute lifted here must not run.
		if err := mutelife.MarkLiftedRecord(ctx, e.cfg.Store, a.Group, a.User, now); err != nil {
			return err
		}
		if err := e.cfg.Store.ClearMute(ctx, a.Group, a.User); err != nil {
			return fmt.Errorf("clear the mute of %s in %s: %w", a.User, a.Group, err)
		}
	case opMuteAll:
		end := until()
		mutes, err := e.cfg.Store.ListMutes(ctx, a.Group)
		if err != nil {
			return fmt.Errorf("read the mutes of %s: %w", a.Group, err)
		}
		// A longer group mute in force keeps its record; this one's end is
		// then skipped when it comes, and the longer one's end unmutes.
		if !laterGroupMute(mutes, end) {
			if err := e.cfg.Store.SetMute(ctx, store.Mute{Group: a.Group, Until: end, Since: now, Rule: a.Rule, EventID: a.EventID}); err != nil {
				return fmt.Errorf("record the mute of %s: %w", a.Group, err)
			}
		}
		if !end.IsZero() {
			// The IM server keeps a group-wide mute until it is lifted.
			if err := e.cfg.Store.Enqueue(ctx, later(rules.ActUnmuteGroup, mutelife.EndSuffix, "", j.announce, end)); err != nil {
				return fmt.Errorf("queue the end of the group mute of %s: %w", a.Group, err)
			}
		}
	case opUnmuteAll:
		// A group mute lifted before its end: its delayed unmute must not
		// run (a human may have muted the group again meanwhile).
		if err := mutelife.MarkLiftedRecord(ctx, e.cfg.Store, a.Group, "", now); err != nil {
			return err
		}
		if err := e.cfg.Store.ClearMute(ctx, a.Group, ""); err != nil {
			return fmt.Errorf("clear the mute of %s: %w", a.Group, err)
		}
		if j.announce != "" {
			if err := e.cfg.Store.Enqueue(ctx, later(rules.ActWarn, announceSuffix, "", j.announce, time.Time{})); err != nil {
				return fmt.Errorf("queue the announcement of the group unmute of %s: %w", a.Group, err)
			}
		}
	case opBan:
		if end := until(); j.announce != "" && !end.IsZero() {
			if err := e.cfg.Store.Enqueue(ctx, later(rules.ActWarn, banEndSuffix, a.User, j.announce, end)); err != nil {
				return fmt.Errorf("queue the announcement of the end of the ban of %s in %s: %w", a.User, a.Group, err)
			}
		}
	}
	return nil
}

// forgottenNote starts the audit note of an action the store no longer
// knew (store.ErrActionUnknown).
const forgottenNote = "the store had forgotten the action (Redis lost its data)"

// dead dead-letters j with reason and audits it.
func (e *Executor) dead(work context.Context, j *job, command, reason string) {
	at := e.cfg.Now()
	kept, err := e.settle(work, j, func(ctx context.Context) error { return e.cfg.Store.DeadLetter(ctx, j.c, reason) },
		func() bool { return e.keep(j, keptOutcome{At: at, Dead: reason}) })
	e.log.Warn("action dead-lettered", "action", j.c.ID, "kind", j.c.Kind, "group", j.c.Group, "user", j.c.User,
		"attempt", j.c.Attempt, "reason", reason)
	note := storeNote("dead letter", err)
	switch {
	case kept:
		note = keptNote
	case errors.Is(err, store.ErrActionUnknown):
		note = forgottenNote + "; it is not kept among the dead letters"
	}
	e.record(j, audit.ResultDead, command, joinNote(reason, note))
}

// retry puts j back, due at at, and audits it. An action the store forgot
// meanwhile is enqueued again from the copy held, due at at; when even that
// fails, it is audited as lost.
func (e *Executor) retry(work context.Context, j *job, command string, at time.Time, errText string) {
	kept, err := e.settle(work, j, func(ctx context.Context) error { return e.cfg.Store.Retry(ctx, j.c, at, errText) },
		func() bool { return e.keep(j, keptOutcome{Retry: &keptRetry{At: at, Err: errText}}) })
	e.log.Info("action failed; retrying later", "action", j.c.ID, "kind", j.c.Kind, "group", j.c.Group,
		"attempt", j.c.Attempt, "retry_at", at, "err", errText)
	if kept {
		e.record(j, audit.ResultRetry, command, joinNote(errText, keptNote))
		return
	}
	if errors.Is(err, store.ErrActionUnknown) {
		ctx, cancel := e.settleCtx(work, j)
		defer cancel()
		a := j.c.Action
		a.NotBefore = at
		err = retryStore(ctx, func(ctx context.Context) error { return e.cfg.Store.Enqueue(ctx, a) })
		if err != nil {
			e.log.Error("the store forgot an action and it could not be enqueued again: it is lost",
				"action", j.c.ID, "kind", j.c.Kind, "group", j.c.Group, "user", j.c.User, "err", err)
			e.record(j, audit.ResultLost, command, joinNote(errText, forgottenNote+"; it could not be enqueued again: "+err.Error()))
			return
		}
		e.log.Warn("the store forgot an action waiting for a retry; enqueued again from the copy held",
			"action", j.c.ID, "kind", j.c.Kind, "group", j.c.Group)
		e.record(j, audit.ResultRetry, command, joinNote(errText, forgottenNote+"; enqueued again"))
		return
	}
	e.record(j, audit.ResultRetry, command, joinNote(errText, storeNote("retry", err)))
}

// fail sorts a failed call's error and settles each of its jobs: retry
// with backoff, dead letter, or hand back when the call was interrupted. A
// batch refused as a whole (batch set, several jobs) is retried one job per
// call, so that one bad member does not sink the others.
//
// A call that may have been carried out although it failed
// (tim.MayHaveTakenEffect: sent, but no answer) is repeated only when a
// repeat does no harm. A notice is not: send_group_system_notification has
// no Random or other key by which the IM server could recognise it, so such
// a notice is dead-lettered rather than perhaps delivered twice. A message
// is retried: its Random makes the IM server drop a repeat, within 5
// minutes (see mentionTooLate).
func (e *Executor) fail(work context.Context, jobs []*job, command string, err error, batch bool) {
	class := tim.Classify(err)
	maybe := tim.MayHaveTakenEffect(err)
	switch {
	case maybe && command == tim.CommandSendGroupSystemNotification:
		reason := "the IM server may have delivered the notice (" + err.Error() + "); it is not sent again: " +
			"send_group_system_notification has no key by which the server could drop a repeat"
		each(jobs, func(j *job) { e.dead(work, j, command, reason) })
		return
	case maybe && command == tim.CommandSendGroupMsg:
		// Marked, so that a later attempt knows an earlier one may have
		// been delivered.
		err = fmt.Errorf("%s%w", maybeDelivered, err)
		if class == tim.Canceled {
			class = tim.Retryable
		}
	}
	if class == tim.Canceled {
		e.release(jobs)
		for _, j := range jobs {
			e.record(j, audit.ResultRetry, command, "interrupted by shutdown; handed back to the outbox: "+err.Error())
		}
		return
	}
	attempt := 0
	for _, j := range jobs {
		attempt = max(attempt, j.c.Attempt)
	}
	// One delay for the whole call keeps its jobs together when they come
	// back, so that the retry is one call too.
	at := e.cfg.Now().Add(e.backoff(attempt, class))
	msg := explain(command, err)
	each(jobs, func(j *job) {
		msg := msg
		if strings.Contains(j.c.LastError, maybeDelivered) && !strings.Contains(msg, maybeDelivered) {
			msg = maybeDelivered + msg // an earlier attempt may have been delivered
		}
		switch {
		case class == tim.Permanent && batch && len(jobs) > 1 && j.c.Attempt < e.cfg.MaxAttempts:
			e.retry(work, j, command, e.cfg.Now(), soloPrefix+msg)
		case class == tim.Permanent:
			e.dead(work, j, command, msg)
		case j.c.Attempt >= e.cfg.MaxAttempts:
			e.dead(work, j, command, fmt.Sprintf("gave up after %d attempts: %s", j.c.Attempt, msg))
		default:
			e.retry(work, j, command, at, msg)
		}
	})
}

// maybeDelivered marks the recorded error of a message whose call may have
// been carried out although it failed.
const maybeDelivered = "may have been delivered: "

// mentionWindow is how long after an action could first have been sent a
// repeat of its message is still safely dropped by the IM server, which
// recognises repeats "within five minutes"; a minute is kept in hand.
const mentionWindow = 4 * time.Minute

// mentionTooLate reports why j, a message, must not be sent again: an
// earlier attempt may have been delivered (its call failed without an
// answer, or its worker's lease ran out without a recorded outcome), and
// the IM server would no longer recognise the repeat. It returns "" when
// the message may be sent.
func mentionTooLate(j *job, now time.Time) string {
	if j.op != opMention || j.c.Attempt <= 1 {
		return ""
	}
	if !strings.Contains(j.c.LastError, maybeDelivered) && j.c.LastError != "" {
		return "" // every earlier attempt was answered: none was delivered
	}
	first := j.c.Created
	if j.c.NotBefore.After(first) {
		first = j.c.NotBefore
	}
	if now.Sub(first) < mentionWindow {
		return ""
	}
	return fmt.Sprintf("an earlier attempt may have delivered the message and %v have passed since it could first be sent: "+
		"the IM server drops a repeat (same Random) only within 5 minutes, so it is not sent again", now.Sub(first).Round(time.Second))
}

// explain adds to a refusal what the operator can do about it.
func explain(command string, err error) string {
	msg := err.Error()
	if tim.Code(err) == tim.CodeNoPermission && (command == tim.CommandBanGroupMember || command == tim.CommandUnbanGroupMember) {
		msg += " (banning members of AVChatRoom groups, which a kick there becomes, needs the IM Ultimate edition and " +
			"\"Audio-video group member banning\" switched on in the IM console under Group configuration > Group feature configuration)"
	}
	return msg
}

// release hands jobs that were not started back to the outbox.
func (e *Executor) release(jobs []*job) {
	if len(jobs) == 0 {
		return
	}
	cs := make([]store.Claimed, len(jobs))
	for i, j := range jobs {
		cs[i] = j.c
	}
	ctx, cancel := bounded(context.Background())
	defer cancel()
	if err := e.cfg.Store.Release(ctx, cs...); err != nil {
		e.log.Warn("could not hand actions back; they are due again when their lease ends", "actions", len(cs), "err", err)
		return
	}
	// Release skips actions the store no longer knows (Redis lost its
	// data): enqueueing the copies held adds those back and leaves the
	// others, which the store knows, as they are.
	as := make([]store.Action, len(cs))
	for i, c := range cs {
		as[i] = c.Action
	}
	if err := e.cfg.Store.Enqueue(ctx, as...); err != nil {
		e.log.Warn("could not make sure the actions handed back are still in the outbox", "actions", len(cs), "err", err)
	}
	e.log.Info("handed actions back to the outbox", "actions", len(cs))
}

func storeNote(op string, err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, store.ErrLeaseLost):
		return "lease lost; another worker has the action"
	}
	return op + " not recorded: " + err.Error()
}

func joinNote(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}
