package rules

import "github.com/timguard/timguard/tim"

// Kind is the event kind a rule or counter applies to (`on:`).
type Kind string

// Event kinds.
const (
	JoinRequest    Kind = "join_request"    // Group.CallbackBeforeApplyJoinGroup
	Invite         Kind = "invite"          // Group.CallbackBeforeInviteJoinGroup, per invitee
	Message        Kind = "message"         // Group.CallbackBeforeSendMsg
	MessageSent    Kind = "message_sent"    // Group.CallbackAfterSendMsg
	MemberJoined   Kind = "member_joined"   // Group.CallbackAfterNewMemberJoin, per member
	MemberLeft     Kind = "member_left"     // Group.CallbackAfterMemberExit, per member
	GroupDestroyed Kind = "group_destroyed" // Group.CallbackAfterGroupDestroyed
)

// Kinds lists every kind in a stable order.
func Kinds() []Kind {
	return []Kind{JoinRequest, Invite, Message, MessageSent, MemberJoined, MemberLeft, GroupDestroyed}
}

// KindOf maps a CallbackCommand to the kind rules see; ok is false for
// commands that rules do not evaluate.
func KindOf(command string) (Kind, bool) {
	switch command {
	case tim.CmdBeforeApplyJoinGroup:
		return JoinRequest, true
	case tim.CmdBeforeInviteJoinGroup:
		return Invite, true
	case tim.CmdBeforeSendMsg:
		return Message, true
	case tim.CmdAfterSendMsg:
		return MessageSent, true
	case tim.CmdAfterNewMemberJoin:
		return MemberJoined, true
	case tim.CmdAfterMemberExit:
		return MemberLeft, true
	case tim.CmdAfterGroupDestroyed:
		return GroupDestroyed, true
	}
	return "", false
}

// Command is the CallbackCommand of kind.
func (k Kind) Command() string {
	switch k {
	case JoinRequest:
		return tim.CmdBeforeApplyJoinGroup
	case Invite:
		return tim.CmdBeforeInviteJoinGroup
	case Message:
		return tim.CmdBeforeSendMsg
	case MessageSent:
		return tim.CmdAfterSendMsg
	case MemberJoined:
		return tim.CmdAfterNewMemberJoin
	case MemberLeft:
		return tim.CmdAfterMemberExit
	case GroupDestroyed:
		return tim.CmdAfterGroupDestroyed
	}
	return ""
}

// Valid reports whether k is a known kind.
func (k Kind) Valid() bool { return k.Command() != "" }

// IsAfter reports whether the IM server ignores the reply to k's callback
// (and may deliver it twice).
func (k Kind) IsAfter() bool {
	switch k {
	case MessageSent, MemberJoined, MemberLeft, GroupDestroyed:
		return true
	}
	return false
}

// Verdict is what a rule decides about the event itself.
type Verdict string

// Verdicts. None means no rule decided: the IM server's own setting applies.
const (
	None    Verdict = ""
	Approve Verdict = "approve" // join_request: let in (admits in NeedPermission groups)
	Hold    Verdict = "hold"    // join_request: leave it to the group's admins
	Reject  Verdict = "reject"  // join_request: refuse
	Allow   Verdict = "allow"   // invite, message: let through
	Refuse  Verdict = "refuse"  // invite: refuse this invitee
	Rewrite Verdict = "rewrite" // message: deliver a rewritten message
	Block   Verdict = "block"   // message: refuse, the sender is told
	Drop    Verdict = "drop"    // message: drop silently, the sender sees success
)

// verdictRank orders each kind's verdicts from most lenient to strictest; the
// strictest verdict of all matching rules wins.
var verdictRank = map[Kind]map[Verdict]int{
	JoinRequest: {Approve: 1, Hold: 2, Reject: 3},
	Invite:      {Allow: 1, Refuse: 2},
	Message:     {Allow: 1, Rewrite: 2, Block: 3, Drop: 4},
}

// VerdictsFor lists the verdicts allowed for kind, most lenient first.
func VerdictsFor(k Kind) []Verdict {
	switch k {
	case JoinRequest:
		return []Verdict{Approve, Hold, Reject}
	case Invite:
		return []Verdict{Allow, Refuse}
	case Message:
		return []Verdict{Allow, Rewrite, Block, Drop}
	}
	return nil
}

// Allowed reports whether v is a verdict kind k can take.
func (v Verdict) Allowed(k Kind) bool {
	_, ok := verdictRank[k][v]
	return ok
}

// Stricter reports whether v is stricter than w for kind k. None is the most
// lenient of all.
func (v Verdict) Stricter(w Verdict, k Kind) bool {
	return verdictRank[k][v] > verdictRank[k][w]
}

// Refuses reports whether v keeps the event from happening.
func (v Verdict) Refuses() bool {
	switch v {
	case Reject, Refuse, Block, Drop:
		return true
	}
	return false
}
