// Package store defines the shared state timguard keeps: sliding-window
// counters, strikes, callback dedupe, the durable action outbox (which is also
// the due-time index of delayed actions), one-shot claims for scheduled jobs,
// the REST call budget, recent decisions, active mutes, the group role cache
// and rule modes.
//
// Two implementations satisfy Store: store/redis for production and for
// several replicas, and store/memory, the embedded default for one process.
// store/storetest holds the conformance suite both must pass.
//
// Every method takes a context and returns promptly when the backend is
// unreachable: implementations bound each call with a timeout and wrap
// failures in an error that matches ErrUnavailable.
package store

import (
	"context"
	"errors"
	"time"
)

// ErrUnavailable matches (errors.Is) every error caused by the backend being
// unreachable or too slow.
var ErrUnavailable = errors.New("store unavailable")

// ErrLeaseLost is returned by Extend, Complete, Retry and DeadLetter when
// the caller no longer holds the claim (its lease ran out and another worker
// claimed the action, or the action was already finished).
var ErrLeaseLost = errors.New("outbox lease lost")

// ErrActionUnknown is returned by Extend, Complete, Retry and DeadLetter
// when the store has no trace of the action at all: it is neither waiting,
// claimed, dead nor recently completed. The store forgot it (Redis
// restarted without persistence, or its data was flushed); the caller holds
// the only copy left.
var ErrActionUnknown = errors.New("the store forgot the action")

// Store is everything the bot keeps in shared state.
type Store interface {
	Enricher
	Committer
	Outbox
	Claimer
	Limiter
	DecisionLog
	Mutes
	Roles
	Modes
	Moderation

	// Ping checks that the backend answers and takes writes.
	Ping(ctx context.Context) error
	// Close releases connections.
	Close() error
}

// ---------------------------------------------------------------------------
// Enrichment: what rules read, fetched in one round trip per callback.

// CounterTouch names one sliding window: touched with Add new entries at Now
// (Add 0 only reads) and read back as the number of entries in
// (Now-Window, Now].
type CounterTouch struct {
	// Key is the full window key as the caller built it, e.g.
	// "user_msgs_10s|@TGS#1abc/alice".
	Key    string
	Window time.Duration
	// Add is how many entries to add. Entries are named EventID/0 ..
	// EventID/Add-1, so touching twice for one event (a duplicate "after"
	// callback) counts once.
	Add int
}

// UserRef names a user in a group.
type UserRef struct {
	Group string
	User  string
}

// EnrichRequest is everything one callback needs from the store.
type EnrichRequest struct {
	Now time.Time
	// EventID identifies the callback; it names the counter entries added.
	EventID  string
	Counters []CounterTouch
	// Strikes to read: the number of strikes each user received in
	// (Now-StrikeDecay, Now].
	Strikes     []UserRef
	StrikeDecay time.Duration
	// Dedupe, when not empty, is marked as seen for DedupeTTL; the result's
	// Duplicate says whether it had been seen before.
	Dedupe    string
	DedupeTTL time.Duration
	// RoleGroup, when not empty, asks for the cached roles of RoleUsers in
	// that group.
	RoleGroup string
	RoleUsers []string
	// WithModes asks for the rule modes currently switched on.
	WithModes bool
	// Activity asks for what the store knows of users in groups: when each
	// was first seen there and how many of their messages were counted.
	// ActivityTTL is how long a user's activity is kept after it was last
	// recorded (Seen); it is required when an entry records.
	Activity    []ActivityRef
	ActivityTTL time.Duration
}

// ActivityRef names a user in a group whose activity is read, and says what
// this event adds to it.
type ActivityRef struct {
	UserRef
	// Seen records the user as seen at Now: the first sighting sets
	// FirstSeen, and every one keeps the activity for another ActivityTTL.
	Seen bool
	// Message, when not empty (and Seen is set), counts one message named
	// by it. A message is counted once even when the same name comes again
	// in a row (an "after" callback delivered twice).
	Message string
}

// EnrichResult answers an EnrichRequest; slices are in request order.
type EnrichResult struct {
	Counts    []int64
	Strikes   []int64
	Duplicate bool
	// Roles holds "owner", "admin" or "member" per RoleUsers entry when the
	// group's roles are cached (users not listed in the cache are members),
	// and "" for every entry when they are not. RolesCached says which; the
	// caller should fill the cache when it is false. RolesAt is when the
	// cached roles were read from the IM server (SetRoles's at), to the
	// millisecond; it is zero when they are not cached.
	Roles       []string
	RolesCached bool
	RolesAt     time.Time
	// Modes maps each mode switched on to when it switches off.
	Modes map[string]time.Time
	// FirstSeen and Messages answer Activity, in its order: when the user
	// was first seen in the group (zero when never, or not since the
	// activity was forgotten) and how many messages were counted, after
	// this request's own.
	FirstSeen []time.Time
	Messages  []int64
}

// Enricher fetches what rule evaluation needs in ONE round trip to the
// backend, whatever the number of counters, strikes and users.
type Enricher interface {
	Enrich(ctx context.Context, req EnrichRequest) (EnrichResult, error)
}

// ---------------------------------------------------------------------------
// Commit: what a decision writes, in one round trip after evaluation.

// StrikeAdd gives a user N strikes. ID names the strike entries (ID/0 ..
// ID/N-1) so that committing the same decision twice adds them once.
type StrikeAdd struct {
	UserRef
	N  int
	ID string
}

// CommitRequest is everything a decision writes.
type CommitRequest struct {
	Now         time.Time
	Strikes     []StrikeAdd
	StrikeDecay time.Duration
	// Actions are enqueued in the outbox (see Outbox.Enqueue).
	Actions []Action
	// Touch adds entries to windows, e.g. per-rule action budgets.
	Touch []CounterTouch
	// EventID names the entries Touch adds.
	EventID string
	// Decisions are appended to the recent-decision log.
	Decisions []DecisionRecord
}

// Committer writes a decision's effects in one round trip.
type Committer interface {
	Commit(ctx context.Context, req CommitRequest) error
}

// ---------------------------------------------------------------------------
// Outbox: durable, at-most-once-completed actions, also delayed ones.

// Action is one follow-up for the executor. It is stored as JSON.
type Action struct {
	// ID is unique and deterministic (derived from the event, rule, subject
	// and position) so that enqueueing the same action twice keeps one.
	ID   string `json:"id"`
	Kind string `json:"kind"`
	// Group and GroupType say where; User whom (empty for group-wide
	// actions).
	Group     string `json:"group"`
	GroupType string `json:"group_type,omitempty"`
	User      string `json:"user,omitempty"`
	// Seconds is the duration of mute, ban and mute_group.
	Seconds int64 `json:"seconds,omitempty"`
	// Text is the reason of kick and ban, the text of warn, or the notice to
	// send when a delayed unmute runs.
	Text string `json:"text,omitempty"`
	// Rule and EventID say which rule on which event decided it.
	Rule    string `json:"rule,omitempty"`
	EventID string `json:"event_id,omitempty"`
	// Roles lists the privileged roles the rule still applies to ("owner",
	// "admin", "app_admin"); empty means the executor must not act on the
	// group's owner, its admins or the App admin.
	Roles []string `json:"roles,omitempty"`
	// NotBefore delays the action (zero = now). Delayed actions are the
	// due-time index of scheduled jobs such as the unmute at the end of a
	// group mute.
	NotBefore time.Time `json:"not_before,omitzero"`
	Created   time.Time `json:"created"`
}

// Claimed is an action a worker holds under a lease.
type Claimed struct {
	Action
	// Attempt counts claims of this action, starting at 1.
	Attempt int
	// Token proves the claim to Complete, Retry and DeadLetter.
	Token string
	// LastError is the error recorded by the previous Retry, if any.
	LastError string
}

// OutboxStats describes the outbox for metrics.
type OutboxStats struct {
	Ready   int       // waiting, due now or later
	Due     int       // of those, due now
	Claimed int       // held under a lease
	Dead    int       // dead-lettered
	Oldest  time.Time // NotBefore (or Created) of the oldest due entry; zero if none
}

// DeadAction is a dead-lettered action with the reason.
type DeadAction struct {
	Action
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// Outbox is the durable action queue. The contract:
//   - Enqueue is idempotent by Action.ID: an action already pending, claimed,
//     completed (within DoneTTL) or dead is not enqueued again.
//   - Claim hands each due action to one caller at a time, under a lease.
//     An action whose lease runs out before Complete is due again and may be
//     claimed by anyone, with Attempt incremented.
//   - Complete, Retry and DeadLetter succeed only with the current Token;
//     otherwise they return ErrLeaseLost and change nothing, or
//     ErrActionUnknown when the store no longer knows the action at all.
type Outbox interface {
	Enqueue(ctx context.Context, actions ...Action) error
	// Claim takes up to limit actions due at now for lease.
	Claim(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]Claimed, error)
	// Extend renews a lease the caller still holds.
	Extend(ctx context.Context, c Claimed, now time.Time, lease time.Duration) error
	Complete(ctx context.Context, c Claimed) error
	// Retry puts the action back, due at at, recording errText.
	Retry(ctx context.Context, c Claimed, at time.Time, errText string) error
	// Release hands claimed actions back at once without counting the
	// attempt (graceful shutdown). Claims the caller no longer holds are
	// skipped.
	Release(ctx context.Context, cs ...Claimed) error
	DeadLetter(ctx context.Context, c Claimed, reason string) error
	Stats(ctx context.Context, now time.Time) (OutboxStats, error)
	// Dead lists up to limit dead-lettered actions, newest first.
	Dead(ctx context.Context, limit int) ([]DeadAction, error)
	// Pending lists up to limit waiting (not claimed) actions, soonest
	// first, for inspection.
	Pending(ctx context.Context, limit int) ([]Action, error)
}

// ---------------------------------------------------------------------------
// Claims for scheduled jobs.

// Claimer lets several replicas agree that one of them runs a job.
type Claimer interface {
	// ClaimOnce returns true to exactly one caller per key while the key
	// lives (ttl). Keys name a job and its due instant, e.g.
	// "schedule:quiet-hours:2026-11-21T23:00:00+08:00".
	ClaimOnce(ctx context.Context, key string, ttl time.Duration) (bool, error)
}

// ---------------------------------------------------------------------------
// REST budget shared by all replicas.

// Limiter is the REST call budget shared by every replica.
type Limiter interface {
	// Allow takes n calls (0 or 1) from a budget of perSecond calls per
	// second. Calls are paced, not burst: no one-second window ever holds
	// more than perSecond of them. When the budget cannot take the call now
	// it takes nothing and returns how long to wait before asking again.
	Allow(ctx context.Context, n int, perSecond int) (ok bool, retryAfter time.Duration, err error)
}

// ---------------------------------------------------------------------------
// Recent decisions.

// DecisionRecord is a decision kept for the admin API and replays. Body is
// the audit record as JSON; Group and User allow filtering.
type DecisionRecord struct {
	ID    string    `json:"id,omitempty"` // assigned by the store
	Time  time.Time `json:"time"`
	Group string    `json:"group"`
	User  string    `json:"user"`
	Body  []byte    `json:"body"`
}

// DecisionFilter selects recent decisions; empty fields match everything.
type DecisionFilter struct {
	Group string
	User  string
	Limit int
}

// DecisionLog keeps the most recent decisions (a capped log).
type DecisionLog interface {
	// RecentDecisions returns matching decisions, newest first.
	RecentDecisions(ctx context.Context, f DecisionFilter) ([]DecisionRecord, error)
}

// ---------------------------------------------------------------------------
// Active mutes.

// Mute is a mute timguard applied. User is empty for a group-wide mute.
type Mute struct {
	Group   string    `json:"group"`
	User    string    `json:"user,omitempty"`
	Until   time.Time `json:"until"`
	Since   time.Time `json:"since"`
	Rule    string    `json:"rule,omitempty"`
	EventID string    `json:"event_id,omitempty"`
}

// Mutes records the mutes timguard applied, for the admin API, reconciliation
// and scheduled unmutes.
type Mutes interface {
	SetMute(ctx context.Context, m Mute) error
	// ClearMute removes the record; it is not an error if there is none.
	ClearMute(ctx context.Context, group, user string) error
	// ListMutes returns the group's recorded mutes (group-wide first).
	ListMutes(ctx context.Context, group string) ([]Mute, error)
	// MutedGroups returns every group with at least one recorded mute.
	MutedGroups(ctx context.Context) ([]string, error)
}

// ---------------------------------------------------------------------------
// Group role cache.

// Role names as rules see them.
const (
	RoleOwner  = "owner"
	RoleAdmin  = "admin"
	RoleMember = "member"
)

// Roles caches each group's owner and admins; everyone else is a member.
// Reads happen in Enrich.
type Roles interface {
	// SetRoles replaces the group's cached roles (users not listed are
	// members), read from the IM server at at, for ttl. Enrich returns at
	// with them (RolesAt), so that every replica knows how old they are
	// without a lookup of its own.
	SetRoles(ctx context.Context, group string, roles map[string]string, at time.Time, ttl time.Duration) error
	// ForgetRoles drops the group's cache so the next event refills it.
	ForgetRoles(ctx context.Context, group string) error
}

// ---------------------------------------------------------------------------
// Rule modes switched on by schedules.

// Modes switches named rule modes on until a time. Reads happen in Enrich.
type Modes interface {
	SetMode(ctx context.Context, name string, until time.Time) error
	ClearMode(ctx context.Context, name string) error
}
