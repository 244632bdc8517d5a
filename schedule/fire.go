package schedule

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/store"
)

// claimMargin is how long a firing's claim outlives the catch-up window, so
// that a replica starting later never runs a firing another one ran.
const claimMargin = time.Hour

// storeRetryFor bounds how long a firing retries a store that is
// unavailable before it gives up.
const storeRetryFor = 30 * time.Second

// FiringID names one firing of a schedule: the claim key, the event id of
// its audit record and actions, and the start of its actions' ids.
func FiringID(name string, at time.Time) string {
	return "schedule|" + name + "|" + at.UTC().Format(time.RFC3339)
}

// catchUp runs, for each schedule, its most recent firing within CatchUp
// when no replica claimed it: it was missed while every replica was down.
func (s *Scheduler) catchUp(ctx context.Context, r *runner) {
	now := s.cfg.Now()
	for _, e := range r.entries {
		if at, ok := lastFiring(e.sched, now, s.cfg.CatchUp); ok && ctx.Err() == nil {
			s.fire(ctx, e.sc, at, true)
		}
	}
}

// fire runs the firing of sc at instant at on this replica if it wins the
// claim. late says it is a catch-up after a restart.
func (s *Scheduler) fire(ctx context.Context, sc *rules.Schedule, at time.Time, late bool) {
	now := s.cfg.Now()
	id := FiringID(sc.Name, at)
	log := s.log.With("schedule", sc.Name, "at", at.UTC().Format(time.RFC3339))
	var won bool
	err := s.retryStore(ctx, func(ctx context.Context) error {
		var err error
		won, err = s.cfg.Store.ClaimOnce(ctx, id, s.cfg.CatchUp+claimMargin)
		return err
	})
	if err != nil {
		log.Error("schedule firing not run: cannot claim it", "err", err)
		s.record(&audit.Record{Time: now, Kind: audit.KindSchedule, Command: "schedule", EventID: id,
			Rules: []string{sc.Name}, Result: ResultFailed, Error: "claim: " + err.Error()})
		s.observe(sc.Name, ResultFailed)
		return
	}
	if !won {
		// Another replica runs it; auditing that on every replica would
		// only add noise.
		log.Debug("schedule firing claimed by another replica")
		s.observe(sc.Name, ResultClaimedElsewhere)
		return
	}

	acts, notes := s.plan(sc, id, at, now)
	rec := &audit.Record{Time: now, Kind: audit.KindSchedule, Command: "schedule", EventID: id,
		Rules: []string{sc.Name}, Result: audit.ResultDone}
	for _, a := range acts {
		rec.Actions = append(rec.Actions, audit.ActionRef{ID: a.ID, Kind: a.Kind, Group: a.Group, Seconds: a.Seconds, Text: a.Text, Rule: sc.Name})
	}
	var failures []string
	if len(acts) > 0 {
		if err := s.retryStore(ctx, func(ctx context.Context) error { return s.cfg.Store.Enqueue(ctx, acts...) }); err != nil {
			failures = append(failures, fmt.Sprintf("enqueue %d actions: %v", len(acts), err))
		}
	}
	if m := sc.Mode; m != nil {
		until := at.Add(m.For)
		rec.Actions = append(rec.Actions, audit.ActionRef{Kind: "mode", Text: m.Name, Seconds: int64(m.For / time.Second), Rule: sc.Name})
		if !until.After(now) {
			notes = append(notes, fmt.Sprintf("mode %s would have ended at %s; not switched on", m.Name, until.UTC().Format(time.RFC3339)))
		} else if err := s.retryStore(ctx, func(ctx context.Context) error { return s.cfg.Store.SetMode(ctx, m.Name, until) }); err != nil {
			failures = append(failures, fmt.Sprintf("switch mode %s on: %v", m.Name, err))
		}
	}
	if late {
		notes = append([]string{fmt.Sprintf("caught up %s late: no replica ran it", now.Sub(at).Round(time.Second))}, notes...)
	}
	result := audit.ResultDone
	if late {
		result = ResultCaughtUp
	}
	if len(failures) > 0 {
		rec.Result, result = ResultFailed, ResultFailed
		notes = append(notes, failures...)
		log.Error("schedule firing failed", "errors", strings.Join(failures, "; "))
	} else {
		log.Info("schedule fired", "actions", len(acts), "late", late)
	}
	rec.Error = strings.Join(notes, "; ")
	s.record(rec)
	s.observe(sc.Name, result)
}

// plan builds the outbox actions of one firing: each action for each group,
// with ids that name the firing, so that enqueueing twice keeps one. A
// mute_group that runs late keeps its original end.
func (s *Scheduler) plan(sc *rules.Schedule, id string, at, now time.Time) ([]store.Action, []string) {
	var out []store.Action
	var notes []string
	for _, g := range sc.Groups {
		for i, a := range sc.Actions {
			r, err := resolve(a)
			if err != nil {
				notes = append(notes, fmt.Sprintf("%s in %s: %v", a.Kind, g, err))
				continue
			}
			sa := store.Action{
				ID: id + "|" + g + "|" + strconv.Itoa(i), Kind: r.Kind, Group: g,
				Seconds: r.Seconds, Text: r.Text, Rule: sc.Name, EventID: id, Created: now,
			}
			if r.Announce != "" {
				sa.Text = r.Announce
			}
			if r.Kind == rules.ActMuteGroup && r.Seconds < rules.PermanentSeconds {
				left := at.Add(time.Duration(r.Seconds) * time.Second).Sub(now)
				if left < time.Second {
					notes = append(notes, fmt.Sprintf("mute_group of %s would have ended at %s; not done",
						g, at.Add(time.Duration(r.Seconds)*time.Second).UTC().Format(time.RFC3339)))
					continue
				}
				sa.Seconds = int64((left + time.Second - 1) / time.Second)
			}
			out = append(out, sa)
		}
	}
	return out, notes
}

// resolve works out a schedule action's values. Schedule durations are
// literals (the rules refuse expressions there), so no environment is read.
func resolve(a *rules.Action) (r rules.Resolved, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("cannot be worked out without an event: %v", p)
		}
	}()
	return a.Resolve(nil)
}

// retryStore runs op with its own bounded context until it succeeds, fails
// for another reason than the store being unavailable, storeRetryFor has
// passed, or ctx is done.
func (s *Scheduler) retryStore(ctx context.Context, op func(context.Context) error) error {
	deadline := time.Now().Add(storeRetryFor)
	wait := 250 * time.Millisecond
	for {
		octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		err := op(octx)
		cancel()
		if err == nil || !errors.Is(err, store.ErrUnavailable) || time.Now().Add(wait).After(deadline) {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, 4*time.Second)
	}
}

func (s *Scheduler) observe(job, result string) {
	if s.cfg.Observe != nil {
		s.cfg.Observe(job, result)
	}
}

// record writes one audit record of kind schedule.
func (s *Scheduler) record(rec *audit.Record) {
	rec.Actor = s.cfg.Replica
	line, err := audit.Encode(rec)
	if err != nil {
		s.log.Error("encode schedule audit record", "err", err)
		return
	}
	s.cfg.Audit.WriteLine(line)
}
