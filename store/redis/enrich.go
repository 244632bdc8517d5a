package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/store/internal/storeutil"
)

// roleMarker is the field that says a group's roles are cached, so that a
// group with no owner or admin listed is told apart from an uncached one.
// Its value is when the roles were read, in ms (SetRoles's at; "1" from
// versions that did not keep it reads as long ago). No user id is empty, so
// no user collides with it.
const roleMarker = ""

func ms(n int64) string { return strconv.FormatInt(n, 10) }

// trimEvery is how many adding touches of a window there are for one that
// drops its stale entries, on average.
const trimEvery = 4

// trims says whether touches by the event id trim their windows (FNV-1a).
func trims(id string) bool {
	h := uint32(2166136261)
	for i := 0; i < len(id); i++ {
		h ^= uint32(id[i])
		h *= 16777619
	}
	return h%trimEvery == 0
}

// chunk bounds the commands of one round trip: an event with thousands of
// subjects (a join wave of 8,000 members) is read and written in several
// pipelines of at most this many items, each bounded by Options.Timeout,
// instead of one that never fits the timeout. Everything Commit writes is
// idempotent (entries are named by their event), so a commit that failed
// half way is repeated whole.
const chunk = 256

// Enrich touches and reads what rule evaluation needs in one pipeline (one
// per chunk of counters, strikes and roles for events with very many
// subjects).
//
// Plain commands, not one Lua script carrying them all: measured on
// redis-server 7.0 with pipelines of four enrich calls (three windows, one
// adding, strikes and roles), the script cost Redis about 20-25 µs of CPU
// a call against 11-13 µs for the commands, as each redis.call inside a
// script costs more than a pipelined command; and a script would have to
// keep its keys in one Cluster slot.
func (s *Store) Enrich(ctx context.Context, req store.EnrichRequest) (store.EnrichResult, error) {
	var res store.EnrichResult
	if err := storeutil.CheckEnrich(req); err != nil {
		return res, err
	}
	now := storeutil.Ms(req.Now)
	// Counts and Strikes share one array.
	nc := len(req.Counters)
	ints := make([]int64, nc+len(req.Strikes))
	res.Counts, res.Strikes = ints[:nc:nc], ints[nc:]
	roleUsers := 0
	if req.RoleGroup != "" {
		res.Roles = make([]string, len(req.RoleUsers))
		roleUsers = len(req.RoleUsers)
	}
	// The first pipeline carries the dedupe mark, the modes and the role
	// cache's marker; counters, strikes and roles fill pipelines of at most
	// chunk items, in that order.
	if len(req.Activity) > 0 {
		res.FirstSeen = make([]time.Time, len(req.Activity))
		res.Messages = make([]int64, len(req.Activity))
	}
	var p enrichPart
	for first := true; first || p.ce < len(req.Counters) || p.se < len(req.Strikes) || p.re < roleUsers || p.ae < len(req.Activity); first = false {
		p = enrichPart{first: first, ci: p.ce, si: p.se, ri: p.re, ai: p.ae}
		budget := chunk
		p.ce = p.ci + min(budget, len(req.Counters)-p.ci)
		budget -= p.ce - p.ci
		p.se = p.si + min(budget, len(req.Strikes)-p.si)
		budget -= p.se - p.si
		p.re = p.ri + min(budget, roleUsers-p.ri)
		budget -= p.re - p.ri
		p.ae = p.ai + min(budget, len(req.Activity)-p.ai)
		if err := s.enrichPart(ctx, req, &res, now, p); err != nil {
			return res, err
		}
	}
	return res, nil
}

// enrichPart is one pipeline of Enrich: the counters [ci, ce), strikes
// [si, se), roles [ri, re) and activity [ai, ae), and with first the dedupe
// mark and modes.
type enrichPart struct {
	first          bool
	ci, ce, si, se int
	ri, re, ai, ae int
}

func (s *Store) enrichPart(ctx context.Context, req store.EnrichRequest, res *store.EnrichResult, now int64, p enrichPart) error {
	first, si, se, ri, re := p.first, p.si, p.se, p.ri, p.re
	b := newCmdBuf(ctx, s.rdb, s.enrichSize(req, p))
	nowA := b.num("", now)
	// reads holds the counts, then the strikes; on the stack unless
	// there are many.
	var readsBuf [16]*goredis.IntCmd
	var reads []*goredis.IntCmd
	if n := p.ce - p.ci + se - si; n > len(readsBuf) {
		reads = make([]*goredis.IntCmd, n)
	} else {
		reads = readsBuf[:n]
	}
	for i, c := range req.Counters[p.ci:p.ce] {
		reads[i] = b.touch(b.cat(s.k.w, c.Key), req.EventID, c.Add, c.Window, now, nowA, true)
	}
	var dedupe *goredis.BoolCmd
	var modes *goredis.MapStringStringCmd
	if first {
		if req.Dedupe != "" {
			// SetNX(key, "1", ttl) as go-redis sends it: PX for a ttl
			// that is not whole seconds, else EX.
			start := len(b.args)
			b.args = append(b.args, "set", b.cat(s.k.d, req.Dedupe), "1")
			if ttl := req.DedupeTTL; ttl < time.Second || ttl%time.Second != 0 {
				b.args = append(b.args, "px", b.num("", int64(ttl/time.Millisecond)))
			} else {
				b.args = append(b.args, "ex", b.num("", int64(ttl/time.Second)))
			}
			b.args = append(b.args, "nx")
			dedupe = b.boolCmd(start)
		}
		if req.WithModes {
			modes = goredis.NewMapStringStringCmd(ctx, "hgetall", b.str(s.k.modes))
			b.add(modes)
		}
	}
	if se > si {
		from := b.num("(", now-req.StrikeDecay.Milliseconds())
		for i, u := range req.Strikes[si:se] {
			start := len(b.args)
			b.args = append(b.args, "zcount", b.userKey(s.k.s, u.Group, u.User), from, nowA)
			reads[p.ce-p.ci+i] = b.intCmd(start)
		}
	}
	var roles *goredis.SliceCmd
	if req.RoleGroup != "" && (first || ri < re) {
		start := len(b.args)
		b.args = append(b.args, "hmget", b.cat(s.k.r, req.RoleGroup), roleMarker)
		for _, u := range req.RoleUsers[ri:re] {
			b.args = append(b.args, b.str(u))
		}
		roles = goredis.NewSliceCmd(ctx, b.argsFrom(start)...)
		b.add(roles)
	}
	var activity []*goredis.Cmd
	if p.ae > p.ai {
		activity = make([]*goredis.Cmd, p.ae-p.ai)
		for i, a := range req.Activity[p.ai:p.ae] {
			activity[i] = s.scripts.activity.EvalSha(ctx, b.typedCmds(), []string{s.k.activity(a.Group, a.User)}, s.activityArgs(req, a)...)
			b.add(activity[i])
		}
	}
	if s.built != nil {
		s.built(b.used(), b.size)
	}
	cmds, err := s.run(ctx, b.cmds)
	// cmds is nil when the wait for the pipeline ended first (the
	// caller's deadline passed): the sender may still hold b's commands.
	if cmds != nil {
		defer b.release()
	}
	if err != nil {
		if cmds == nil {
			return s.result("enrich", req.EventID, err)
		}
		if err := s.activityAgain(ctx, req, p, cmds, activity); err != nil {
			return s.result("enrich", req.EventID, err)
		}
	}
	_ = s.result("enrich", req.EventID, nil)

	for i, c := range reads[:p.ce-p.ci] {
		res.Counts[p.ci+i] = c.Val()
	}
	for i, c := range reads[p.ce-p.ci:] {
		res.Strikes[si+i] = c.Val()
	}
	if dedupe != nil {
		res.Duplicate = !dedupe.Val()
	}
	if roles != nil {
		vals := roles.Val()
		cached := len(vals) > 0 && vals[0] != nil
		if first {
			res.RolesCached = cached
			if cached {
				at, _ := vals[0].(string)
				res.RolesAt = rolesAt(at)
			}
		}
		if res.RolesCached && cached {
			for i := range req.RoleUsers[ri:re] {
				res.Roles[ri+i] = store.RoleMember
				if r, ok := vals[i+1].(string); ok && r != "" {
					res.Roles[ri+i] = r
				}
			}
		} else if res.RolesCached {
			// The cache expired between two pipelines: the event is
			// judged as if nothing were cached.
			res.RolesCached, res.RolesAt = false, time.Time{}
			clear(res.Roles)
		}
	}
	for i, c := range activity {
		vals, err := c.StringSlice()
		if err != nil || len(vals) != 2 {
			return fmt.Errorf("redis enrich: activity of %q in %q: %v %w", req.Activity[p.ai+i].User, req.Activity[p.ai+i].Group, vals, err)
		}
		if vals[0] != "" {
			first, err := strconv.ParseInt(vals[0], 10, 64)
			if err != nil {
				return fmt.Errorf("redis enrich: activity of %q in %q: first seen %q: %w", req.Activity[p.ai+i].User, req.Activity[p.ai+i].Group, vals[0], err)
			}
			res.FirstSeen[p.ai+i] = time.UnixMilli(first).UTC()
		}
		res.Messages[p.ai+i], _ = strconv.ParseInt(vals[1], 10, 64)
	}
	if modes != nil {
		res.Modes = make(map[string]time.Time)
		for name, v := range modes.Val() {
			until, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return fmt.Errorf("redis enrich: mode %q has until %q: %w", name, v, err)
			}
			if until > now {
				res.Modes[name] = time.UnixMilli(until).UTC()
			}
		}
	}
	return nil
}

// enrichSize is what the part p of req holds (cmdBuf).
func (s *Store) enrichSize(req store.EnrichRequest, p enrichPart) bufSize {
	z := bufSize{strs: 1, bytes: 20} // now
	most := 0
	for _, c := range req.Counters[p.ci:p.ce] {
		z.add(touchSize(len(s.k.w)+len(c.Key), req.EventID, c.Add, true))
		most = max(most, c.Add)
	}
	z.add(memberSize(req.EventID, most))
	if p.first && req.Dedupe != "" {
		z.add(bufSize{cmds: 1, args: 6, strs: 2, bytes: len(s.k.d) + len(req.Dedupe) + 20})
	}
	if p.first && req.WithModes {
		z.add(bufSize{cmds: 1, strs: 1})
	}
	if p.se > p.si {
		z.add(bufSize{strs: 1, bytes: 21})
		for _, u := range req.Strikes[p.si:p.se] {
			z.add(bufSize{cmds: 1, args: 4, strs: 1, bytes: len(s.k.s) + 20 + len(u.Group) + len(u.User) + 2})
		}
	}
	if req.RoleGroup != "" {
		z.add(bufSize{cmds: 1, args: 3 + p.re - p.ri, strs: 1 + p.re - p.ri, bytes: len(s.k.r) + len(req.RoleGroup)})
	}
	z.cmds += p.ae - p.ai
	return z
}

func (s *Store) activityArgs(req store.EnrichRequest, a store.ActivityRef) []any {
	seen := "0"
	if a.Seen {
		seen = "1"
	}
	return []any{ms(storeutil.Ms(req.Now)), seen, a.Message, ms(req.ActivityTTL.Milliseconds())}
}

// activityAgain looks at a failed enrich pipeline: when only activity
// scripts failed, and only because Redis lost its script cache (a
// restart), they did nothing and are sent again with EVAL in a second trip,
// which fills cmds' places in activity. Any other failure is returned.
func (s *Store) activityAgain(ctx context.Context, req store.EnrichRequest, p enrichPart, cmds []goredis.Cmder, activity []*goredis.Cmd) error {
	missing := map[goredis.Cmder]bool{}
	for _, c := range activity {
		missing[c] = true
	}
	var again []int
	for _, c := range cmds {
		cerr := c.Err()
		if cerr == nil || errors.Is(cerr, goredis.Nil) {
			continue
		}
		if !missing[c] || !goredis.HasErrorPrefix(cerr, "NOSCRIPT") {
			return cerr
		}
	}
	for i, c := range activity {
		if c.Err() != nil {
			again = append(again, i)
		}
	}
	if len(again) == 0 {
		return nil
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	pipe := s.rdb.Pipeline()
	for _, i := range again {
		a := req.Activity[p.ai+i]
		activity[i] = s.scripts.activity.Eval(ctx, pipe, []string{s.k.activity(a.Group, a.User)}, s.activityArgs(req, a)...)
	}
	_, err := pipe.Exec(ctx)
	return err
}

// Commit writes a decision's strikes, window touches, actions and decision
// records in one pipeline, or in one pipeline per chunk of them for a
// decision with very many.
func (s *Store) Commit(ctx context.Context, req store.CommitRequest) error {
	if err := storeutil.CheckCommit(req); err != nil {
		return err
	}
	if len(req.Strikes)+len(req.Touch)+len(req.Actions)+len(req.Decisions) <= chunk {
		return s.commitPart(ctx, req) // without the copy splitCommit makes
	}
	for _, part := range splitCommit(req, chunk) {
		if err := s.commitPart(ctx, part); err != nil {
			return err
		}
	}
	return nil
}

// splitCommit cuts req into requests of at most n strikes, touches,
// actions and decision records in all.
func splitCommit(req store.CommitRequest, n int) []store.CommitRequest {
	if len(req.Strikes)+len(req.Touch)+len(req.Actions)+len(req.Decisions) <= n {
		return []store.CommitRequest{req}
	}
	var parts []store.CommitRequest
	part := func() *store.CommitRequest {
		if len(parts) == 0 {
			parts = append(parts, store.CommitRequest{Now: req.Now, StrikeDecay: req.StrikeDecay, EventID: req.EventID})
		}
		p := &parts[len(parts)-1]
		if len(p.Strikes)+len(p.Touch)+len(p.Actions)+len(p.Decisions) >= n {
			parts = append(parts, store.CommitRequest{Now: req.Now, StrikeDecay: req.StrikeDecay, EventID: req.EventID})
			p = &parts[len(parts)-1]
		}
		return p
	}
	for _, v := range req.Strikes {
		p := part()
		p.Strikes = append(p.Strikes, v)
	}
	for _, v := range req.Touch {
		p := part()
		p.Touch = append(p.Touch, v)
	}
	for _, v := range req.Actions {
		p := part()
		p.Actions = append(p.Actions, v)
	}
	for _, v := range req.Decisions {
		p := part()
		p.Decisions = append(p.Decisions, v)
	}
	return parts
}

// commitPart sends one pipeline of Commit. The enqueue script goes as
// EVALSHA; if Redis lost its script cache (a restart), it is sent again
// with EVAL in a second trip.
func (s *Store) commitPart(ctx context.Context, req store.CommitRequest) error {
	now := storeutil.Ms(req.Now)
	b := newCmdBuf(ctx, s.rdb, s.commitSize(req))
	nowA := b.num("", now)
	decay := req.StrikeDecay
	var from, ttl any
	if len(req.Strikes) > 0 {
		from, ttl = b.num("", now-decay.Milliseconds()), b.num("", (decay+storeutil.ExpirySlack).Milliseconds())
	}
	for _, st := range req.Strikes {
		key := b.userKey(s.k.s, st.Group, st.User)
		start := len(b.args)
		b.args = append(b.args, "zremrangebyscore", key, "-inf", from)
		b.intCmd(start)
		if st.N > 0 {
			start := len(b.args)
			b.args = append(b.args, "zadd", key, "nx")
			for i := range st.N {
				b.args = append(b.args, nowA, b.member(st.ID, i))
			}
			b.intCmd(start)
			start = len(b.args)
			b.args = append(b.args, "pexpire", key, ttl)
			b.intCmd(start) // its 0 or 1 is not read
		}
	}
	for _, c := range req.Touch {
		b.touch(b.cat(s.k.w, c.Key), req.EventID, c.Add, c.Window, now, nowA, false)
	}
	var enqueue *goredis.Cmd
	var enqueueArgs []any
	if len(req.Actions) > 0 {
		var err error
		if enqueueArgs, err = s.enqueueArgs(req.Actions); err != nil {
			return err
		}
		enqueue = s.scripts.enqueue.EvalSha(ctx, b.typedCmds(), s.k.outbox, enqueueArgs...)
		b.add(enqueue)
	}
	for _, d := range req.Decisions {
		b.add(s.addDecision(ctx, b.typedCmds(), d))
	}
	if s.built != nil {
		s.built(b.used(), b.size)
	}
	cmds, err := s.run(ctx, b.cmds)
	// As in enrichPart: b is reused only when its pipeline is known to
	// have finished.
	if cmds != nil {
		defer b.release()
	}
	if err == nil {
		return s.result("commit", req.EventID, nil)
	}
	if cmds == nil {
		return s.result("commit", req.EventID, err)
	}
	// Commands fail one by one in a pipeline: report the first failure that
	// is not the enqueue script missing from the cache.
	for _, c := range cmds {
		if cerr := c.Err(); cerr != nil && !errors.Is(cerr, goredis.Nil) {
			if c == goredis.Cmder(enqueue) && goredis.HasErrorPrefix(cerr, "NOSCRIPT") {
				continue
			}
			return s.result("commit", req.EventID, cerr)
		}
	}
	if enqueue != nil && enqueue.Err() != nil {
		ctx, cancel := s.bound(ctx)
		defer cancel()
		err := s.scripts.enqueue.Run(ctx, s.rdb, s.k.outbox, enqueueArgs...).Err()
		return s.result("commit enqueue", req.EventID, err)
	}
	return s.result("commit", req.EventID, err)
}

// commitSize is what req holds (cmdBuf).
func (s *Store) commitSize(req store.CommitRequest) bufSize {
	z := bufSize{cmds: len(req.Actions) + len(req.Decisions), strs: 3, bytes: 3 * 20} // now, strikes' from and ttl
	for _, st := range req.Strikes {
		z.add(bufSize{cmds: 1, args: 4, strs: 1, bytes: len(s.k.s) + 20 + len(st.Group) + len(st.User) + 2})
		if st.N > 0 {
			z.add(bufSize{cmds: 2, args: 3 + 2*st.N + 3})
			z.add(memberSize(st.ID, st.N))
		}
	}
	most := 0
	for _, c := range req.Touch {
		z.add(touchSize(len(s.k.w)+len(c.Key), req.EventID, c.Add, false))
		most = max(most, c.Add)
	}
	z.add(memberSize(req.EventID, most))
	return z
}

// ClaimOnce sets the key if it is not set; true means this caller won.
func (s *Store) ClaimOnce(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if err := storeutil.CheckTTL("claim once", key, ttl); err != nil {
		return false, err
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	ok, err := s.rdb.SetNX(ctx, s.k.claimOnce(key), "1", ttl).Result()
	return ok, s.result("claim once", key, err)
}

// Allow takes one call from the shared budget with redis_rate's GCRA: calls
// are paced (burst 1) at a little under perSecond a second, so that no
// one-second window at the IM server ever holds more than perSecond calls,
// even when network jitter brings two calls closer together.
func (s *Store) Allow(ctx context.Context, n int, perSecond int) (bool, time.Duration, error) {
	if err := storeutil.CheckAllow(n, perSecond); err != nil {
		return false, 0, err
	}
	if n <= 0 {
		return true, 0, nil
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	res, err := s.limiter.AllowN(ctx, s.k.rate, storeutil.Pace(perSecond), n)
	if err != nil {
		return false, 0, s.result("allow", s.k.rate, err)
	}
	_ = s.result("allow", s.k.rate, nil)
	if res.Allowed > 0 {
		return true, 0, nil
	}
	return false, max(res.RetryAfter, time.Millisecond), nil
}

// ---------------------------------------------------------------------------
// Decisions.

func (s *Store) addDecision(ctx context.Context, pipe goredis.Pipeliner, d store.DecisionRecord) *goredis.StringCmd {
	return pipe.XAdd(ctx, &goredis.XAddArgs{
		Stream: s.k.decisions,
		MaxLen: int64(s.maxDecisions),
		Approx: true,
		Values: []any{"t", decisionTime(d.Time), "g", d.Group, "u", d.User, "b", d.Body},
	})
}

// RecentDecisions pages through the stream newest first until it has
// f.Limit matches or has read MaxDecisions entries, so the log it shows never
// holds more than the cap even though the stream is trimmed approximately.
func (s *Store) RecentDecisions(ctx context.Context, f store.DecisionFilter) ([]store.DecisionRecord, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	limit := storeutil.DecisionLimit(f, s.maxDecisions)
	page := limit
	if f.Group != "" || f.User != "" {
		page = max(limit, 500)
	}
	var out []store.DecisionRecord
	end, scanned := "+", 0
	for len(out) < limit && scanned < s.maxDecisions {
		n := min(page, s.maxDecisions-scanned)
		msgs, err := s.rdb.XRevRangeN(ctx, s.k.decisions, end, "-", int64(n)).Result()
		if err != nil {
			return nil, s.result("recent decisions", s.k.decisions, err)
		}
		for _, m := range msgs {
			scanned++
			d, err := decodeDecision(m)
			if err != nil {
				return nil, fmt.Errorf("redis recent decisions %q: %w", s.k.decisions, err)
			}
			if storeutil.DecisionMatches(f, d) {
				out = append(out, d)
				if len(out) == limit {
					break
				}
			}
		}
		if len(msgs) < n {
			break
		}
		end = "(" + msgs[len(msgs)-1].ID
	}
	return out, s.result("recent decisions", s.k.decisions, nil)
}

// decisionTime is a decision's time in ms, or "" for none.
func decisionTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return ms(t.UnixMilli())
}

func decodeDecision(m goredis.XMessage) (store.DecisionRecord, error) {
	str := func(k string) string {
		v, _ := m.Values[k].(string)
		return v
	}
	var at time.Time
	if v := str("t"); v != "" {
		t, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return store.DecisionRecord{}, fmt.Errorf("entry %s: time %q: %w", m.ID, v, err)
		}
		at = time.UnixMilli(t).UTC()
	}
	return store.DecisionRecord{
		ID:    m.ID,
		Time:  at,
		Group: str("g"),
		User:  str("u"),
		Body:  []byte(str("b")),
	}, nil
}

// ---------------------------------------------------------------------------
// Mutes.

// mutes runs the mute script for group; args follow op, group and now.
func (s *Store) mutes(ctx context.Context, op, group string, args ...any) ([]store.Mute, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	keys := []string{s.k.groupMutes(group), s.k.muted}
	argv := append([]any{op, group, ms(time.Now().UnixMilli())}, args...)
	vals, err := s.scripts.mutes.Run(ctx, s.shared, keys, argv...).StringSlice()
	if err != nil {
		return nil, s.result(op+" mutes", group, err)
	}
	_ = s.result(op+" mutes", group, nil)
	out := make([]store.Mute, 0, len(vals))
	for _, v := range vals {
		var m store.Mute
		if err := json.Unmarshal([]byte(v), &m); err != nil {
			return nil, fmt.Errorf("redis %s mutes %q: decode %q: %w", op, group, v, err)
		}
		out = append(out, m)
	}
	storeutil.SortMutes(out)
	return out, nil
}

// SetMute records a mute, replacing the group's record for the same user.
func (s *Store) SetMute(ctx context.Context, m store.Mute) error {
	if err := storeutil.CheckMute(m); err != nil {
		return err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("redis set mute %q in %q: %w", m.User, m.Group, err)
	}
	var until int64
	if !m.Until.IsZero() {
		until = m.Until.UnixMilli()
	}
	_, err = s.mutes(ctx, "set", m.Group, m.User, ms(until), b)
	return err
}

// ClearMute removes a mute record if there is one.
func (s *Store) ClearMute(ctx context.Context, group, user string) error {
	_, err := s.mutes(ctx, "clear", group, user)
	return err
}

// ListMutes returns the group's mutes still in force, group-wide first, and
// drops the expired ones.
func (s *Store) ListMutes(ctx context.Context, group string) ([]store.Mute, error) {
	return s.mutes(ctx, "list", group)
}

// MutedGroups returns, sorted, every group with a mute still in force.
func (s *Store) MutedGroups(ctx context.Context) ([]string, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	pipe := s.rdb.Pipeline()
	pipe.ZRemRangeByScore(ctx, s.k.muted, "-inf", ms(time.Now().UnixMilli()))
	groups := pipe.ZRange(ctx, s.k.muted, 0, -1)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, s.result("muted groups", s.k.muted, err)
	}
	out := groups.Val()
	slices.Sort(out)
	return out, s.result("muted groups", s.k.muted, nil)
}

// ---------------------------------------------------------------------------
// Roles and modes.

// rolesAt reads the role marker's value; a value that is not a time in ms
// (an older version's "1") reads as long ago, 1970, so the roles are
// refreshed.
func rolesAt(marker string) time.Time {
	n, err := strconv.ParseInt(marker, 10, 64)
	if err != nil || n <= 0 {
		n = 1
	}
	return time.UnixMilli(n).UTC()
}

// SetRoles replaces the group's cached roles, read at at, for ttl in one
// transaction.
func (s *Store) SetRoles(ctx context.Context, group string, roles map[string]string, at time.Time, ttl time.Duration) error {
	if err := storeutil.CheckRoles(group, roles, at, ttl); err != nil {
		return err
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	key := s.k.roles(group)
	fields := make([]any, 0, 2+2*len(roles))
	fields = append(fields, roleMarker, ms(at.UnixMilli()))
	for u, r := range roles {
		fields = append(fields, u, r)
	}
	_, err := s.rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.Del(ctx, key)
		p.HSet(ctx, key, fields...)
		p.PExpire(ctx, key, ttl)
		return nil
	})
	return s.result("set roles", group, err)
}

// ForgetRoles drops the group's cached roles.
func (s *Store) ForgetRoles(ctx context.Context, group string) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	return s.result("forget roles", group, s.rdb.Del(ctx, s.k.roles(group)).Err())
}

// SetMode switches the mode on until until.
func (s *Store) SetMode(ctx context.Context, name string, until time.Time) error {
	if name == "" {
		return errors.New("set mode: empty name")
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	return s.result("set mode", name, s.rdb.HSet(ctx, s.k.modes, name, ms(until.UnixMilli())).Err())
}

// ClearMode switches the mode off.
func (s *Store) ClearMode(ctx context.Context, name string) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	return s.result("clear mode", name, s.rdb.HDel(ctx, s.k.modes, name).Err())
}
