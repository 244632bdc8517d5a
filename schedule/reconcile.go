package schedule

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/mutes"
	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/tim"
)

// reconcileGrace keeps reconciliation away from mutes that end or began
// within it: the IM server's clock may end a mute a little before timguard's
// record does, and a mute just applied may not be listed yet.
const reconcileGrace = time.Minute

// reconcile compares the mutes timguard recorded with the IM server's, on
// one replica per period. A recorded mute the IM server no longer has was
// lifted early: it is marked lifted, cleared and audited; it is never
// applied again.
func (s *Scheduler) reconcile(ctx context.Context) {
	if s.cfg.Client == nil {
		return
	}
	now := s.cfg.Now()
	key := "reconcile|" + now.Truncate(s.cfg.ReconcileEvery).UTC().Format(time.RFC3339Nano)
	won, err := s.cfg.Store.ClaimOnce(ctx, key, s.cfg.ReconcileEvery)
	switch {
	case err != nil:
		s.log.Warn("reconciliation skipped: cannot claim it", "err", err)
		s.observe(ReconcileJob, ResultFailed)
		return
	case !won:
		s.observe(ReconcileJob, ResultClaimedElsewhere)
		return
	}
	if err := s.reconcileAll(ctx, now); err != nil {
		s.log.Warn("reconciliation incomplete", "err", err)
		s.observe(ReconcileJob, ResultFailed)
		return
	}
	s.observe(ReconcileJob, audit.ResultDone)
}

// reconcileAll checks every group with a recorded mute. It goes on past a
// group it cannot check and returns the last such error.
func (s *Scheduler) reconcileAll(ctx context.Context, now time.Time) error {
	groups, err := s.cfg.Store.MutedGroups(ctx)
	if err != nil {
		return fmt.Errorf("list muted groups: %w", err)
	}
	var lastErr error
	var wide []store.Mute
	for _, g := range groups {
		mutes, err := s.cfg.Store.ListMutes(ctx, g)
		if err != nil {
			lastErr = fmt.Errorf("list the mutes of %s: %w", g, err)
			continue
		}
		var members []store.Mute
		for _, m := range mutes {
			if !checkable(m, now) {
				continue
			}
			if m.User == "" {
				wide = append(wide, m)
			} else {
				members = append(members, m)
			}
		}
		if len(members) > 0 {
			if err := s.reconcileMembers(ctx, g, members, now); err != nil {
				lastErr = err
			}
		}
	}
	for chunk := range slices.Chunk(wide, tim.MaxGroupInfoIDs) {
		if err := s.reconcileGroups(ctx, chunk, now); err != nil {
			lastErr = err
		}
	}
	return lastErr
}

// checkable reports whether m is far enough from its start and its end to
// be compared with the IM server.
func checkable(m store.Mute, now time.Time) bool {
	if now.Sub(m.Since) < reconcileGrace {
		return false
	}
	return m.Until.IsZero() || m.Until.After(now.Add(reconcileGrace))
}

// reconcileMembers finds the recorded member mutes of group the IM server
// no longer lists.
func (s *Scheduler) reconcileMembers(ctx context.Context, group string, recorded []store.Mute, now time.Time) error {
	list, err := s.cfg.Client.GetGroupMutedAccount(ctx, group, "")
	if err != nil {
		return fmt.Errorf("get the muted members of %s: %w", group, err)
	}
	answered := s.answeredAt(now)
	muted := make(map[string]bool, len(list))
	for _, m := range list {
		muted[m.Account] = true
	}
	for _, m := range recorded {
		if !muted[m.User] && checkable(m, answered) {
			s.liftedEarly(ctx, m, answered, "the IM server no longer lists the member as muted")
		}
	}
	return nil
}

// reconcileGroups finds the recorded group-wide mutes the IM server has
// switched off.
func (s *Scheduler) reconcileGroups(ctx context.Context, recorded []store.Mute, now time.Time) error {
	ids := make([]string, len(recorded))
	for i, m := range recorded {
		ids[i] = m.Group
	}
	infos, err := s.cfg.Client.GetGroupInfo(ctx, ids)
	if err != nil {
		return fmt.Errorf("get the info of %d muted groups: %w", len(ids), err)
	}
	answered := s.answeredAt(now)
	byID := make(map[string]tim.GroupInfo, len(infos))
	for _, gi := range infos {
		byID[gi.GroupID] = gi
	}
	for _, m := range recorded {
		gi, ok := byID[m.Group]
		switch {
		case !ok:
			s.log.Debug("reconciliation: the IM server did not describe a muted group", "group", m.Group)
		case gi.Err() != nil:
			s.log.Debug("reconciliation: muted group not checked", "group", m.Group, "err", gi.Err())
		case gi.MuteAllMember == tim.MuteAllOff && checkable(m, answered):
			s.liftedEarly(ctx, m, answered, "the IM server says MuteAllMember is Off")
		}
	}
	return nil
}

// answeredAt is the time the IM server's answer is judged at: now again,
// since the pass began at start. A mute is judged against this time, not
// the pass's start: when the pass stalls (a slow IM server, a busy machine)
// a mute may have ended, and timguard's own unmute lifted it, between the
// start and the answer; judged at the start it would look lifted early and
// its announcement would be skipped.
func (s *Scheduler) answeredAt(start time.Time) time.Time {
	if now := s.cfg.Now(); now.After(start) {
		return now
	}
	return start
}

// liftedEarly records that m was lifted outside timguard: the mark first
// (so its delayed unmute or announcement is skipped), then the record goes.
// A failure leaves the record for the next reconciliation.
func (s *Scheduler) liftedEarly(ctx context.Context, m store.Mute, now time.Time, why string) {
	log := s.log.With("group", m.Group, "user", m.User)
	if err := mutes.MarkLifted(ctx, s.cfg.Store, m, now); err != nil {
		log.Warn("reconciliation: cannot record an early lift", "err", err)
		return
	}
	if err := s.cfg.Store.ClearMute(ctx, m.Group, m.User); err != nil {
		log.Warn("reconciliation: cannot clear a mute lifted early", "err", err)
		return
	}
	until := "without end"
	if !m.Until.IsZero() {
		until = "until " + m.Until.UTC().Format(time.RFC3339)
	}
	rec := &audit.Record{
		Time: now, Kind: audit.KindSchedule, Command: ReconcileJob, EventID: m.EventID,
		Group: m.Group, User: m.User, Result: ResultLiftedEarly,
		Error: fmt.Sprintf("muted %s; %s: lifted early outside timguard, not applied again", until, why),
	}
	if m.Rule != "" {
		rec.Rules = []string{m.Rule}
	}
	s.record(rec)
	s.observe(ReconcileJob, ResultLiftedEarly)
	log.Info("a recorded mute was lifted early outside timguard", "until", m.Until, "rule", m.Rule)
}
