package harness

import (
	"context"
	"fmt"
	"time"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/tim/timtest"
)

// OutboxStatter reads the outbox's size; *redis.Store (store/redis) implements it.
type OutboxStatter interface {
	Stats(ctx context.Context, now time.Time) (store.OutboxStats, error)
}

// AddGroups creates the mix's groups at the fake IM server: Public groups
// with an owner and an admin. The users the mix sends as are not members;
// the fake mutes and removes non-members as the real server does.
func AddGroups(im *timtest.Server, m *Mix) {
	for i, id := range m.GroupIDs() {
		im.AddGroup(timtest.Group{
			ID: id, Type: "Public",
			Owner:  fmt.Sprintf("owner%d", i),
			Admins: []string{fmt.Sprintf("admin%d", i)},
		})
	}
}

// Settle waits until the outbox has nothing due or claimed (actions
// delayed on purpose, such as the end of a group mute, may wait) and, when
// auditPaths are given, every action decided in those audit logs has a
// final record (done, dead, skipped, dry_run or lost); both twice in a row, a
// poll apart. It returns an error saying what is left when within passes.
func Settle(ctx context.Context, st OutboxStatter, auditPaths []string, within time.Duration) error {
	return SettleDecidedIn(ctx, st, auditPaths, auditPaths, within)
}

// SettleDecidedIn is Settle where only the actions decided in the audit
// logs deciders (a subset of auditPaths) must have a final record, found in
// any of auditPaths: the last records of a process killed with SIGKILL may
// be lost with it.
func SettleDecidedIn(ctx context.Context, st OutboxStatter, auditPaths, deciders []string, within time.Duration) error {
	deadline := time.Now().Add(within)
	const poll = 250 * time.Millisecond
	calm := 0
	var last string
	for {
		left, err := pending(ctx, st, auditPaths, deciders)
		switch {
		case err != nil:
			calm, last = 0, err.Error()
		case left != "":
			calm, last = 0, left
		default:
			calm++
			if calm == 2 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not settled within %v: %s", within, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
	}
}

// pending says what is left to do, "" when nothing.
func pending(ctx context.Context, st OutboxStatter, auditPaths, deciders []string) (string, error) {
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	stats, err := st.Stats(sctx, time.Now())
	cancel()
	if err != nil {
		return "", fmt.Errorf("outbox stats: %w", err)
	}
	if stats.Due > 0 || stats.Claimed > 0 {
		return fmt.Sprintf("outbox: %d due, %d claimed", stats.Due, stats.Claimed), nil
	}
	if len(auditPaths) == 0 {
		return "", nil
	}
	recs, err := ReadAudit(auditPaths...)
	if err != nil {
		return "", err
	}
	decisions, err := ReadAudit(deciders...)
	if err != nil {
		return "", err
	}
	decided := map[string]bool{}
	for _, r := range decisions {
		if r.Kind != audit.KindDecision {
			continue
		}
		for _, a := range r.Actions {
			if a.ID != "" && !a.Shadow {
				decided[a.ID] = true
			}
		}
	}
	for _, r := range recs {
		if r.Kind != audit.KindAction || len(r.Actions) == 0 {
			continue
		}
		switch r.Result {
		case audit.ResultDone, audit.ResultDead, audit.ResultSkipped, audit.ResultDryRun, audit.ResultLost:
			delete(decided, r.Actions[0].ID)
		}
	}
	if len(decided) > 0 {
		for id := range decided {
			return fmt.Sprintf("%d decided actions have no final audit record yet (e.g. %s)", len(decided), id), nil
		}
	}
	return "", nil
}
