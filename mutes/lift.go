// Package mutes owns the lifecycle of mutes beyond the call that sets
// them: the marks that tell a mute lifted before its end, the check that a
// delayed unmute or announcement still belongs to a mute in force, and the
// admin API's lifting of member and group-wide mutes at once.
package mutes

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/tim"
)

// LiftClient is what Lifter calls.
type LiftClient interface {
	ForbidSendMsg(ctx context.Context, req tim.ForbidSendMsgRequest) error
	ModifyGroupBaseInfo(ctx context.Context, req tim.ModifyGroupBaseInfoRequest) error
}

// LiftStore is what Lifter reads and marks in the store.
type LiftStore interface {
	Claimer
	ListMutes(ctx context.Context, group string) ([]store.Mute, error)
}

// Lifter lifts mutes at once, for the admin API. Its calls go through the
// same client, and so the same shared REST budget, as the executor's. A
// recorded mute it lifts is marked as lifted early, so the delayed unmute or
// announcement at its end is skipped.
type Lifter struct {
	Client LiftClient
	Store  LiftStore
	Now    func() time.Time
	// Logger hears about a lift whose mark could not be set; the lift
	// itself worked, so it is not an error of the call.
	Logger *slog.Logger
}

// Unmute lifts a member's mute (forbid_send_msg with MuteTime 0).
func (l Lifter) Unmute(ctx context.Context, group, user string) error {
	if err := l.Client.ForbidSendMsg(ctx, tim.ForbidSendMsgRequest{GroupID: group, Members: []string{user}, MuteTime: 0}); err != nil {
		return fmt.Errorf("unmute %s in %s: %w", user, group, err)
	}
	l.mark(ctx, group, user)
	return nil
}

// UnmuteGroup switches a group-wide mute off.
func (l Lifter) UnmuteGroup(ctx context.Context, group string) error {
	if err := l.Client.ModifyGroupBaseInfo(ctx, tim.ModifyGroupBaseInfoRequest{GroupID: group, MuteAllMember: tim.MuteAllOff}); err != nil {
		return fmt.Errorf("unmute group %s: %w", group, err)
	}
	l.mark(ctx, group, "")
	return nil
}

// mark sets the early-lift mark of the recorded mute of user in group. A
// failure is logged: the mute is lifted, only its delayed end (a no-op unmute
// and perhaps a late announcement) will still run.
func (l Lifter) mark(ctx context.Context, group, user string) {
	if l.Store == nil {
		return
	}
	now := time.Now()
	if l.Now != nil {
		now = l.Now()
	}
	if err := MarkLiftedRecord(ctx, l.Store, group, user, now); err != nil && l.Logger != nil {
		l.Logger.Warn("mute lifted, but not marked as lifted early: its delayed end will still run",
			"group", group, "user", user, "err", err)
	}
}
