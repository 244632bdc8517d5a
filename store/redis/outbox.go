package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/store/internal/storeutil"
)

// enqueueArgs builds the enqueue script's ARGV: now, then id, due, json.
func (s *Store) enqueueArgs(actions []store.Action) ([]any, error) {
	now := time.Now()
	args := make([]any, 0, 1+3*len(actions))
	args = append(args, ms(now.UnixMilli()))
	for _, a := range actions {
		b, err := json.Marshal(a)
		if err != nil {
			return nil, fmt.Errorf("redis enqueue %q: %w", a.ID, err)
		}
		args = append(args, a.ID, ms(storeutil.Due(a, now)), b)
	}
	return args, nil
}

// Enqueue adds actions the outbox does not know yet, atomically.
func (s *Store) Enqueue(ctx context.Context, actions ...store.Action) error {
	if len(actions) == 0 {
		return nil
	}
	if err := storeutil.CheckActions("enqueue", actions); err != nil {
		return err
	}
	args, err := s.enqueueArgs(actions)
	if err != nil {
		return err
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	err = s.scripts.enqueue.Run(ctx, s.rdb, s.k.outbox, args...).Err()
	return s.result("enqueue", actions[0].ID, err)
}

// Claim takes up to limit due actions under a lease.
func (s *Store) Claim(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]store.Claimed, error) {
	if err := storeutil.CheckLease("claim", lease); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	nowMs := storeutil.Ms(now)
	rows, err := s.scripts.claim.Run(ctx, s.rdb, s.k.outbox,
		ms(nowMs), limit, ms(nowMs+lease.Milliseconds()), randomToken()).Slice()
	if err != nil {
		return nil, s.result("claim", s.k.outbox[0], err)
	}
	_ = s.result("claim", s.k.outbox[0], nil)
	out := make([]store.Claimed, 0, len(rows))
	for _, r := range rows {
		row, ok := r.([]any)
		if !ok || len(row) != 4 {
			return out, fmt.Errorf("redis claim: unexpected reply %v", r)
		}
		data, _ := row[0].(string)
		attempt, _ := row[1].(int64)
		token, _ := row[2].(string)
		lastErr, _ := row[3].(string)
		var c store.Claimed
		if err := json.Unmarshal([]byte(data), &c.Action); err != nil {
			return out, fmt.Errorf("redis claim: decode action %q: %w", data, err)
		}
		c.Attempt, c.Token, c.LastError = int(attempt), token, lastErr
		out = append(out, c)
	}
	return out, nil
}

// held runs a script that checks the claim's token first; a 0 reply is a
// lost lease, -1 an action the store does not know.
func (s *Store) held(ctx context.Context, op string, script *goredis.Script, c store.Claimed, args ...any) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	n, err := script.Run(ctx, s.rdb, s.k.outbox, append([]any{c.ID, c.Token}, args...)...).Int()
	if err != nil {
		return s.result(op, c.ID, err)
	}
	_ = s.result(op, c.ID, nil)
	return heldResult(op, c.ID, int64(n))
}

// heldResult is the error of a script reply that checked a claim's token.
func heldResult(op, id string, n int64) error {
	switch n {
	case 0:
		return fmt.Errorf("redis %s %q: %w", op, id, store.ErrLeaseLost)
	case -1:
		return fmt.Errorf("redis %s %q: %w", op, id, store.ErrActionUnknown)
	}
	return nil
}

// Extend renews the lease of a claim the caller still holds.
func (s *Store) Extend(ctx context.Context, c store.Claimed, now time.Time, lease time.Duration) error {
	if err := storeutil.CheckLease("extend", lease); err != nil {
		return err
	}
	return s.held(ctx, "extend", s.scripts.extend, c, ms(storeutil.Ms(now)+lease.Milliseconds()))
}

// Complete finishes a claimed action and remembers its id for DoneTTL.
//
// Concurrent calls share one script run: the executor completes the
// actions of one REST call together, and a script run costs Redis more than
// the few commands it runs for one action. The first caller runs the script
// for itself and whoever queued before it starts; callers arriving while a
// run is under way queue, and the first of them runs the next one for all
// of them. So no caller waits for a timer, and none runs more than one
// script. Each action is settled as a call of its own would settle it.
func (s *Store) Complete(ctx context.Context, c store.Claimed) error {
	w := &completion{ctx: ctx, c: c, ready: make(chan struct{}, 1)}
	q := &s.completions
	q.mu.Lock()
	q.queue = append(q.queue, w)
	lead := !q.running
	q.running = true
	q.mu.Unlock()
	if !lead {
		<-w.ready
		if !w.lead {
			return w.err
		}
	}
	s.runCompletions()
	return w.err
}

// completeBatchMax bounds the claims one complete script settles, so that
// one run stays short.
const completeBatchMax = 256

// completions is the queue of Complete calls waiting for a script run.
// While running is set one caller runs it; queue is empty otherwise.
type completions struct {
	mu      sync.Mutex
	queue   []*completion
	running bool
}

// completion is one Complete call.
type completion struct {
	ctx   context.Context
	c     store.Claimed
	ready chan struct{} // signalled once err is set, or lead
	lead  bool          // woken to run the script for the queue
	err   error
}

// runCompletions runs the complete script for the claims at the head of the
// queue (the caller's own first), hands every caller its result, and passes
// the turn to the first caller still queued.
func (s *Store) runCompletions() {
	q := &s.completions
	q.mu.Lock()
	n := min(len(q.queue), completeBatchMax)
	batch := q.queue[:n:n]
	q.queue = q.queue[n:]
	if len(q.queue) == 0 {
		q.queue = nil
	}
	q.mu.Unlock()

	s.completeBatch(batch)

	q.mu.Lock()
	if len(q.queue) > 0 {
		next := q.queue[0]
		next.lead = true
		next.ready <- struct{}{}
	} else {
		q.running = false
	}
	q.mu.Unlock()
	for _, w := range batch[1:] {
		w.ready <- struct{}{}
	}
}

// completeBatch settles the claims of batch in one script run and sets
// each one's err. A caller whose context ended before the run is not
// settled. The run has the store's timeout of its own: the callers' contexts
// cannot bound it, since it serves them all.
func (s *Store) completeBatch(batch []*completion) {
	now := time.Now().UnixMilli()
	args := make([]any, 2, 2+2*len(batch))
	args[0], args[1] = ms(now+s.doneTTL.Milliseconds()), ms(now)
	live := batch[:0:0]
	for _, w := range batch {
		if err := w.ctx.Err(); err != nil {
			w.err = s.result("complete", w.c.ID, err)
			continue
		}
		live = append(live, w)
		args = append(args, w.c.ID, w.c.Token)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := s.bound(context.WithoutCancel(live[0].ctx))
	defer cancel()
	res, err := s.scripts.complete.Run(ctx, s.shared, s.k.outbox, args...).Int64Slice()
	if err == nil && len(res) != len(live) {
		err = fmt.Errorf("redis complete: %d results for %d claims", len(res), len(live))
	}
	for i, w := range live {
		if err != nil {
			w.err = s.result("complete", w.c.ID, err)
			continue
		}
		_ = s.result("complete", w.c.ID, nil)
		w.err = heldResult("complete", w.c.ID, res[i])
	}
}

// Retry puts a claimed action back, due at at, with errText recorded.
func (s *Store) Retry(ctx context.Context, c store.Claimed, at time.Time, errText string) error {
	return s.held(ctx, "retry", s.scripts.retry, c, ms(storeutil.Ms(at)), errText)
}

// DeadLetter moves a claimed action to the dead letters with reason, then
// drops the dead letters older than DeadTTL and the oldest beyond DeadMax,
// with their data.
func (s *Store) DeadLetter(ctx context.Context, c store.Claimed, reason string) error {
	now := time.Now().UnixMilli()
	return s.held(ctx, "dead letter", s.scripts.deadLetter, c, ms(now), reason,
		ms(now-s.deadTTL.Milliseconds()), s.deadMax)
}

// Release hands claims back, due as before, without counting the attempt.
// Claims the caller no longer holds are skipped.
func (s *Store) Release(ctx context.Context, cs ...store.Claimed) error {
	if len(cs) == 0 {
		return nil
	}
	args := make([]any, 0, 2*len(cs))
	for _, c := range cs {
		args = append(args, c.ID, c.Token)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	return s.result("release", cs[0].ID, s.scripts.release.Run(ctx, s.rdb, s.k.outbox, args...).Err())
}

// Stats counts the outbox at now.
func (s *Store) Stats(ctx context.Context, now time.Time) (store.OutboxStats, error) {
	var st store.OutboxStats
	ctx, cancel := s.bound(ctx)
	defer cancel()
	vals, err := s.scripts.stats.Run(ctx, s.rdb, s.k.outbox, ms(storeutil.Ms(now))).Int64Slice()
	if err != nil {
		return st, s.result("stats", s.k.outbox[0], err)
	}
	if len(vals) != 5 {
		return st, fmt.Errorf("redis stats: unexpected reply %v", vals)
	}
	st.Ready, st.Due, st.Claimed, st.Dead = int(vals[0]), int(vals[1]), int(vals[2]), int(vals[3])
	if vals[4] >= 0 {
		st.Oldest = time.UnixMilli(vals[4]).UTC()
	}
	return st, s.result("stats", s.k.outbox[0], nil)
}

// Pending lists waiting actions, soonest first.
func (s *Store) Pending(ctx context.Context, limit int) ([]store.Action, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	vals, err := s.scripts.pending.Run(ctx, s.rdb, s.k.outbox, storeutil.ListLimit(limit)).StringSlice()
	if err != nil {
		return nil, s.result("pending", s.k.outbox[0], err)
	}
	out := make([]store.Action, 0, len(vals))
	for _, v := range vals {
		var a store.Action
		if err := json.Unmarshal([]byte(v), &a); err != nil {
			return out, fmt.Errorf("redis pending: decode action %q: %w", v, err)
		}
		out = append(out, a)
	}
	return out, s.result("pending", s.k.outbox[0], nil)
}

// Dead lists dead-lettered actions, newest first.
func (s *Store) Dead(ctx context.Context, limit int) ([]store.DeadAction, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	rows, err := s.scripts.dead.Run(ctx, s.rdb, s.k.outbox, storeutil.ListLimit(limit)).Slice()
	if err != nil {
		return nil, s.result("dead", s.k.outbox[0], err)
	}
	out := make([]store.DeadAction, 0, len(rows))
	for _, r := range rows {
		row, ok := r.([]any)
		if !ok || len(row) != 3 {
			return out, fmt.Errorf("redis dead: unexpected reply %v", r)
		}
		data, _ := row[0].(string)
		reason, _ := row[1].(string)
		atStr, _ := row[2].(string)
		var d store.DeadAction
		if err := json.Unmarshal([]byte(data), &d.Action); err != nil {
			return out, fmt.Errorf("redis dead: decode action %q: %w", data, err)
		}
		at, err := strconv.ParseFloat(atStr, 64)
		if err != nil {
			return out, fmt.Errorf("redis dead %q: time %q: %w", d.ID, atStr, err)
		}
		d.Reason, d.At = reason, time.UnixMilli(int64(at)).UTC()
		out = append(out, d)
	}
	return out, s.result("dead", s.k.outbox[0], nil)
}
