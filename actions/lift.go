package actions

import (
	"context"
	"fmt"
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
}

// Unmute lifts a member's mute (forbid_send_msg with MuteTime 0).
func (l Lifter) Unmute(ctx context.Context, group, user string) error {
	if err := l.Client.ForbidSendMsg(ctx, tim.ForbidSendMsgRequest{GroupID: group, Members: []string{user}, MuteTime: 0}); err != nil {
		return fmt.Errorf("unmute %s in %s: %w", user, group, err)
	}
	return l.mark(ctx, group, user)
}

// UnmuteGroup switches a group-wide mute off.
func (l Lifter) UnmuteGroup(ctx context.Context, group string) error {
	if err := l.Client.ModifyGroupBaseInfo(ctx, tim.ModifyGroupBaseInfoRequest{GroupID: group, MuteAllMember: tim.MuteAllOff}); err != nil {
		return fmt.Errorf("unmute group %s: %w", group, err)
	}
	return l.mark(ctx, group, "")
}

// mark sets the early-lift mark of the recorded mute of user in group.
func (l Lifter) mark(ctx context.Context, group, user string) error {
	if l.Store == nil {
		return nil
	}
	now := time.Now()
	if l.Now != nil {
		now = l.Now()
	}
	mutes, err := l.Store.ListMutes(ctx, group)
	if err != nil {
		return fmt.Errorf("lifted, but the mute record of %q in %s was not read: %w", user, group, err)
	}
	for _, m := range mutes {
		if m.User == user && m.Until.After(now) {
			return MarkLifted(ctx, l.Store, m, now)
		}
	}
	return nil
}
