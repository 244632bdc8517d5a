package actions

import (
	"context"
	"fmt"

	"github.com/timguard/timguard/tim"
)

// LiftClient is what Lifter calls.
type LiftClient interface {
	ForbidSendMsg(ctx context.Context, req tim.ForbidSendMsgRequest) error
	ModifyGroupBaseInfo(ctx context.Context, req tim.ModifyGroupBaseInfoRequest) error
}

// Lifter lifts mutes at once, for the admin API. Its calls go through the
// same client, and so the same shared REST budget, as the executor's.
type Lifter struct {
	Client LiftClient
}

// Unmute lifts a member's mute (forbid_send_msg with MuteTime 0).
func (l Lifter) Unmute(ctx context.Context, group, user string) error {
	if err := l.Client.ForbidSendMsg(ctx, tim.ForbidSendMsgRequest{GroupID: group, Members: []string{user}, MuteTime: 0}); err != nil {
		return fmt.Errorf("unmute %s in %s: %w", user, group, err)
	}
	return nil
}

// UnmuteGroup switches a group-wide mute off.
func (l Lifter) UnmuteGroup(ctx context.Context, group string) error {
	if err := l.Client.ModifyGroupBaseInfo(ctx, tim.ModifyGroupBaseInfoRequest{GroupID: group, MuteAllMember: tim.MuteAllOff}); err != nil {
		return fmt.Errorf("unmute group %s: %w", group, err)
	}
	return nil
}
