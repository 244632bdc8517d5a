package redis

import (
	"context"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/store/internal/storeutil"
)

// reviveLua moves a dead letter back to ready, due at ARGV[2], with its
// attempts, token, last error and reason forgotten. ARGV: id, now. Returns
// 1, or 0 when id is not a dead letter.
const reviveLua = `
local id = ARGV[1]
if not redis.call('ZSCORE', KEYS[3], id) or redis.call('HEXISTS', KEYS[5], id) == 0 then return 0 end
redis.call('ZREM', KEYS[3], id)
for k = 6, 8 do redis.call('HDEL', KEYS[k], id) end
redis.call('HDEL', KEYS[10], id)
redis.call('HSET', KEYS[9], id, ARGV[2])
redis.call('ZADD', KEYS[1], ARGV[2], id)
return 1
`

// dismissLua drops a dead letter with its data. ARGV: id. Returns 1, or 0
// when id is not a dead letter.
const dismissLua = `
local id = ARGV[1]
if redis.call('ZREM', KEYS[3], id) == 0 then return 0 end
for k = 5, 10 do redis.call('HDEL', KEYS[k], id) end
return 1
`

var (
	reviveScript  = goredis.NewScript(reviveLua)
	dismissScript = goredis.NewScript(dismissLua)
)

// ReviveDead puts a dead letter back among the waiting actions, due at now.
func (s *Store) ReviveDead(ctx context.Context, id string, now time.Time) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	n, err := reviveScript.Run(ctx, s.rdb, s.k.outbox, id, ms(storeutil.Ms(now))).Int()
	if err := s.result("revive dead", id, err); err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("redis revive %q: %w", id, store.ErrNoDeadLetter)
	}
	return nil
}

// DismissDead drops a dead letter.
func (s *Store) DismissDead(ctx context.Context, id string) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	n, err := dismissScript.Run(ctx, s.rdb, s.k.outbox, id).Int()
	if err := s.result("dismiss dead", id, err); err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("redis dismiss %q: %w", id, store.ErrNoDeadLetter)
	}
	return nil
}

// ClearStrikes forgets user's strikes in group.
func (s *Store) ClearStrikes(ctx context.Context, group, user string) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	key := s.k.strikes(group, user)
	return s.result("clear strikes", key, s.rdb.Del(ctx, key).Err())
}
