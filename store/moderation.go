package store

import (
	"context"
	"errors"
	"time"
)

// ErrNoDeadLetter is returned by ReviveDead and DismissDead when no dead
// letter has that id (it was revived, dismissed or dropped by the
// retention meanwhile).
var ErrNoDeadLetter = errors.New("no such dead letter")

// Moderation is what moderators change by hand, from the console: dead
// letters retried or dismissed, strikes cleared.
type Moderation interface {
	// ReviveDead puts a dead letter back among the waiting actions, due at
	// now, with its attempts counted from zero again and its reason
	// forgotten.
	ReviveDead(ctx context.Context, id string, now time.Time) error
	// DismissDead drops a dead letter with its data.
	DismissDead(ctx context.Context, id string) error
	// ClearStrikes forgets every strike of user in group.
	ClearStrikes(ctx context.Context, group, user string) error
}
