package redis

import goredis "github.com/redis/go-redis/v9"

// The outbox scripts all take the same KEYS, which share one hash tag so
// that they live in one Cluster slot:
//
//	KEYS[1]  ready    zset id -> due (ms)
//	KEYS[2]  claimed  zset id -> lease deadline (ms)
//	KEYS[3]  dead     zset id -> dead-lettered at (ms)
//	KEYS[4]  done     zset id -> remembered until (ms)
//	KEYS[5]  data     hash id -> action JSON
//	KEYS[6]  attempt  hash id -> claims so far
//	KEYS[7]  token    hash id -> token of the current claim
//	KEYS[8]  error    hash id -> last error recorded by Retry
//	KEYS[9]  due      hash id -> due (ms), kept while the action is claimed
//	KEYS[10] reason   hash id -> dead-letter reason
//
// An action is in exactly one of ready, claimed or dead while data holds it;
// a holder proves its claim with the token, which is unset as soon as the
// action leaves the claimed set. The scripts that need a held claim return
// 0 to a caller without it, or -1 when the action is not known at all
// (see notHeldLua).

// enqueueLua adds actions that are neither known nor recently completed.
// ARGV: now, then id, due, json for each action. Returns how many were added.
const enqueueLua = `
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
local added = 0
for i = 2, #ARGV, 3 do
  local id = ARGV[i]
  if redis.call('HEXISTS', KEYS[5], id) == 0 and not redis.call('ZSCORE', KEYS[4], id) then
    redis.call('HSET', KEYS[5], id, ARGV[i + 2])
    redis.call('HSET', KEYS[9], id, ARGV[i + 1])
    redis.call('ZADD', KEYS[1], ARGV[i + 1], id)
    added = added + 1
  end
end
return added
`

// claimLua takes up to max due actions: first claims whose lease lapsed,
// then waiting actions, each in due order. ARGV: now, max, lease deadline,
// token base. Returns {json, attempt, token, last error} per action.
const claimLua = `
local now = tonumber(ARGV[1])
local max = tonumber(ARGV[2])
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, max)
if #ids < max then
  local more = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, max - #ids)
  for _, id in ipairs(more) do ids[#ids + 1] = id end
end
local out = {}
for i, id in ipairs(ids) do
  local data = redis.call('HGET', KEYS[5], id)
  redis.call('ZREM', KEYS[1], id)
  if data then
    local token = ARGV[4] .. ':' .. i
    redis.call('ZADD', KEYS[2], ARGV[3], id)
    local n = redis.call('HINCRBY', KEYS[6], id, 1)
    redis.call('HSET', KEYS[7], id, token)
    out[#out + 1] = {data, n, token, redis.call('HGET', KEYS[8], id) or ''}
  else
    redis.call('ZREM', KEYS[2], id)
  end
end
return out
`

// notHeldLua ends a script run by a caller who does not hold the claim:
// 0 when the store knows the action (another worker holds or finished it),
// -1 when it has no trace of it (it forgot it).
const notHeldLua = `
if redis.call('HGET', KEYS[7], ARGV[1]) ~= ARGV[2] then
  if redis.call('HEXISTS', KEYS[5], ARGV[1]) == 0 and not redis.call('ZSCORE', KEYS[4], ARGV[1]) then return -1 end
  return 0
end
`

// extendLua moves the lease deadline of a held claim. ARGV: id, token,
// deadline. Returns 1, or 0 when the token is not the current one (-1 when
// the action is unknown).
const extendLua = notHeldLua + `
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return 1
`

// completeLua finishes held claims and remembers their ids. ARGV: remember
// until, now, then id, token for each claim. Returns one result per claim,
// in order: 1, or 0 when the token is not the current one (-1 when the
// action is unknown, as notHeldLua). Each claim is settled as if alone, one
// after the other; the done set is trimmed once, before the first id is
// remembered.
const completeLua = `
local out = {}
local trimmed = false
for i = 3, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  if redis.call('HGET', KEYS[7], id) ~= token then
    if redis.call('HEXISTS', KEYS[5], id) == 0 and not redis.call('ZSCORE', KEYS[4], id) then
      out[#out + 1] = -1
    else
      out[#out + 1] = 0
    end
  else
    redis.call('ZREM', KEYS[2], id)
    for k = 5, 10 do redis.call('HDEL', KEYS[k], id) end
    if not trimmed then
      redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', ARGV[2])
      trimmed = true
    end
    redis.call('ZADD', KEYS[4], ARGV[1], id)
    out[#out + 1] = 1
  end
end
return out
`

// retryLua puts a held claim back, due at a new time, with the error.
// ARGV: id, token, due, error text. Returns 1, or 0 when the token is not the
// current one.
const retryLua = notHeldLua + `
local id = ARGV[1]
redis.call('ZREM', KEYS[2], id)
redis.call('HDEL', KEYS[7], id)
redis.call('HSET', KEYS[8], id, ARGV[4])
redis.call('HSET', KEYS[9], id, ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[3], id)
return 1
`

// releaseLua hands held claims back, due as before, without counting the
// attempt. ARGV: id, token for each claim. Returns how many were released.
const releaseLua = `
local n = 0
for i = 1, #ARGV, 2 do
  local id = ARGV[i]
  if redis.call('HGET', KEYS[7], id) == ARGV[i + 1] then
    redis.call('ZREM', KEYS[2], id)
    redis.call('HDEL', KEYS[7], id)
    redis.call('HINCRBY', KEYS[6], id, -1)
    redis.call('ZADD', KEYS[1], redis.call('HGET', KEYS[9], id) or 0, id)
    n = n + 1
  end
end
return n
`

// deadLetterLua moves a held claim to the dead letters, then drops, with
// their data, the dead letters that died at or before the cutoff and the
// oldest beyond the cap. Each call drops at most deadTrimMax of each, so
// that a lowered cap or a long quiet spell never blocks Redis for long; the
// next dead letters drop the rest. ARGV: id, token, now, reason, cutoff,
// cap. Returns 1, or 0 when the token is not the current one.
const deadLetterLua = notHeldLua + `
local id = ARGV[1]
redis.call('ZREM', KEYS[2], id)
redis.call('HDEL', KEYS[7], id)
redis.call('HSET', KEYS[10], id, ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[3], id)
local function drop(ids)
  for _, d in ipairs(ids) do
    redis.call('ZREM', KEYS[3], d)
    for k = 5, 10 do redis.call('HDEL', KEYS[k], d) end
  end
end
drop(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[5], 'LIMIT', 0, ` + deadTrimMax + `))
local over = redis.call('ZCARD', KEYS[3]) - tonumber(ARGV[6])
if over > 0 then
  drop(redis.call('ZRANGE', KEYS[3], 0, math.min(over, ` + deadTrimMax + `) - 1))
end
return 1
`

// deadTrimMax bounds how many dead letters one dead letter drops, for each
// of the two reasons (age, cap).
const deadTrimMax = "1000"

// statsLua counts the outbox at now; lapsed claims count as ready and due.
// ARGV: now. Returns {ready, due, claimed, dead, oldest due or -1}.
const statsLua = `
local now = tonumber(ARGV[1])
local ready = redis.call('ZCARD', KEYS[1])
local due = redis.call('ZCOUNT', KEYS[1], '-inf', now)
local claimed = redis.call('ZCARD', KEYS[2])
local lapsed = redis.call('ZCOUNT', KEYS[2], '-inf', now)
local oldest = -1
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #first > 0 and tonumber(first[2]) <= now then oldest = tonumber(first[2]) end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1000)) do
  local d = tonumber(redis.call('HGET', KEYS[9], id) or now)
  if oldest < 0 or d < oldest then oldest = d end
end
return {ready + lapsed, due + lapsed, claimed - lapsed, redis.call('ZCARD', KEYS[3]), oldest}
`

// pendingLua lists waiting actions, soonest first. ARGV: limit.
const pendingLua = `
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)) do
  local data = redis.call('HGET', KEYS[5], id)
  if data then out[#out + 1] = data end
end
return out
`

// deadLua lists dead letters, newest first. ARGV: limit. Returns {json,
// reason, at} per action.
const deadLua = `
local out = {}
local ids = redis.call('ZREVRANGE', KEYS[3], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
for i = 1, #ids, 2 do
  local data = redis.call('HGET', KEYS[5], ids[i])
  if data then out[#out + 1] = {data, redis.call('HGET', KEYS[10], ids[i]) or '', ids[i + 1]} end
end
return out
`

// mutesLua sets, clears or lists one group's mutes, drops the expired ones
// and keeps the group's entry in the set of muted groups up to date.
//
//	KEYS[1]  the group's mutes: hash user -> "until json" (until 0 = no end)
//	KEYS[2]  muted groups: zset group -> latest until (ms, +inf = no end)
//
// ARGV: op ("set", "clear" or "list"), group, now, then user, until, json
// for set and user for clear. set and clear touch one field and return
// nothing; list drops the expired mutes, recomputes the group's latest end and
// returns the JSON of the mutes still in force.
const mutesLua = `
local op, group, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
if op == 'set' then
  -- O(1): raise the group's latest end, never lower it.
  redis.call('HSET', KEYS[1], ARGV[4], ARGV[5] .. ' ' .. ARGV[6])
  local untilMs = tonumber(ARGV[5])
  if untilMs == 0 then
    redis.call('ZADD', KEYS[2], '+inf', group)
  else
    redis.call('ZADD', KEYS[2], 'GT', untilMs, group)
  end
  return {}
elseif op == 'clear' then
  -- O(1): the group's latest end may now be too late; list recomputes it.
  redis.call('HDEL', KEYS[1], ARGV[4])
  if redis.call('HLEN', KEYS[1]) == 0 then
    redis.call('ZREM', KEYS[2], group)
  end
  return {}
end
local all = redis.call('HGETALL', KEYS[1])
local live = {}
local latest = nil
for i = 1, #all, 2 do
  local v = all[i + 1]
  local sp = string.find(v, ' ', 1, true)
  local untilMs = tonumber(string.sub(v, 1, sp - 1))
  if untilMs ~= 0 and untilMs <= now then
    redis.call('HDEL', KEYS[1], all[i])
  else
    live[#live + 1] = string.sub(v, sp + 1)
    if untilMs == 0 then
      latest = '+inf'
    elseif latest ~= '+inf' and (latest == nil or untilMs > latest) then
      latest = untilMs
    end
  end
end
if latest == nil then
  redis.call('ZREM', KEYS[2], group)
else
  redis.call('ZADD', KEYS[2], latest, group)
end
return live
`

// activityLua reads, and with seen records, one user's activity in a group
// (a hash: f first seen in ms, m messages counted, e the name of the last
// message counted). KEYS[1] the hash; ARGV: now (ms), seen (0/1), the
// message's name (” for none), ttl (ms). Returns {first seen or ”,
// messages}.
const activityLua = `
local f = redis.call('HGET', KEYS[1], 'f')
if ARGV[2] == '1' then
  if not f then
    f = ARGV[1]
    redis.call('HSET', KEYS[1], 'f', f)
  end
  if ARGV[3] ~= '' and redis.call('HGET', KEYS[1], 'e') ~= ARGV[3] then
    redis.call('HINCRBY', KEYS[1], 'm', 1)
    redis.call('HSET', KEYS[1], 'e', ARGV[3])
  end
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
return {f or '', redis.call('HGET', KEYS[1], 'm') or '0'}
`

// scripts holds the store's Lua scripts. Script.Run sends EVALSHA and falls
// back to EVAL when Redis answers NOSCRIPT (after a restart or SCRIPT FLUSH).
type scripts struct {
	enqueue, claim, extend, complete, retry, release, deadLetter *goredis.Script
	stats, pending, dead, mutes, activity                        *goredis.Script
}

func newScripts() scripts {
	return scripts{
		enqueue:    goredis.NewScript(enqueueLua),
		claim:      goredis.NewScript(claimLua),
		extend:     goredis.NewScript(extendLua),
		complete:   goredis.NewScript(completeLua),
		retry:      goredis.NewScript(retryLua),
		release:    goredis.NewScript(releaseLua),
		deadLetter: goredis.NewScript(deadLetterLua),
		stats:      goredis.NewScript(statsLua),
		pending:    goredis.NewScript(pendingLua),
		dead:       goredis.NewScript(deadLua),
		mutes:      goredis.NewScript(mutesLua),
		activity:   goredis.NewScript(activityLua),
	}
}
