package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
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
	switch n {
	case 0:
		return fmt.Errorf("redis %s %q: %w", op, c.ID, store.ErrLeaseLost)
	case -1:
		return fmt.Errorf("redis %s %q: %w", op, c.ID, store.ErrActionUnknown)
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
func (s *Store) Complete(ctx context.Context, c store.Claimed) error {
	now := time.Now().UnixMilli()
	return s.held(ctx, "complete", s.scripts.complete, c, ms(now+s.doneTTL.Milliseconds()), ms(now))
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
