package memory

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/store/internal/storeutil"
)

// ReviveDead puts a dead letter back among the waiting actions, due at now,
// with its attempts counted from zero again.
func (s *Store) ReviveDead(ctx context.Context, id string, now time.Time) error {
	if _, err := s.begin(ctx, "revive dead"); err != nil {
		return err
	}
	defer s.mu.Unlock()
	e, ok := s.dead[id]
	if !ok {
		return fmt.Errorf("memory revive %q: %w", id, store.ErrNoDeadLetter)
	}
	s.dropDead(e)
	due := storeutil.Ms(now)
	s.items[id] = &entry{action: e.action, state: stateReady, score: due, due: due}
	return nil
}

// DismissDead drops a dead letter.
func (s *Store) DismissDead(ctx context.Context, id string) error {
	if _, err := s.begin(ctx, "dismiss dead"); err != nil {
		return err
	}
	defer s.mu.Unlock()
	e, ok := s.dead[id]
	if !ok {
		return fmt.Errorf("memory dismiss %q: %w", id, store.ErrNoDeadLetter)
	}
	s.dropDead(e)
	return nil
}

// dropDead removes e from the dead letters.
func (s *Store) dropDead(e *entry) {
	delete(s.dead, e.action.ID)
	if i, ok := slices.BinarySearchFunc(s.deadList, e, byScore); ok {
		s.deadList = slices.Delete(s.deadList, i, i+1)
	}
}

// ClearStrikes forgets user's strikes in group.
func (s *Store) ClearStrikes(ctx context.Context, group, user string) error {
	if _, err := s.begin(ctx, "clear strikes"); err != nil {
		return err
	}
	defer s.mu.Unlock()
	delete(s.strikes, strikeKey{group, user})
	return nil
}
