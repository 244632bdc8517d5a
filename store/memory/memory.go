// Package memory is the embedded Store: all state lives in one process
// behind a mutex. It is the default when no Redis URL is configured and has
// the same semantics as store/redis, checked by the same conformance suite.
//
// Counter windows and strikes use the callers' explicit times; keys with a
// time to live (dedupe marks, job claims, completed action ids, role caches,
// window keys) expire on the store's clock, lazily when they are read and in a
// sweep once a minute, so a long run does not accumulate them.
package memory

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/store/internal/storeutil"
)

// Options configures a memory Store. Zero values take the defaults.
type Options struct {
	// DoneTTL is how long completed action ids are remembered so that
	// enqueueing them again is a no-op. Default 24h.
	DoneTTL time.Duration
	// MaxDecisions caps the recent-decision log. Default 10000.
	MaxDecisions int
	// DeadMax caps the dead letters kept: when an action is dead-lettered,
	// the oldest beyond DeadMax are dropped. Default DefaultDeadMax (10000).
	DeadMax int
	// DeadTTL is how long a dead letter is kept: when an action is
	// dead-lettered, those dead-lettered longer ago are dropped. Default
	// DefaultDeadTTL (7 days).
	DeadTTL time.Duration
	// Now is the store's clock for time-to-live keys. Default time.Now.
	Now func() time.Time
}

// Defaults of the dead-letter retention, shared with store/redis.
const (
	DefaultDeadMax = storeutil.DefaultDeadMax
	DefaultDeadTTL = storeutil.DefaultDeadTTL
)

// sweepEvery is how often, on the store's clock, expired keys are dropped.
const sweepEvery = time.Minute

// Store is the in-process Store.
type Store struct {
	now          func() time.Time
	doneTTL      time.Duration
	maxDecisions int
	deadMax      int
	deadTTL      time.Duration
	tokenBase    string

	mu        sync.Mutex
	closed    bool
	nextSweep int64

	windows map[string]*window // counter key -> window
	strikes map[strikeKey]*window
	// activity is each user's activity in a group (user.first_seen,
	// user.messages).
	activity map[strikeKey]*activity
	dedupe   map[string]int64 // key -> expiry (ms)
	claims   map[string]int64 // ClaimOnce key -> expiry (ms)
	roles    map[string]roleCache
	modes    map[string]int64 // mode -> until (ms)
	mutes    map[string]map[string]store.Mute

	decisions   ring
	decisionSeq int64

	items    map[string]*entry // ready and claimed actions
	dead     map[string]*entry // dead-lettered actions, by id
	deadList []*entry          // the same, oldest first (by score, then id)
	done     map[string]int64  // completed action id -> expiry (ms)
	tokenSeq uint64

	limiter     *rate.Limiter
	limiterRate int
}

var _ store.Store = (*Store)(nil)

// New returns an empty memory Store.
func New(opts Options) *Store {
	storeutil.RetentionDefaults(&opts.DoneTTL, &opts.MaxDecisions, &opts.DeadMax, &opts.DeadTTL)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms.
	return &Store{
		now:          opts.Now,
		doneTTL:      opts.DoneTTL,
		maxDecisions: opts.MaxDecisions,
		deadMax:      opts.DeadMax,
		deadTTL:      opts.DeadTTL,
		tokenBase:    hex.EncodeToString(b[:]),
		windows:      make(map[string]*window),
		strikes:      make(map[strikeKey]*window),
		activity:     make(map[strikeKey]*activity),
		dedupe:       make(map[string]int64),
		claims:       make(map[string]int64),
		roles:        make(map[string]roleCache),
		modes:        make(map[string]int64),
		mutes:        make(map[string]map[string]store.Mute),
		decisions:    ring{max: opts.MaxDecisions},
		items:        make(map[string]*entry),
		dead:         make(map[string]*entry),
		done:         make(map[string]int64),
	}
}

type strikeKey struct{ group, user string }

// activity is what the store knows of one user in one group.
type activity struct {
	firstSeen int64  // ms, the event's time
	messages  int64  // messages counted
	last      string // the name of the message counted last
	expires   int64  // store clock (ms)
}

type roleCache struct {
	roles   map[string]string
	at      time.Time // SetRoles's at, to the millisecond
	expires int64
}

// begin locks the store and returns the store clock in milliseconds, or an
// error when the store is closed or ctx is done. The caller unlocks s.mu when
// begin succeeds.
func (s *Store) begin(ctx context.Context, op string) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("memory %s: %w", op, err)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return 0, fmt.Errorf("memory %s: %w: store closed", op, store.ErrUnavailable)
	}
	wall := storeutil.Ms(s.now())
	if wall >= s.nextSweep {
		s.sweep(wall)
		s.nextSweep = wall + sweepEvery.Milliseconds()
	}
	return wall, nil
}

// sweep drops every key whose time to live has passed.
func (s *Store) sweep(wall int64) {
	for k, w := range s.windows {
		if w.expires <= wall {
			delete(s.windows, k)
		}
	}
	for k, w := range s.strikes {
		if w.expires <= wall {
			delete(s.strikes, k)
		}
	}
	maps.DeleteFunc(s.activity, func(_ strikeKey, a *activity) bool { return a.expires <= wall })
	maps.DeleteFunc(s.dedupe, func(_ string, exp int64) bool { return exp <= wall })
	maps.DeleteFunc(s.claims, func(_ string, exp int64) bool { return exp <= wall })
	maps.DeleteFunc(s.done, func(_ string, exp int64) bool { return exp <= wall })
	maps.DeleteFunc(s.roles, func(_ string, rc roleCache) bool { return rc.expires <= wall })
	now := time.UnixMilli(wall)
	for g := range s.mutes {
		s.liveMutes(g, now)
	}
}

// Ping reports whether the store is open.
func (s *Store) Ping(ctx context.Context) error {
	if _, err := s.begin(ctx, "ping"); err != nil {
		return err
	}
	s.mu.Unlock()
	return nil
}

// Close marks the store closed; later calls fail with ErrUnavailable.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// ---------------------------------------------------------------------------
// Windows.

// window is a sliding log of named entries sorted by time.
type window struct {
	times   []int64
	names   []string
	members map[string]struct{}
	expires int64 // store clock (ms)
}

// add inserts member at t unless it is already present.
func (w *window) add(member string, t int64) {
	if _, ok := w.members[member]; ok {
		return
	}
	w.members[member] = struct{}{}
	i, _ := slices.BinarySearch(w.times, t+1) // after entries at t
	w.times = slices.Insert(w.times, i, t)
	w.names = slices.Insert(w.names, i, member)
}

// trim drops entries at or before upto. It reslices rather than copies, and
// lets append move the live entries to a new array now and then, so trimming
// costs only the entries dropped.
func (w *window) trim(upto int64) {
	i, _ := slices.BinarySearch(w.times, upto+1)
	for _, n := range w.names[:i] {
		delete(w.members, n)
	}
	clear(w.names[:i]) // let the dropped names be collected
	w.times, w.names = w.times[i:], w.names[i:]
}

// count is the number of entries in (from, to].
func (w *window) count(from, to int64) int64 {
	lo, _ := slices.BinarySearch(w.times, from+1)
	hi, _ := slices.BinarySearch(w.times, to+1)
	return int64(max(hi-lo, 0))
}

// touch trims, adds and counts one window in ws, as Redis does with
// ZREMRANGEBYSCORE, ZADD NX, ZCOUNT and PEXPIRE.
func touch(ws map[string]*window, key string, id string, add int, span time.Duration, now, wall int64) int64 {
	w := ws[key]
	if w != nil && w.expires <= wall {
		delete(ws, key)
		w = nil
	}
	if w == nil {
		if add == 0 {
			return 0
		}
		w = &window{members: make(map[string]struct{})}
		// A copy: the caller's key may be cut from a buffer of many
		// (rules.Env's), which a kept key would keep whole.
		ws[strings.Clone(key)] = w
	}
	spanMs := span.Milliseconds()
	w.trim(now - spanMs)
	for i := range add {
		w.add(storeutil.Member(id, i), now)
	}
	if add > 0 {
		w.expires = wall + spanMs + storeutil.ExpirySlack.Milliseconds()
	}
	return w.count(now-spanMs, now)
}

// ---------------------------------------------------------------------------
// Enrich and Commit.

// Enrich touches and reads what rule evaluation needs.
func (s *Store) Enrich(ctx context.Context, req store.EnrichRequest) (store.EnrichResult, error) {
	var res store.EnrichResult
	if err := storeutil.CheckEnrich(req); err != nil {
		return res, err
	}
	wall, err := s.begin(ctx, "enrich")
	if err != nil {
		return res, err
	}
	defer s.mu.Unlock()
	now := storeutil.Ms(req.Now)

	res.Counts = make([]int64, len(req.Counters))
	for i, c := range req.Counters {
		res.Counts[i] = touch(s.windows, c.Key, req.EventID, c.Add, c.Window, now, wall)
	}
	res.Strikes = make([]int64, len(req.Strikes))
	for i, u := range req.Strikes {
		if w := s.strikes[strikeKey{u.Group, u.User}]; w != nil && w.expires > wall {
			res.Strikes[i] = w.count(now-req.StrikeDecay.Milliseconds(), now)
		}
	}
	if req.Dedupe != "" {
		if exp, ok := s.dedupe[req.Dedupe]; ok && exp > wall {
			res.Duplicate = true
		} else {
			s.dedupe[req.Dedupe] = wall + req.DedupeTTL.Milliseconds()
		}
	}
	if req.RoleGroup != "" {
		res.Roles = make([]string, len(req.RoleUsers))
		if rc, ok := s.roles[req.RoleGroup]; ok && rc.expires > wall {
			res.RolesCached, res.RolesAt = true, rc.at
			for i, u := range req.RoleUsers {
				res.Roles[i] = cmp.Or(rc.roles[u], store.RoleMember)
			}
		}
	}
	if req.WithModes {
		res.Modes = make(map[string]time.Time)
		for name, until := range s.modes {
			if until > now {
				res.Modes[name] = time.UnixMilli(until).UTC()
			}
		}
	}
	if len(req.Activity) > 0 {
		res.FirstSeen = make([]time.Time, len(req.Activity))
		res.Messages = make([]int64, len(req.Activity))
		for i, ref := range req.Activity {
			a := s.touchActivity(ref, now, wall, req.ActivityTTL)
			if a == nil {
				continue
			}
			res.FirstSeen[i] = time.UnixMilli(a.firstSeen).UTC()
			res.Messages[i] = a.messages
		}
	}
	return res, nil
}

// touchActivity records what ref says the event adds to a user's activity
// and returns it (nil when the store knows nothing of the user).
func (s *Store) touchActivity(ref store.ActivityRef, now, wall int64, ttl time.Duration) *activity {
	key := strikeKey{ref.Group, ref.User}
	a := s.activity[key]
	if a != nil && a.expires <= wall {
		delete(s.activity, key)
		a = nil
	}
	if !ref.Seen {
		return a
	}
	if a == nil {
		a = &activity{firstSeen: now}
		s.activity[key] = a
	}
	if ref.Message != "" && ref.Message != a.last {
		a.messages++
		a.last = ref.Message
	}
	a.expires = wall + ttl.Milliseconds()
	return a
}

// Commit writes a decision's strikes, window touches, actions and decision
// records.
func (s *Store) Commit(ctx context.Context, req store.CommitRequest) error {
	if err := storeutil.CheckCommit(req); err != nil {
		return err
	}
	wall, err := s.begin(ctx, "commit")
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	now := storeutil.Ms(req.Now)
	for _, st := range req.Strikes {
		key := strikeKey{st.Group, st.User}
		w := s.strikes[key]
		if w != nil && w.expires <= wall {
			w = nil
		}
		if w == nil {
			w = &window{members: make(map[string]struct{})}
			s.strikes[key] = w
		}
		decay := req.StrikeDecay.Milliseconds()
		w.trim(now - decay)
		for i := range st.N {
			w.add(storeutil.Member(st.ID, i), now)
		}
		w.expires = wall + decay + storeutil.ExpirySlack.Milliseconds()
	}
	for _, c := range req.Touch {
		touch(s.windows, c.Key, req.EventID, c.Add, c.Window, now, wall)
	}
	s.enqueue(wall, req.Actions)
	for _, d := range req.Decisions {
		s.appendDecision(wall, d)
	}
	return nil
}

// ---------------------------------------------------------------------------
// Outbox.

type state int

const (
	stateReady state = iota
	stateClaimed
	stateDead
)

// entry is one action in the outbox. score orders it within its state: the
// due time when ready, the lease deadline when claimed, the time it died when
// dead; the same orders Redis keeps in its sorted sets. Ready and claimed
// entries are in items, dead ones in dead and deadList, so that claiming
// never looks at the dead letters.
type entry struct {
	action  store.Action
	state   state
	score   int64
	due     int64
	attempt int
	token   string
	lastErr string
	reason  string
}

// Enqueue adds actions that the outbox does not know yet.
func (s *Store) Enqueue(ctx context.Context, actions ...store.Action) error {
	if err := storeutil.CheckActions("enqueue", actions); err != nil {
		return err
	}
	wall, err := s.begin(ctx, "enqueue")
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	s.enqueue(wall, actions)
	return nil
}

func (s *Store) enqueue(wall int64, actions []store.Action) {
	for _, a := range actions {
		if _, ok := s.items[a.ID]; ok {
			continue
		}
		if _, ok := s.dead[a.ID]; ok {
			continue
		}
		if exp, ok := s.done[a.ID]; ok && exp > wall {
			continue
		}
		due := storeutil.Due(a, time.UnixMilli(wall))
		s.items[a.ID] = &entry{action: a, state: stateReady, score: due, due: due}
	}
}

// sorted returns the ready or claimed entries in state st with score <=
// upto, ordered by score then id.
func (s *Store) sorted(st state, upto int64) []*entry {
	var out []*entry
	for _, e := range s.items {
		if e.state == st && e.score <= upto {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, byScore)
	return out
}

// byScore orders entries by score, then id.
func byScore(a, b *entry) int {
	return cmp.Or(cmp.Compare(a.score, b.score), cmp.Compare(a.action.ID, b.action.ID))
}

// Claim takes up to limit due actions: first those whose lease lapsed, then
// waiting ones, each by due order.
func (s *Store) Claim(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]store.Claimed, error) {
	if err := storeutil.CheckLease("claim", lease); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	if _, err := s.begin(ctx, "claim"); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	nowMs := storeutil.Ms(now)
	picked := s.sorted(stateClaimed, nowMs)
	if len(picked) > limit {
		picked = picked[:limit]
	}
	if len(picked) < limit {
		ready := s.sorted(stateReady, nowMs)
		picked = append(picked, ready[:min(len(ready), limit-len(picked))]...)
	}
	out := make([]store.Claimed, 0, len(picked))
	for _, e := range picked {
		s.tokenSeq++
		e.state = stateClaimed
		e.score = nowMs + lease.Milliseconds()
		e.attempt++
		e.token = s.tokenBase + ":" + strconv.FormatUint(s.tokenSeq, 10)
		out = append(out, store.Claimed{Action: e.action, Attempt: e.attempt, Token: e.token, LastError: e.lastErr})
	}
	return out, nil
}

// held returns the entry c still holds, or ErrLeaseLost (ErrActionUnknown
// when the store has no trace of the action).
func (s *Store) held(op string, c store.Claimed) (*entry, error) {
	e := s.items[c.ID]
	if e == nil || e.state != stateClaimed || c.Token == "" || e.token != c.Token {
		_, dead := s.dead[c.ID]
		if _, done := s.done[c.ID]; e == nil && !dead && !done {
			return nil, fmt.Errorf("memory %s %s: %w", op, c.ID, store.ErrActionUnknown)
		}
		return nil, fmt.Errorf("memory %s %s: %w", op, c.ID, store.ErrLeaseLost)
	}
	return e, nil
}

// Extend renews the lease of a claim the caller still holds.
func (s *Store) Extend(ctx context.Context, c store.Claimed, now time.Time, lease time.Duration) error {
	if err := storeutil.CheckLease("extend", lease); err != nil {
		return err
	}
	if _, err := s.begin(ctx, "extend"); err != nil {
		return err
	}
	defer s.mu.Unlock()
	e, err := s.held("extend", c)
	if err != nil {
		return err
	}
	e.score = storeutil.Ms(now) + lease.Milliseconds()
	return nil
}

// Complete finishes a claimed action and remembers its id for DoneTTL.
func (s *Store) Complete(ctx context.Context, c store.Claimed) error {
	wall, err := s.begin(ctx, "complete")
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	if _, err := s.held("complete", c); err != nil {
		return err
	}
	delete(s.items, c.ID)
	s.done[c.ID] = wall + s.doneTTL.Milliseconds()
	return nil
}

// Retry puts a claimed action back, due at at, with errText recorded.
func (s *Store) Retry(ctx context.Context, c store.Claimed, at time.Time, errText string) error {
	if _, err := s.begin(ctx, "retry"); err != nil {
		return err
	}
	defer s.mu.Unlock()
	e, err := s.held("retry", c)
	if err != nil {
		return err
	}
	e.state, e.token, e.lastErr = stateReady, "", errText
	e.due = storeutil.Ms(at)
	e.score = e.due
	return nil
}

// Release hands claims back, due as before, without counting the attempt.
// Claims the caller no longer holds are skipped.
func (s *Store) Release(ctx context.Context, cs ...store.Claimed) error {
	if _, err := s.begin(ctx, "release"); err != nil {
		return err
	}
	defer s.mu.Unlock()
	for _, c := range cs {
		e, err := s.held("release", c)
		if err != nil {
			continue
		}
		e.state, e.token, e.score = stateReady, "", e.due
		e.attempt--
	}
	return nil
}

// DeadLetter moves a claimed action to the dead letters with reason, then
// drops the dead letters older than DeadTTL and the oldest beyond DeadMax.
func (s *Store) DeadLetter(ctx context.Context, c store.Claimed, reason string) error {
	wall, err := s.begin(ctx, "dead letter")
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	e, err := s.held("dead letter", c)
	if err != nil {
		return err
	}
	e.state, e.token, e.score, e.reason = stateDead, "", wall, reason
	delete(s.items, c.ID)
	s.dead[c.ID] = e
	i, _ := slices.BinarySearchFunc(s.deadList, e, byScore)
	s.deadList = slices.Insert(s.deadList, i, e)
	s.trimDead(wall)
	return nil
}

// trimDead drops the dead letters that died at or before wall-DeadTTL and
// the oldest beyond DeadMax. It reslices rather than copies, as window.trim
// does.
func (s *Store) trimDead(wall int64) {
	cutoff := wall - s.deadTTL.Milliseconds()
	n := max(len(s.deadList)-s.deadMax, 0)
	for n < len(s.deadList) && s.deadList[n].score <= cutoff {
		n++
	}
	for _, e := range s.deadList[:n] {
		delete(s.dead, e.action.ID)
	}
	clear(s.deadList[:n])
	s.deadList = s.deadList[n:]
}

// Stats counts the outbox at now.
func (s *Store) Stats(ctx context.Context, now time.Time) (store.OutboxStats, error) {
	var st store.OutboxStats
	if _, err := s.begin(ctx, "stats"); err != nil {
		return st, err
	}
	defer s.mu.Unlock()
	nowMs := storeutil.Ms(now)
	oldest := int64(-1)
	for _, e := range s.items {
		due := false
		switch {
		case e.state == stateReady:
			st.Ready++
			due = e.score <= nowMs
		case e.state == stateClaimed && e.score <= nowMs:
			st.Ready++
			due = true
		case e.state == stateClaimed:
			st.Claimed++
		}
		if due {
			st.Due++
			if oldest < 0 || e.due < oldest {
				oldest = e.due
			}
		}
	}
	if oldest >= 0 {
		st.Oldest = time.UnixMilli(oldest).UTC()
	}
	st.Dead = len(s.dead)
	return st, nil
}

// Dead lists dead-lettered actions, newest first.
func (s *Store) Dead(ctx context.Context, limit int) ([]store.DeadAction, error) {
	if _, err := s.begin(ctx, "dead"); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	n := min(len(s.deadList), storeutil.ListLimit(limit))
	out := make([]store.DeadAction, 0, n)
	for i := range n {
		e := s.deadList[len(s.deadList)-1-i]
		out = append(out, store.DeadAction{Action: e.action, Reason: e.reason, At: time.UnixMilli(e.score).UTC()})
	}
	return out, nil
}

// Pending lists waiting actions, soonest first.
func (s *Store) Pending(ctx context.Context, limit int) ([]store.Action, error) {
	if _, err := s.begin(ctx, "pending"); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	es := s.sorted(stateReady, 1<<62)
	es = es[:min(len(es), storeutil.ListLimit(limit))]
	out := make([]store.Action, 0, len(es))
	for _, e := range es {
		out = append(out, e.action)
	}
	return out, nil
}

// ---------------------------------------------------------------------------
// Claims, budget, decisions.

// ClaimOnce returns true to the first caller per key while the key lives.
func (s *Store) ClaimOnce(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if err := storeutil.CheckTTL("claim once", key, ttl); err != nil {
		return false, err
	}
	wall, err := s.begin(ctx, "claim once")
	if err != nil {
		return false, err
	}
	defer s.mu.Unlock()
	if exp, ok := s.claims[key]; ok && exp > wall {
		return false, nil
	}
	s.claims[key] = wall + ttl.Milliseconds()
	return true, nil
}

// Allow takes n calls from a token bucket that refills one call every
// storeutil.PaceInterval(perSecond) and holds at most one (burst 1): the same
// paced budget store/redis keeps with redis_rate's GCRA.
func (s *Store) Allow(ctx context.Context, n int, perSecond int) (bool, time.Duration, error) {
	if err := storeutil.CheckAllow(n, perSecond); err != nil {
		return false, 0, err
	}
	if n <= 0 {
		return true, 0, nil
	}
	if _, err := s.begin(ctx, "allow"); err != nil {
		return false, 0, err
	}
	defer s.mu.Unlock()
	now := s.now()
	// Calls are paced like store/redis paces them: burst 1, one call every
	// storeutil.PaceInterval. A changed budget keeps the bucket's state.
	switch {
	case s.limiter == nil:
		s.limiter = rate.NewLimiter(rate.Every(storeutil.PaceInterval(perSecond)), 1)
		s.limiterRate = perSecond
	case s.limiterRate != perSecond:
		s.limiter.SetLimitAt(now, rate.Every(storeutil.PaceInterval(perSecond)))
		s.limiterRate = perSecond
	}
	if s.limiter.AllowN(now, n) {
		return true, 0, nil
	}
	missing := float64(n) - s.limiter.TokensAt(now)
	wait := time.Duration(missing * float64(storeutil.PaceInterval(perSecond)))
	return false, max(wait, time.Millisecond), nil
}

// ring is the capped decision log, oldest first.
type ring struct {
	buf  []store.DecisionRecord
	head int // index of the oldest record once buf is full
	max  int
}

func (r *ring) push(d store.DecisionRecord) {
	if len(r.buf) < r.max {
		r.buf = append(r.buf, d)
		return
	}
	r.buf[r.head] = d
	r.head = (r.head + 1) % r.max
}

// newest returns the i-th newest record (0 is the newest).
func (r *ring) newest(i int) store.DecisionRecord {
	return r.buf[(r.head+len(r.buf)-1-i)%len(r.buf)]
}

func (s *Store) appendDecision(wall int64, d store.DecisionRecord) {
	s.decisionSeq++
	d.ID = strconv.FormatInt(wall, 10) + "-" + strconv.FormatInt(s.decisionSeq, 10)
	if !d.Time.IsZero() {
		d.Time = time.UnixMilli(d.Time.UnixMilli()).UTC() // as Redis keeps it
	}
	d.Body = slices.Clone(d.Body)
	s.decisions.push(d)
}

// RecentDecisions returns matching decisions, newest first.
func (s *Store) RecentDecisions(ctx context.Context, f store.DecisionFilter) ([]store.DecisionRecord, error) {
	if _, err := s.begin(ctx, "recent decisions"); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	limit := storeutil.DecisionLimit(f, s.maxDecisions)
	var out []store.DecisionRecord
	for i := 0; i < len(s.decisions.buf) && len(out) < limit; i++ {
		d := s.decisions.newest(i)
		if storeutil.DecisionMatches(f, d) {
			d.Body = slices.Clone(d.Body)
			out = append(out, d)
		}
	}
	return out, nil
}

// ---------------------------------------------------------------------------
// Mutes, roles, modes.

// SetMute records a mute, replacing the group's record for the same user.
func (s *Store) SetMute(ctx context.Context, m store.Mute) error {
	if err := storeutil.CheckMute(m); err != nil {
		return err
	}
	if _, err := s.begin(ctx, "set mute"); err != nil {
		return err
	}
	defer s.mu.Unlock()
	g := s.mutes[m.Group]
	if g == nil {
		g = make(map[string]store.Mute)
		s.mutes[m.Group] = g
	}
	g[m.User] = m
	return nil
}

// ClearMute removes a mute record if there is one.
func (s *Store) ClearMute(ctx context.Context, group, user string) error {
	if _, err := s.begin(ctx, "clear mute"); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if g := s.mutes[group]; g != nil {
		delete(g, user)
		if len(g) == 0 {
			delete(s.mutes, group)
		}
	}
	return nil
}

// liveMutes drops the group's expired mutes and returns the others.
func (s *Store) liveMutes(group string, now time.Time) []store.Mute {
	g := s.mutes[group]
	var out []store.Mute
	for u, m := range g {
		if storeutil.MuteLive(m, now) {
			out = append(out, m)
		} else {
			delete(g, u)
		}
	}
	if g != nil && len(g) == 0 {
		delete(s.mutes, group)
	}
	return out
}

// ListMutes returns the group's mutes still in force, group-wide first.
func (s *Store) ListMutes(ctx context.Context, group string) ([]store.Mute, error) {
	wall, err := s.begin(ctx, "list mutes")
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	out := s.liveMutes(group, time.UnixMilli(wall))
	storeutil.SortMutes(out)
	return out, nil
}

// MutedGroups returns, sorted, every group with a mute still in force.
func (s *Store) MutedGroups(ctx context.Context) ([]string, error) {
	wall, err := s.begin(ctx, "muted groups")
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	var out []string
	for g := range s.mutes {
		if len(s.liveMutes(g, time.UnixMilli(wall))) > 0 {
			out = append(out, g)
		}
	}
	slices.Sort(out)
	return out, nil
}

// SetRoles replaces the group's cached roles, read at at, for ttl.
func (s *Store) SetRoles(ctx context.Context, group string, roles map[string]string, at time.Time, ttl time.Duration) error {
	if err := storeutil.CheckRoles(group, roles, at, ttl); err != nil {
		return err
	}
	wall, err := s.begin(ctx, "set roles")
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	s.roles[group] = roleCache{roles: maps.Clone(roles), at: time.UnixMilli(at.UnixMilli()).UTC(), expires: wall + ttl.Milliseconds()}
	return nil
}

// ForgetRoles drops the group's cached roles.
func (s *Store) ForgetRoles(ctx context.Context, group string) error {
	if _, err := s.begin(ctx, "forget roles"); err != nil {
		return err
	}
	defer s.mu.Unlock()
	delete(s.roles, group)
	return nil
}

// SetMode switches the mode on until until.
func (s *Store) SetMode(ctx context.Context, name string, until time.Time) error {
	if name == "" {
		return fmt.Errorf("set mode: empty name")
	}
	if _, err := s.begin(ctx, "set mode"); err != nil {
		return err
	}
	defer s.mu.Unlock()
	s.modes[name] = storeutil.Ms(until)
	return nil
}

// ClearMode switches the mode off.
func (s *Store) ClearMode(ctx context.Context, name string) error {
	if _, err := s.begin(ctx, "clear mode"); err != nil {
		return err
	}
	defer s.mu.Unlock()
	delete(s.modes, name)
	return nil
}
