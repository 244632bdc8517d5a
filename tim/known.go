package tim

// KnownCommand reports whether command is a callback command timguard
// knows. Metrics label the others "other", so that an unauthenticated caller
// cannot grow a label's values.
func KnownCommand(command string) bool {
	switch command {
	case CmdBeforeApplyJoinGroup, CmdBeforeInviteJoinGroup, CmdAfterNewMemberJoin,
		CmdAfterMemberExit, CmdBeforeSendMsg, CmdAfterSendMsg, CmdAfterGroupDestroyed,
		CmdAfterMemberFieldChanged, CmdAfterChangeGroupOwner, CmdRequestOverLimit:
		return true
	}
	return false
}
