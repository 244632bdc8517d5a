package policy

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/tim"
)

// enricher is the first stage: it reads what the rules need from the store
// in one round trip (counters touched and read, strikes, cached roles,
// modes, the dedupe mark) into the call's State. It settles the events no
// rule is evaluated for, and notes the store's failure for decide.
//
// Budgets are read later, by decide through readBudgets, and only when a
// budgeted rule matched with actions: most events match none, and a budget
// read in every event's round trip cost Redis a command each. With a
// Recorder (eagerBudgets), they are read here for every event, as the
// records keep them for replays of other rules.
type enricher struct {
	store        Store
	roles        RoleFiller
	breaker      *breaker
	failures     *failureLog
	log          *slog.Logger
	appAdmin     string
	dedupeTTL    time.Duration
	storeTimeout time.Duration
	eagerBudgets bool
}

func (s *enricher) exec(ctx context.Context, c *call) {
	ev := c.ev
	if ev.Kind == "" {
		s.other(ctx, ev)
		c.settled, c.quiet, c.result = true, true, "not_evaluated"
		return
	}
	if s.ownMessage(ev) {
		c.settled, c.quiet, c.result = true, true, "own_message"
		return
	}
	c.plan = c.set.Plan(ev.Kind)
	if len(c.plan.Rules) == 0 && len(c.plan.Counters) == 0 {
		c.settled = true
		return
	}
	if s.breaker.down() {
		c.cause = errStoreDown
		return
	}
	// One environment serves the counter keys and the evaluation.
	ev.prepare(c.plan)
	c.env = c.set.Env()
	in := ev.Base
	c.env.Fill(&in)
	req, keys := s.request(c.set, c.plan, ev, c.env, c.keys[:0])
	c.keys = keys
	// The store bounds the call with its own timeout (store.Store's
	// contract); a second timer here would only cost.
	res, err := s.store.Enrich(ctx, req)
	if err != nil {
		s.breaker.note(err)
		c.cause = err
		return
	}
	if res.Duplicate {
		c.settled, c.quiet, c.result = true, true, audit.ResultDup
		return
	}
	var budgeted []*rules.Rule
	if s.eagerBudgets {
		budgeted = c.plan.Budgeted
	} else {
		c.budgetsUnread = len(c.plan.Budgeted) > 0
	}
	c.stateBuf = stateFrom(c.set, c.plan, ev, req, res, keys, budgeted)
	c.state = &c.stateBuf.State
	s.fillRoles(ctx, ev, res, c.state)
}

// roleWait bounds the wait for a group's roles when an event finds none
// cached (the group's first event, or the first after the cache expired).
const roleWait = 300 * time.Millisecond

// fillRoles makes sure the subjects' roles are known before the rules run:
// an empty cache is filled now (briefly waited for: with no roles the owner
// and admins would be judged as members), a cached one refreshed in the
// background when it is old.
func (s *enricher) fillRoles(ctx context.Context, ev *Event, res store.EnrichResult, st *State) {
	group := ev.Base.GroupID
	if s.roles == nil || group == "" {
		return
	}
	if res.RolesCached {
		s.roles.RefreshRoles(group, ev.Base.GroupType, res.RolesAt, false)
		return
	}
	wctx, cancel := context.WithTimeout(ctx, roleWait)
	roles, err := s.roles.FillRoles(wctx, group, ev.Base.GroupType)
	cancel()
	if err != nil {
		s.log.Warn("the group's roles are not known yet; its owner and admins are judged as members for this event",
			"group", group, "event_id", ev.ID, "err", err)
		return
	}
	for _, u := range ev.Subjects {
		if r, ok := roles[u]; ok {
			st.Roles[u] = r
		}
	}
}

// counterKey remembers which counter (by set index) a touched key feeds, per
// subject.
type counterKey struct {
	index   int
	subject int
	reqIdx  int
}

// request is the one store read an event needs, and which counter each of
// its touches feeds, appended to keys.
func (s *enricher) request(set *rules.Set, plan *rules.Plan, ev *Event, env *rules.Env, keys []counterKey) (store.EnrichRequest, []counterKey) {
	req := store.EnrichRequest{
		Now:         ev.Received,
		EventID:     ev.ID,
		StrikeDecay: set.StrikeDecay,
		WithModes:   plan.UsesModes,
	}
	if n := len(plan.Counters) * len(ev.Subjects); n > 0 {
		// Sized once: a message touches a few keys and reads its strikes.
		req.Counters = make([]store.CounterTouch, 0, n+len(plan.Budgeted))
		keys = slices.Grow(keys, n)
		for si, user := range ev.Subjects {
			env.SetUser(user, "", 0)
			for _, cu := range plan.Counters {
				key, counts, err := cu.Counter.KeyFor(env)
				if err != nil {
					if missed, ok := s.failures.toLog("counter "+cu.Counter.Name, ev.Received); ok {
						s.log.Warn("a counter failed while it ran; the event was not counted by it",
							"counter", cu.Counter.Name, "err", rules.Redact(err), "event_id", ev.ID, "since_last", missed)
					}
					if key == "" {
						continue
					}
				}
				i := touchIndex(req.Counters, key)
				if i < 0 {
					i = len(req.Counters)
					req.Counters = append(req.Counters, store.CounterTouch{Key: key, Window: cu.Counter.Window})
				}
				if cu.Touch && counts {
					req.Counters[i].Add++
				}
				keys = append(keys, counterKey{index: cu.Counter.Index, subject: si, reqIdx: i})
			}
		}
	}
	if s.eagerBudgets {
		req.Counters = appendBudgets(req.Counters, plan.Budgeted, ev, env)
	}
	if len(plan.Rules) > 0 {
		req.Strikes = make([]store.UserRef, 0, len(ev.Subjects))
		for _, user := range ev.Subjects {
			if user != "" {
				req.Strikes = append(req.Strikes, store.UserRef{Group: ev.Base.GroupID, User: user})
			}
		}
		if ev.Base.GroupID != "" {
			req.RoleGroup = ev.Base.GroupID
			req.RoleUsers = ev.Subjects
		}
	}
	if plan.Users.Any() && ev.Base.GroupID != "" {
		req.ActivityTTL = set.UserTTL
		for _, user := range ev.Subjects {
			if user == "" {
				continue
			}
			ref := store.ActivityRef{UserRef: store.UserRef{Group: ev.Base.GroupID, User: user}, Seen: plan.Users.Seen}
			if plan.Users.Count && plan.Users.Seen {
				ref.Message = ev.ID
			}
			req.Activity = append(req.Activity, ref)
		}
	}
	if ev.Kind.IsAfter() {
		req.Dedupe = "dedupe|" + ev.ID
		req.DedupeTTL = s.dedupeTTL
	}
	return req, keys
}

// appendBudgets appends the reads of the budgets of rules in ev's group.
func appendBudgets(touches []store.CounterTouch, budgeted []*rules.Rule, ev *Event, env *rules.Env) []store.CounterTouch {
	for _, r := range budgeted {
		touches = append(touches, store.CounterTouch{Key: env.Key(budgetPrefix, r.Name, "|", ev.Base.GroupID), Window: r.Budget.Per})
	}
	return touches
}

// readBudgets reads the budgets of the plan's rules in the event's group
// into the call's State: one more round trip, for the events a budgeted
// rule matched with actions (decide). The store's failure is the
// breaker's, as enrich's is.
func (s *enricher) readBudgets(ctx context.Context, c *call) error {
	budgeted := c.plan.Budgeted
	if s.breaker.down() {
		return errStoreDown
	}
	req := store.EnrichRequest{Now: c.ev.Received, EventID: c.ev.ID, Counters: appendBudgets(nil, budgeted, c.ev, c.env)}
	res, err := s.store.Enrich(ctx, req)
	s.breaker.note(err)
	if err != nil {
		return err
	}
	if c.state.Budgets == nil {
		c.state.Budgets = c.stateBuf.budgets
	}
	for i, r := range budgeted {
		if i < len(res.Counts) {
			c.state.Budgets[r.Name] = int(res.Counts[i])
		}
	}
	return nil
}

// touchIndex is the index of the touch of key in touches, -1 if there is
// none. An event touches a few keys (its counters times its subjects): a
// scan costs less than a map built per event.
func touchIndex(touches []store.CounterTouch, key string) int {
	for i := range touches {
		if touches[i].Key == key {
			return i
		}
	}
	return -1
}

// budgetKey is the key of a rule's budget in a group: "budget|RULE|GROUP".
func budgetKey(rule, group string) string { return budgetPrefix + rule + "|" + group }

const budgetPrefix = "budget|"

// stateFrom spreads the store's answer over subjects and counters. With
// several subjects, a counter keyed by user differs per subject, so each
// subject gets its own values.
// budgeted are the rules whose budgets req read, after the counters.
func stateFrom(set *rules.Set, plan *rules.Plan, ev *Event, req store.EnrichRequest, res store.EnrichResult, keys []counterKey, budgeted []*rules.Rule) *stateBuf {
	sb := newStateBuf()
	st := &sb.State
	if n := len(set.Counters); n <= len(sb.values) {
		st.Counters = sb.values[:n:n]
	} else {
		st.Counters = make([]int, n)
	}
	st.Strikes, st.Roles = sb.strikes, sb.roles
	if len(ev.Subjects) > 1 {
		st.SubjectCounters = make(map[string][]int, len(ev.Subjects))
		for _, u := range ev.Subjects {
			st.SubjectCounters[u] = make([]int, len(set.Counters))
		}
	}
	for _, k := range keys {
		if k.reqIdx >= len(res.Counts) {
			continue
		}
		v := int(res.Counts[k.reqIdx])
		if k.subject == 0 {
			st.Counters[k.index] = v
		}
		if st.SubjectCounters != nil {
			st.SubjectCounters[ev.Subjects[k.subject]][k.index] = v
		}
	}
	base := len(req.Counters) - len(budgeted)
	if len(budgeted) > 0 {
		st.Budgets = sb.budgets
		for i, r := range budgeted {
			if base+i < len(res.Counts) {
				st.Budgets[r.Name] = int(res.Counts[base+i])
			}
		}
	}
	for i, ref := range req.Strikes {
		if i < len(res.Strikes) {
			st.Strikes[ref.User] = int(res.Strikes[i])
		}
	}
	if res.RolesCached {
		for i, u := range req.RoleUsers {
			if i < len(res.Roles) && res.Roles[i] != "" {
				st.Roles[u] = res.Roles[i]
			}
		}
	}
	if len(req.Activity) > 0 {
		st.FirstSeen = make(map[string]time.Time, len(req.Activity))
		st.Messages = make(map[string]int, len(req.Activity))
		for i, ref := range req.Activity {
			if i < len(res.FirstSeen) && i < len(res.Messages) {
				st.FirstSeen[ref.User] = res.FirstSeen[i]
				st.Messages[ref.User] = int(res.Messages[i])
			}
		}
	}
	if len(res.Modes) > 0 {
		st.Modes = make(map[string]bool, len(res.Modes))
		for m, until := range res.Modes {
			if until.After(ev.Received) {
				st.Modes[m] = true
			}
		}
	}
	return sb
}

// stateBuf is a State with room for the counters of most rule files and
// the maps it lends the State, kept for the next callback: the maps' first
// entries cost an allocation each otherwise.
type stateBuf struct {
	State
	values  [4]int
	strikes map[string]int
	roles   map[string]string
	budgets map[string]int
}

var stateBufs sync.Pool

func newStateBuf() *stateBuf {
	if sb, ok := stateBufs.Get().(*stateBuf); ok {
		return sb
	}
	return &stateBuf{strikes: map[string]int{}, roles: map[string]string{}, budgets: map[string]int{}}
}

// release empties sb for the next callback. Nothing may read its State
// afterwards: the engine releases it only when no Recorder may have kept
// it.
func (sb *stateBuf) release() {
	clear(sb.strikes)
	clear(sb.roles)
	clear(sb.budgets)
	sb.State = State{}
	sb.values = [4]int{}
	stateBufs.Put(sb)
}

// ownMessage reports whether ev is a message the bot's own REST account
// sent; those never trigger rules.
func (s *enricher) ownMessage(ev *Event) bool {
	if ev.Kind != rules.Message && ev.Kind != rules.MessageSent {
		return false
	}
	return s.appAdmin != "" && len(ev.Subjects) == 1 && ev.Subjects[0] == s.appAdmin && strings.EqualFold(ev.Platform, "RESTAPI")
}

// other handles callbacks rules do not evaluate: the role-change ones drop
// the group's role cache (they are recorded as not evaluated).
func (s *enricher) other(ctx context.Context, ev *Event) {
	switch ev.Command {
	case tim.CmdAfterMemberFieldChanged, tim.CmdAfterChangeGroupOwner:
		g := ev.Base.GroupID
		switch {
		case g == "":
		case !s.roleChanged(ctx, ev):
			// A name card changed: the roles the rules read did not.
		case s.roles != nil:
			// Refresh, keeping the roles known until the new ones arrive.
			s.roles.RefreshRoles(g, ev.Base.GroupType, time.Time{}, true)
		default:
			sctx, cancel := context.WithTimeout(ctx, s.storeTimeout)
			if err := s.store.ForgetRoles(sctx, g); err != nil {
				s.log.Warn("forget cached roles", "group", g, "err", err)
			}
			cancel()
		}
	case tim.CmdRequestOverLimit:
		if ol, ok := ev.Callback.(*tim.RequestOverLimit); ok {
			s.log.Warn("the IM server reports the app went over a REST limit", "service", ol.ServiceName, "command", ol.Command,
				"request", ol.Request, "limit", ol.Limit)
		}
	}
}

// roleChanged reports whether a member-field or owner change may have
// changed the group's roles. A member-field change without Role changed
// something else (the name card); one whose Role is the role already cached
// changed nothing the rules read. Every other case, a failed read of the
// cache among them, counts as a change.
func (s *enricher) roleChanged(ctx context.Context, ev *Event) bool {
	fc, ok := ev.Callback.(*tim.AfterMemberFieldChanged)
	if !ok {
		return true
	}
	if fc.Role == "" {
		return false
	}
	if fc.Member == "" {
		return true
	}
	sctx, cancel := context.WithTimeout(ctx, s.storeTimeout)
	defer cancel()
	res, err := s.store.Enrich(sctx, store.EnrichRequest{Now: ev.Received, RoleGroup: fc.GroupID, RoleUsers: []string{fc.Member}})
	if err != nil || !res.RolesCached || len(res.Roles) != 1 {
		return true
	}
	return !strings.EqualFold(res.Roles[0], fc.Role)
}
