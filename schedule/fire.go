package schedule

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/timguard/timguard/actions"
	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/store"
)

// claimMargin is how long a firing's claim outlives the catch-up window, so
// that a replica starting later never runs a firing another one ran.
const claimMargin = time.Hour

// storeRetryFor bounds how long a firing retries a store that is
// unavailable before it is left to the retries every retryMissedEvery.
const storeRetryFor = 30 * time.Second

// storeOpTimeout bounds each store call of a firing.
const storeOpTimeout = 5 * time.Second

// retryMissedEvery is how often a replica tries again the firings it could
// not run because the store was unavailable.
const retryMissedEvery = time.Minute

// FiringID names one firing of a schedule: the claim key, the event id of
// its audit record and actions, and the start of its actions' ids.
func FiringID(name string, at time.Time) string {
	return "schedule|" + name + "|" + at.UTC().Format(time.RFC3339)
}

// how says why a firing runs.
type how int

const (
	onTime    how = iota // the cron runner fired it
	caughtUp             // at start: no replica ran it while all were down
	retryMiss            // this replica could not run it: the store was unavailable
)

// missed is a firing this replica could not run because the store was
// unavailable. It is tried again every retryMissedEvery until CatchUp has
// passed since its instant; the claim keeps it once across replicas.
type missed struct {
	name string
	at   time.Time
	// claimed says this replica holds the firing's claim: only its
	// actions and mode are left to write (both idempotent).
	claimed bool
}

// catchUp runs, for each schedule, its most recent firing within CatchUp
// when no replica claimed it: it was missed while every replica was down.
func (s *Scheduler) catchUp(ctx context.Context, r *runner) {
	now := s.cfg.Now()
	for _, e := range r.entries {
		if at, ok := lastFiring(e.sched, now, s.cfg.CatchUp); ok && ctx.Err() == nil {
			s.fire(ctx, e.sc, at, caughtUp)
		}
	}
}

// retryMissed tries again, oldest first, the firings this replica could not
// run because the store was unavailable, and gives up those older than
// CatchUp or that r's schedules no longer fire.
func (s *Scheduler) retryMissed(ctx context.Context, r *runner) {
	s.mu.Lock()
	list := slices.Collect(maps.Values(s.missed))
	s.mu.Unlock()
	slices.SortFunc(list, func(a, b missed) int {
		return cmp.Or(a.at.Compare(b.at), cmp.Compare(a.name, b.name))
	})
	now := s.cfg.Now()
	for _, m := range list {
		if ctx.Err() != nil {
			return
		}
		id := FiringID(m.name, m.at)
		i := slices.IndexFunc(r.entries, func(e entry) bool {
			return e.sc.Name == m.name && e.sched.Next(m.at.Add(-time.Second)).Equal(m.at)
		})
		switch {
		case now.Sub(m.at) > s.cfg.CatchUp:
			s.forget(id)
			s.log.Error("schedule firing not run: the store was unavailable until catch_up had passed",
				"schedule", m.name, "at", m.at.UTC().Format(time.RFC3339), "catch_up", s.cfg.CatchUp)
			s.record(&audit.Record{Time: now, Kind: audit.KindSchedule, Command: "schedule", EventID: id,
				Rules: []string{m.name}, Result: ResultFailed,
				Error: fmt.Sprintf("not run: the store was unavailable until catch_up (%v) had passed", s.cfg.CatchUp)})
		case i < 0:
			s.forget(id)
			s.log.Info("missed schedule firing dropped: the reloaded rules no longer fire it",
				"schedule", m.name, "at", m.at.UTC().Format(time.RFC3339))
		default:
			s.fire(ctx, r.entries[i].sc, m.at, retryMiss)
		}
	}
}

// begin marks the firing id as running on this replica. It reports false
// when it already runs (the cron runner and a retry may meet), and whether
// this replica already holds its claim.
func (s *Scheduler) begin(id string) (claimed, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running[id] {
		return false, false
	}
	s.running[id] = true
	return s.missed[id].claimed, true
}

// end marks the firing id as no longer running.
func (s *Scheduler) end(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.running, id)
}

// miss keeps the firing for a retry.
func (s *Scheduler) miss(id string, m missed) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.missed[id] = m
}

// forget drops the firing from the retries.
func (s *Scheduler) forget(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.missed, id)
}

// fire runs the firing of sc at instant at on this replica if it wins the
// claim. When the store is unavailable, the firing is kept and tried again
// every retryMissedEvery while within CatchUp.
func (s *Scheduler) fire(ctx context.Context, sc *rules.Schedule, at time.Time, why how) {
	id := FiringID(sc.Name, at)
	claimed, ok := s.begin(id)
	if !ok {
		return
	}
	defer s.end(id)
	now := s.cfg.Now()
	log := s.log.With("schedule", sc.Name, "at", at.UTC().Format(time.RFC3339))
	// A firing's first run retries the store for storeRetryFor; a retry of
	// a missed one tries each call once and leaves the rest to the next.
	try := s.retryStore
	if why == retryMiss {
		try = s.tryOnce
	}
	if !claimed {
		var won bool
		err := try(ctx, func(ctx context.Context) error {
			var err error
			won, err = s.cfg.Store.ClaimOnce(ctx, id, s.cfg.CatchUp+claimMargin)
			return err
		})
		switch {
		case err != nil && errors.Is(err, store.ErrUnavailable) && why == retryMiss:
			log.Debug("missed schedule firing not run yet: the store is still unavailable", "err", err)
			return
		case err != nil:
			msg := "claim: " + err.Error()
			if errors.Is(err, store.ErrUnavailable) {
				s.miss(id, missed{name: sc.Name, at: at})
				msg += s.retryNote()
			} else {
				s.forget(id)
			}
			log.Error("schedule firing not run: cannot claim it", "err", err)
			s.record(&audit.Record{Time: now, Kind: audit.KindSchedule, Command: "schedule", EventID: id,
				Rules: []string{sc.Name}, Result: ResultFailed, Error: msg})
			s.observe(sc.Name, ResultFailed)
			return
		case !won:
			// Another replica runs it; auditing that on every replica would
			// only add noise.
			s.forget(id)
			log.Debug("schedule firing claimed by another replica")
			s.observe(sc.Name, ResultClaimedElsewhere)
			return
		}
	}

	acts, notes := s.plan(sc, id, at, now)
	rec := &audit.Record{Time: now, Kind: audit.KindSchedule, Command: "schedule", EventID: id,
		Rules: []string{sc.Name}, Result: audit.ResultDone}
	for _, a := range acts {
		rec.Actions = append(rec.Actions, audit.ActionRef{ID: a.ID, Kind: a.Kind, Group: a.Group, Seconds: a.Seconds, Text: a.Text, Rule: sc.Name})
	}
	var failures []string
	down := true // every failure is the store being unavailable
	failed := func(what string, err error) {
		failures = append(failures, fmt.Sprintf("%s: %v", what, err))
		down = down && errors.Is(err, store.ErrUnavailable)
	}
	if len(acts) > 0 {
		if err := try(ctx, func(ctx context.Context) error { return s.cfg.Store.Enqueue(ctx, acts...) }); err != nil {
			failed(fmt.Sprintf("enqueue %d actions", len(acts)), err)
		}
	}
	if m := sc.Mode; m != nil {
		until := at.Add(m.For)
		rec.Actions = append(rec.Actions, audit.ActionRef{Kind: "mode", Text: m.Name, Seconds: int64(m.For / time.Second), Rule: sc.Name})
		if !until.After(now) {
			notes = append(notes, fmt.Sprintf("mode %s would have ended at %s; not switched on", m.Name, until.UTC().Format(time.RFC3339)))
		} else if err := try(ctx, func(ctx context.Context) error { return s.cfg.Store.SetMode(ctx, m.Name, until) }); err != nil {
			failed("switch mode "+m.Name+" on", err)
		}
	}
	if len(failures) > 0 && down {
		// This replica holds the claim: it writes the rest later.
		s.miss(id, missed{name: sc.Name, at: at, claimed: true})
		if why == retryMiss {
			log.Debug("missed schedule firing not finished yet: the store is still unavailable", "errors", strings.Join(failures, "; "))
			return
		}
		failures[len(failures)-1] += s.retryNote()
	} else {
		s.forget(id)
	}
	switch why {
	case caughtUp:
		notes = append([]string{fmt.Sprintf("caught up %s late: no replica ran it", now.Sub(at).Round(time.Second))}, notes...)
	case retryMiss:
		notes = append([]string{fmt.Sprintf("caught up %s late: the store was unavailable", now.Sub(at).Round(time.Second))}, notes...)
	}
	result := audit.ResultDone
	if why != onTime {
		result = ResultCaughtUp
	}
	if len(failures) > 0 {
		rec.Result, result = ResultFailed, ResultFailed
		notes = append(notes, failures...)
		log.Error("schedule firing failed", "errors", strings.Join(failures, "; "))
	} else {
		log.Info("schedule fired", "actions", len(acts), "late", why != onTime)
	}
	rec.Error = strings.Join(notes, "; ")
	s.record(rec)
	s.observe(sc.Name, result)
}

// retryNote ends the audit error of a firing kept for a retry.
func (s *Scheduler) retryNote() string {
	return fmt.Sprintf("; tried again every %v while within catch_up (%v)", retryMissedEvery, s.cfg.CatchUp)
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
				ID: id + "|" + g + "|" + strconv.Itoa(i), Kind: string(r.Kind), Group: g,
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

// retryStore runs op, each attempt under its own bounded context, until it
// succeeds, fails for another reason than the store being unavailable,
// storeRetryFor has passed, or ctx is done.
func (s *Scheduler) retryStore(ctx context.Context, op func(context.Context) error) error {
	rctx, cancel := context.WithTimeout(ctx, storeRetryFor)
	defer cancel()
	return actions.RetryStore(rctx, 250*time.Millisecond, 4*time.Second, func(c context.Context) error {
		return s.tryOnce(c, op)
	})
}

// tryOnce runs op once under its own bounded context, detached from ctx's
// cancellation so that a firing under way finishes its writes at shutdown.
func (s *Scheduler) tryOnce(ctx context.Context, op func(context.Context) error) error {
	octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeOpTimeout)
	defer cancel()
	return op(octx)
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
