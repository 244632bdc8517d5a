package rules

// The vocabulary rules, policy, actions and config share: action kinds,
// roles and fail modes are types, so that a value is checked where it is
// read (a rule file, the configuration, the store) and nowhere compared
// with a string literal.

// ActionKind is what an action does (`actions: [{mute: 10m}]`).
type ActionKind string

// Action kinds.
const (
	ActMute        ActionKind = "mute"
	ActUnmute      ActionKind = "unmute"
	ActKick        ActionKind = "kick"
	ActBan         ActionKind = "ban"
	ActUnban       ActionKind = "unban"
	ActStrike      ActionKind = "strike"
	ActWarn        ActionKind = "warn"
	ActMuteGroup   ActionKind = "mute_group"
	ActUnmuteGroup ActionKind = "unmute_group"
	ActAdmit       ActionKind = "admit"
)

// ActionKinds lists every action kind.
func ActionKinds() []ActionKind {
	return []ActionKind{ActMute, ActUnmute, ActKick, ActBan, ActUnban, ActStrike, ActWarn, ActMuteGroup, ActUnmuteGroup, ActAdmit}
}

// Valid reports whether k is an action kind.
func (k ActionKind) Valid() bool {
	_, ok := actionRules[k]
	return ok
}

// Role is a member's role as rules see it (`user.role`, `exempt:`).
type Role string

// Roles.
const (
	RoleOwner    Role = "owner"
	RoleAdmin    Role = "admin"
	RoleMember   Role = "member"
	RoleAppAdmin Role = "app_admin"
)

// Roles lists every role.
func Roles() []Role { return []Role{RoleMember, RoleAdmin, RoleOwner, RoleAppAdmin} }

// Valid reports whether r is a role.
func (r Role) Valid() bool {
	switch r {
	case RoleOwner, RoleAdmin, RoleMember, RoleAppAdmin:
		return true
	}
	return false
}

// FailMode says what to decide about an event when the store cannot be
// read (`store.fail_mode` in the configuration).
type FailMode string

// Fail modes.
const (
	// FailOpen evaluates with empty state: counters and strikes read 0,
	// so only rules that need no state can act.
	FailOpen FailMode = "open"
	// FailClosed refuses the event (reject, refuse, block); after-events
	// cannot be refused and fall back to FailOpen.
	FailClosed FailMode = "closed"
)

// Valid reports whether m is a fail mode.
func (m FailMode) Valid() bool { return m == FailOpen || m == FailClosed }

// CanFailClosed reports whether events of kind k can be refused when the
// store cannot be read: the IM server waits for the answer to them.
func (k Kind) CanFailClosed() bool { return k.Valid() && !k.IsAfter() }
