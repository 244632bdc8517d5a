// Package storeutil holds what both Store implementations must do the same
// way: request validation, entry names, due times and orderings. Keeping it in
// one place keeps store/redis and store/memory in step with the conformance
// suite.
package storeutil

import (
	"cmp"
	"fmt"
	"github.com/go-redis/redis_rate/v10"
	"slices"
	"strconv"
	"time"

	"github.com/timguard/timguard/store"
)

// DefaultDecisionLimit is how many decisions RecentDecisions returns when the
// filter sets no Limit.
const DefaultDecisionLimit = 100

// Retention defaults, the same in both stores: how long completed action
// ids are remembered, how many recent decisions are kept, and how many dead
// letters are kept for how long.
const (
	DefaultDoneTTL      = 24 * time.Hour
	DefaultMaxDecisions = 10000
	DefaultDeadMax      = 10000
	DefaultDeadTTL      = 7 * 24 * time.Hour
)

// RetentionDefaults sets each retention option that is zero or below to its
// default.
func RetentionDefaults(doneTTL *time.Duration, maxDecisions, deadMax *int, deadTTL *time.Duration) {
	if *doneTTL <= 0 {
		*doneTTL = DefaultDoneTTL
	}
	if *maxDecisions <= 0 {
		*maxDecisions = DefaultMaxDecisions
	}
	if *deadMax <= 0 {
		*deadMax = DefaultDeadMax
	}
	if *deadTTL <= 0 {
		*deadTTL = DefaultDeadTTL
	}
}

// ExpirySlack is added to the lifetime of a window or strike key beyond its
// window so that a key is never dropped while an entry in it still counts.
const ExpirySlack = time.Second

// Member names entry i added by the event or decision id.
func Member(id string, i int) string {
	return id + "/" + strconv.Itoa(i)
}

// Ms is t in Unix milliseconds, the resolution both stores keep.
func Ms(t time.Time) int64 {
	return t.UnixMilli()
}

// CheckCounters validates counter touches; eventID names the entries added.
func CheckCounters(op, eventID string, cs []store.CounterTouch) error {
	for _, c := range cs {
		if c.Key == "" {
			return fmt.Errorf("%s: counter with an empty key", op)
		}
		if c.Window < time.Millisecond {
			return fmt.Errorf("%s: counter %q: window %s is shorter than 1ms", op, c.Key, c.Window)
		}
		if c.Add < 0 {
			return fmt.Errorf("%s: counter %q: negative add %d", op, c.Key, c.Add)
		}
		if c.Add > 0 && eventID == "" {
			return fmt.Errorf("%s: counter %q: adding entries needs an event id", op, c.Key)
		}
	}
	return nil
}

// CheckEnrich validates an EnrichRequest.
func CheckEnrich(req store.EnrichRequest) error {
	if err := CheckCounters("enrich", req.EventID, req.Counters); err != nil {
		return err
	}
	if len(req.Strikes) > 0 && req.StrikeDecay < time.Millisecond {
		return fmt.Errorf("enrich: strike decay %s is shorter than 1ms", req.StrikeDecay)
	}
	for _, u := range req.Strikes {
		if u.Group == "" || u.User == "" {
			return fmt.Errorf("enrich: strikes of %q in %q: group and user are required", u.User, u.Group)
		}
	}
	if req.Dedupe != "" && req.DedupeTTL < time.Millisecond {
		return fmt.Errorf("enrich: dedupe %q: ttl %s is shorter than 1ms", req.Dedupe, req.DedupeTTL)
	}
	for _, a := range req.Activity {
		if a.Group == "" || a.User == "" {
			return fmt.Errorf("enrich: activity of %q in %q: group and user are required", a.User, a.Group)
		}
		if a.Seen && req.ActivityTTL < time.Millisecond {
			return fmt.Errorf("enrich: activity of %q in %q: ttl %s is shorter than 1ms", a.User, a.Group, req.ActivityTTL)
		}
	}
	return nil
}

// CheckCommit validates a CommitRequest.
func CheckCommit(req store.CommitRequest) error {
	if err := CheckCounters("commit", req.EventID, req.Touch); err != nil {
		return err
	}
	if len(req.Strikes) > 0 && req.StrikeDecay < time.Millisecond {
		return fmt.Errorf("commit: strike decay %s is shorter than 1ms", req.StrikeDecay)
	}
	for _, s := range req.Strikes {
		if s.Group == "" || s.User == "" {
			return fmt.Errorf("commit: strikes of %q in %q: group and user are required", s.User, s.Group)
		}
		if s.ID == "" {
			return fmt.Errorf("commit: strikes of %q in %q: empty id", s.User, s.Group)
		}
		if s.N < 0 {
			return fmt.Errorf("commit: strikes of %q in %q: negative count %d", s.User, s.Group, s.N)
		}
	}
	return CheckActions("commit", req.Actions)
}

// CheckActions validates actions before they are enqueued.
func CheckActions(op string, actions []store.Action) error {
	for _, a := range actions {
		if a.ID == "" {
			return fmt.Errorf("%s: %s action in %q without an id", op, a.Kind, a.Group)
		}
		if a.Kind == "" {
			return fmt.Errorf("%s: action %q without a kind", op, a.ID)
		}
	}
	return nil
}

// CheckLease validates a lease duration.
func CheckLease(op string, lease time.Duration) error {
	if lease < time.Millisecond {
		return fmt.Errorf("%s: lease %s is shorter than 1ms", op, lease)
	}
	return nil
}

// CheckTTL validates the ttl of a key.
func CheckTTL(op, key string, ttl time.Duration) error {
	if key == "" {
		return fmt.Errorf("%s: empty key", op)
	}
	if ttl < time.Millisecond {
		return fmt.Errorf("%s %q: ttl %s is shorter than 1ms", op, key, ttl)
	}
	return nil
}

// CheckRoles validates a role map for SetRoles.
func CheckRoles(group string, roles map[string]string, at time.Time, ttl time.Duration) error {
	if err := CheckTTL("set roles", group, ttl); err != nil {
		return err
	}
	if at.UnixMilli() <= 0 {
		return fmt.Errorf("set roles %q: no time the roles were read at (%v)", group, at)
	}
	for user, role := range roles {
		if user == "" {
			return fmt.Errorf("set roles %q: empty user id", group)
		}
		switch role {
		case store.RoleOwner, store.RoleAdmin, store.RoleMember:
		default:
			return fmt.Errorf("set roles %q: user %q has unknown role %q", group, user, role)
		}
	}
	return nil
}

// CheckAllow validates a Limiter.Allow call: one call at a time from a
// positive budget.
func CheckAllow(n, perSecond int) error {
	if perSecond <= 0 {
		return fmt.Errorf("allow %d calls: budget %d per second is not positive", n, perSecond)
	}
	if n > 1 {
		return fmt.Errorf("allow %d calls: calls are paced one at a time", n)
	}
	return nil
}

// PaceMargin stretches the pacing period so that jitter between the bot and
// the IM server never packs perSecond+1 calls into one second there.
const PaceMargin = time.Second / 50

// Pace is the GCRA limit both stores use: perSecond calls per (1s +
// PaceMargin), burst 1.
func Pace(perSecond int) redis_rate.Limit {
	return redis_rate.Limit{Rate: perSecond, Period: time.Second + PaceMargin, Burst: 1}
}

// PaceInterval is the time between two paced calls.
func PaceInterval(perSecond int) time.Duration {
	return (time.Second + PaceMargin) / time.Duration(perSecond)
}

// Due is when an action becomes claimable: NotBefore, else Created, else now.
func Due(a store.Action, now time.Time) int64 {
	switch {
	case !a.NotBefore.IsZero():
		return Ms(a.NotBefore)
	case !a.Created.IsZero():
		return Ms(a.Created)
	default:
		return Ms(now)
	}
}

// DecisionLimit is the number of decisions RecentDecisions returns for f.
func DecisionLimit(f store.DecisionFilter, maxDecisions int) int {
	n := f.Limit
	if n <= 0 {
		n = DefaultDecisionLimit
	}
	return min(n, maxDecisions)
}

// DecisionMatches says whether d passes the filter.
func DecisionMatches(f store.DecisionFilter, d store.DecisionRecord) bool {
	return (f.Group == "" || f.Group == d.Group) && (f.User == "" || f.User == d.User)
}

// SortMutes orders mutes group-wide first, then by user.
func SortMutes(ms []store.Mute) {
	slices.SortFunc(ms, func(a, b store.Mute) int {
		return cmp.Compare(a.User, b.User)
	})
}

// MuteLive says whether m is still in force at now; a zero Until never ends.
func MuteLive(m store.Mute, now time.Time) bool {
	return m.Until.IsZero() || Ms(m.Until) > Ms(now)
}

// CheckMute validates a mute record.
func CheckMute(m store.Mute) error {
	if m.Group == "" {
		return fmt.Errorf("set mute of %q: empty group", m.User)
	}
	return nil
}

// ListLimit is the number of entries Dead and Pending return for limit.
func ListLimit(limit int) int {
	if limit <= 0 {
		return DefaultDecisionLimit
	}
	return limit
}
