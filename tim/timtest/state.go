package timtest

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/timguard/timguard/tim"
)

// Group sets up a group with AddGroup.
type Group struct {
	ID string
	// Type is a REST name (Private, Public, ChatRoom, AVChatRoom,
	// Community) or an SDK name (Work, Meeting, Live).
	Type string
	// Owner becomes a member with role Owner; it may be empty.
	Owner   string
	Admins  []string
	Members []string
	// ApplyJoinOption defaults to NeedPermission for Public groups,
	// DisableApply for Private groups and FreeAccess otherwise.
	ApplyJoinOption string
	Name            string
	// MaxMemberNum bounds add_group_member (10014 past it); 0 is no bound.
	MaxMemberNum  int
	MuteAllMember bool
}

// Message is a message the fake accepted through send_group_msg.
type Message struct {
	Seq                   uint64
	Time                  time.Time
	From                  string
	Random                uint32
	Body                  json.RawMessage
	ForbidCallbackControl []string
	// AtAccounts are the members GroupAtInfo mentions, in order; AtAll is
	// set by an @all entry.
	AtAccounts []string
	AtAll      bool
}

// Notification is a notice accepted through send_group_system_notification.
type Notification struct {
	Time    time.Time
	To      []string
	Content string
}

// GroupState is a copy of one group's state. Exists is false for a group
// that was never added or has been removed.
type GroupState struct {
	Exists          bool
	ID              string
	Type            string
	Owner           string
	Name            string
	Introduction    string
	Notification    string
	ApplyJoinOption string
	MuteAllMember   bool
	// Members is sorted.
	Members   []string
	Roles     map[string]string
	NameCards map[string]string
	// Muted holds the mutes in force at the server's now (group level, not
	// topics), members or not: a mute outlives leaving the group. A mute
	// without expiry is time.Unix(4294967295, 0).
	Muted map[string]time.Time
	// Banned holds the bans in force (AVChatRoom).
	Banned        map[string]time.Time
	Messages      []Message
	Notifications []Notification
}

// IsMember reports whether account is a member.
func (g GroupState) IsMember(account string) bool {
	_, ok := g.Roles[account]
	return ok
}

type member struct {
	role     string
	joined   int64
	nameCard string
	lastSent int64
}

type muteKey struct{ topic, account string }

type group struct {
	id, typ, owner          string
	name, intro, notice     string
	faceURL, applyJoin      string
	muteAll                 bool
	created, infoTime       int64
	maxMembers              int
	members                 map[string]*member
	muted                   map[muteKey]int64 // Unix seconds; forever is math.MaxUint32
	banned                  map[string]int64
	msgs                    []Message
	notices                 []Notification
	lastMsgTime, nextMsgSeq int64
}

// groups is the fake's group state; commands run with mu held.
type groups struct {
	mu        sync.Mutex
	byID      map[string]*group
	dismissed map[string]bool
	// liveBan is Options.LiveGroupBan.
	liveBan bool
}

func newGroups() *groups {
	return &groups{byID: map[string]*group{}, dismissed: map[string]bool{}}
}

const foreverUnix = int64(tim.MuteForever)

func activeUntil(until, now int64) bool { return until == foreverUnix || until > now }

// AddGroup creates or replaces a group. It panics on a setup mistake (empty
// ID, unknown type, admins in an AVChatRoom group), as a test helper should.
func (s *Server) AddGroup(g Group) {
	typ := tim.NormalizeGroupType(g.Type)
	switch typ {
	case tim.GroupPrivate, tim.GroupPublic, tim.GroupChatRoom, tim.GroupAVChatRoom, tim.GroupCommunity:
	default:
		panic(fmt.Sprintf("timtest: AddGroup %q: unknown group type %q", g.ID, g.Type))
	}
	if g.ID == "" {
		panic("timtest: AddGroup: empty group ID")
	}
	if typ == tim.GroupAVChatRoom && len(g.Admins) > 0 {
		// "Setting admins: Not supported" for audio-video groups
		// (https://intl.cloud.tencent.com/document/product/1047/33529).
		panic(fmt.Sprintf("timtest: AddGroup %q: AVChatRoom groups have no admins", g.ID))
	}
	now := s.now().Unix()
	ng := &group{
		id: g.ID, typ: typ, owner: g.Owner, name: g.Name, applyJoin: g.ApplyJoinOption,
		muteAll: g.MuteAllMember, created: now, infoTime: now, maxMembers: g.MaxMemberNum,
		members: map[string]*member{}, muted: map[muteKey]int64{}, banned: map[string]int64{},
	}
	if ng.applyJoin == "" {
		switch typ {
		case tim.GroupPublic:
			ng.applyJoin = tim.JoinNeedPermission
		case tim.GroupPrivate:
			ng.applyJoin = tim.JoinDisableApply
		default:
			ng.applyJoin = tim.JoinFreeAccess
		}
	}
	for _, m := range g.Members {
		ng.members[m] = &member{role: tim.RoleMember, joined: now}
	}
	for _, a := range g.Admins {
		ng.members[a] = &member{role: tim.RoleAdmin, joined: now}
	}
	if g.Owner != "" {
		ng.members[g.Owner] = &member{role: tim.RoleOwner, joined: now}
	}
	s.groups.mu.Lock()
	defer s.groups.mu.Unlock()
	s.groups.byID[g.ID] = ng
	delete(s.groups.dismissed, g.ID)
}

// RemoveGroup dismisses a group: later calls naming it get 10010.
func (s *Server) RemoveGroup(id string) {
	s.groups.mu.Lock()
	defer s.groups.mu.Unlock()
	delete(s.groups.byID, id)
	s.groups.dismissed[id] = true
}

// Group returns a copy of a group's state.
func (s *Server) Group(id string) GroupState {
	now := s.now().Unix()
	s.groups.mu.Lock()
	defer s.groups.mu.Unlock()
	g, ok := s.groups.byID[id]
	if !ok {
		return GroupState{ID: id}
	}
	st := GroupState{
		Exists: true, ID: g.id, Type: g.typ, Owner: g.owner, Name: g.name,
		Introduction: g.intro, Notification: g.notice, ApplyJoinOption: g.applyJoin,
		MuteAllMember: g.muteAll,
		Members:       slices.Sorted(maps.Keys(g.members)),
		Roles:         map[string]string{},
		NameCards:     map[string]string{},
		Muted:         map[string]time.Time{},
		Banned:        map[string]time.Time{},
		Messages:      slices.Clone(g.msgs),
		Notifications: slices.Clone(g.notices),
	}
	for acc, m := range g.members {
		st.Roles[acc] = m.role
		if m.nameCard != "" {
			st.NameCards[acc] = m.nameCard
		}
	}
	for k, until := range g.muted {
		if k.topic == "" && activeUntil(until, now) {
			st.Muted[k.account] = time.Unix(until, 0)
		}
	}
	for acc, until := range g.banned {
		if until > now {
			st.Banned[acc] = time.Unix(until, 0)
		}
	}
	return st
}

// MuteUntil returns when account's mute in a group ends: the zero time when
// it is not muted, time.Unix(4294967295, 0) when muted without expiry.
func (s *Server) MuteUntil(groupID, account string) time.Time {
	now := s.now().Unix()
	s.groups.mu.Lock()
	defer s.groups.mu.Unlock()
	g, ok := s.groups.byID[groupID]
	if !ok {
		return time.Time{}
	}
	until, ok := g.muted[muteKey{account: account}]
	if !ok || !activeUntil(until, now) {
		return time.Time{}
	}
	return time.Unix(until, 0)
}

// SetMuteUntil sets a mute directly, as if made by someone else; the zero
// time unmutes. It panics when the group does not exist.
func (s *Server) SetMuteUntil(groupID, account string, until time.Time) {
	s.groups.mu.Lock()
	defer s.groups.mu.Unlock()
	g, ok := s.groups.byID[groupID]
	if !ok {
		panic(fmt.Sprintf("timtest: SetMuteUntil: no group %q", groupID))
	}
	if until.IsZero() {
		delete(g.muted, muteKey{account: account})
		return
	}
	g.muted[muteKey{account: account}] = until.Unix()
}
