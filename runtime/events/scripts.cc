#include "runtime/events/scripts.h"

namespace ephemera::events::scripts {

// Helpers every script may use:
//   now_ms()  Redis's clock in ms;  int(n)  a number as a decimal string;
//   put_record(prefix, rid, fn, json, ttl_ms, max, score): appends one record to
//   <p>inv:<rid> (expiring ttl_ms after the last write), indexes it as "<rid>:<n>" in
//   <p>invocations and <p>invocations:fn:<fn>, drops index entries older than ttl_ms and,
//   past `max` entries, the oldest requests' records. It is add_record (the writes), then
//   trim_all and trim_function (the retention of each index), which a batch of records runs
//   once per index. read_record(key, n): record n (from 1) of such a key, which is a list
//   (Event attempts) or a string (the record batch's one record per request id).
namespace {

constexpr char kPrelude[] = R"lua(
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function int(n) return string.format('%d', n) end
local function add_record(prefix, rid, fn, json, ttl, score)
  local list = prefix .. 'inv:' .. rid
  local n = redis.call('RPUSH', list, json)
  redis.call('PEXPIRE', list, ttl)
  local member = rid .. ':' .. n
  redis.call('ZADD', prefix .. 'invocations', int(score), member)
  redis.call('ZADD', prefix .. 'invocations:fn:' .. fn, int(score), member)
  return member
end
-- Deletes the records keys of index members "<rid>:<n>" (DELs of up to 500 keys: Lua's
-- unpack has a limit).
local function drop_records(prefix, members)
  local keys = {}
  for _, m in ipairs(members) do
    local r = string.match(m, '^(.*):%d+$')
    if r then keys[#keys + 1] = prefix .. 'inv:' .. r end
    if #keys == 500 then
      redis.call('DEL', unpack(keys))
      keys = {}
    end
  end
  if #keys > 0 then redis.call('DEL', unpack(keys)) end
end
-- The age limit deletes the records too: a synchronous record has no expiry of its own (the
-- record batch writes them in one MSET), so this is what ends it. The count limit drops
-- the oldest requests' records.
local function trim_all(prefix, ttl, max, score)
  local idx = prefix .. 'invocations'
  local cutoff = int(score - ttl)
  local aged = redis.call('ZRANGEBYSCORE', idx, '-inf', cutoff)
  if #aged > 0 then
    drop_records(prefix, aged)
    redis.call('ZREMRANGEBYSCORE', idx, '-inf', cutoff)
  end
  local over = redis.call('ZCARD', idx) - max
  if over > 0 then
    drop_records(prefix, redis.call('ZRANGE', idx, 0, over - 1))
    redis.call('ZREMRANGEBYRANK', idx, 0, over - 1)
  end
end
local function trim_function(prefix, fn, ttl, max, score)
  local fidx = prefix .. 'invocations:fn:' .. fn
  redis.call('ZREMRANGEBYSCORE', fidx, '-inf', int(score - ttl))
  local over = redis.call('ZCARD', fidx) - max
  if over > 0 then redis.call('ZREMRANGEBYRANK', fidx, 0, over - 1) end
end
-- Record n (from 1) of a request id's key, a list or a string (record 1); false if none.
local function read_record(key, n)
  local t = redis.call('TYPE', key)['ok']
  if t == 'string' then
    if n == 1 then return redis.call('GET', key) end
    return false
  end
  if t == 'list' then return redis.call('LINDEX', key, n - 1) end
  return false
end
local function put_record(prefix, rid, fn, json, ttl, max, score)
  local member = add_record(prefix, rid, fn, json, ttl, score)
  trim_all(prefix, ttl, max, score)
  trim_function(prefix, fn, ttl, max, score)
  return member
end
)lua";

}  // namespace

// KEYS[1] stream. ARGV[1] deadline (epoch ms, the daemon's clock), ARGV[2] max entries in
// the stream (0 = no limit), ARGV[3..] field, value, ... Adds accepted_ms = Redis's now.
// Returns {entry id, accepted_ms}.
const std::string kAccept = std::string(kPrelude) + R"lua(
local now = now_ms()
local deadline = tonumber(ARGV[1])
if now > deadline then
  return redis.error_reply('EPHEMERA_LATE the write reached Redis ' .. int(now - deadline) ..
                           ' ms after its deadline; not queued')
end
local max = tonumber(ARGV[2])
if max > 0 and redis.call('XLEN', KEYS[1]) >= max then
  return redis.error_reply('EPHEMERA_FULL ' .. int(max) .. ' Event invocations are queued already')
end
local id = redis.call('XADD', KEYS[1], '*', 'accepted_ms', int(now), unpack(ARGV, 3))
return {id, int(now)}
)lua";

// KEYS[1] done hash, KEYS[2] config. Returns {condition or nil, config JSON or nil}.
const std::string kBegin = R"lua(
return {redis.call('HGET', KEYS[1], 'condition'), redis.call('GET', KEYS[2])}
)lua";

// KEYS[1] stream, KEYS[2] done hash, KEYS[3] the follow-up's stream (events or dlq).
// ARGV: [1] group, [2] entry id, [3] condition, [4] attempt, [5] daemon, [6] done ttl ms,
// [7] prefix, [8] request id, [9] function, [10] record JSON ("" = none), [11] record ttl,
// [12] record max, [13] follow-up kind ("", "event", "dlq"), [14..] its fields.
// Returns 1 if this call set the final state, 0 if it existed (then only acknowledges).
const std::string kFinish = std::string(kPrelude) + R"lua(
local now = now_ms()
if ARGV[10] ~= '' then
  put_record(ARGV[7], ARGV[8], ARGV[9], ARGV[10], tonumber(ARGV[11]), tonumber(ARGV[12]), now)
end
local first = redis.call('HSETNX', KEYS[2], 'condition', ARGV[3])
if first == 1 then
  redis.call('HSET', KEYS[2], 'attempt', ARGV[4], 'daemon', ARGV[5], 'finished_ms', int(now),
             'entry', ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[6])
  if ARGV[13] == 'event' then
    redis.call('XADD', KEYS[3], '*', 'accepted_ms', int(now), unpack(ARGV, 14))
  elseif ARGV[13] == 'dlq' then
    redis.call('XADD', KEYS[3], '*', 'failed_ms', int(now), unpack(ARGV, 14))
  end
else
  redis.call('HINCRBY', KEYS[2], 'duplicates', 1)
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return first
)lua";

// KEYS[1] stream, KEYS[2] done hash, KEYS[3] retry set, KEYS[4] retry stash.
// ARGV: [1] group, [2] entry id, [3] delay ms, [4] prefix, [5] request id, [6] function,
// [7] record JSON ("" = none), [8] record ttl, [9] record max, [10..] the next entry's
// fields. Returns 1 if scheduled, 0 if the event had a final state already.
const std::string kRetry = std::string(kPrelude) + R"lua(
local now = now_ms()
if ARGV[7] ~= '' then
  put_record(ARGV[4], ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9]), now)
end
local scheduled = 0
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('DEL', KEYS[4])
  redis.call('HSET', KEYS[4], unpack(ARGV, 10))
  redis.call('ZADD', KEYS[3], int(now + tonumber(ARGV[3])), KEYS[4])
  scheduled = 1
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return scheduled
)lua";

// KEYS[1] retry set, KEYS[2] stream. ARGV[1] at most this many.
const std::string kMoveDue = std::string(kPrelude) + R"lua(
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', int(now), 'LIMIT', 0, tonumber(ARGV[1]))
for _, k in ipairs(due) do
  local f = redis.call('HGETALL', k)
  if #f > 0 then redis.call('XADD', KEYS[2], '*', unpack(f)) end
  redis.call('DEL', k)
  redis.call('ZREM', KEYS[1], k)
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = -1
if #nxt == 2 then
  wait = tonumber(nxt[2]) - now
  if wait < 0 then wait = 0 end
end
return {#due, wait}
)lua";

// KEYS[1] stream. ARGV[1] group, ARGV[2] entry id.
const std::string kAck = R"lua(
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
return redis.call('XDEL', KEYS[1], ARGV[2])
)lua";

// KEYS[1] done hash. ARGV[1] ttl ms, ARGV[2] daemon.
const std::string kTombstone = std::string(kPrelude) + R"lua(
local first = redis.call('HSETNX', KEYS[1], 'condition', 'NotAccepted')
if first == 1 then
  redis.call('HSET', KEYS[1], 'daemon', ARGV[2], 'finished_ms', int(now_ms()))
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return first
)lua";

// ARGV[1] prefix, ARGV[2] ttl ms, ARGV[3] max, then request id, function, JSON per record.
// The records of synchronous invocations: one per request id, so each is a string where
// Event attempts append to a list (RPUSH, PEXPIRE); the readers below take either. All of
// a batch's strings go in one MSET, and one ZADD per index, with no expiry per key: the
// age limit is trim_all's. Under warm load a redis.call per record was most of Redis's
// time per invocation: in a Redis of its own (AOF on), 100,000 records in batches of 47
// cost 23.2 us of Redis CPU per record with a SET ... PX each and 19.4 with the MSET (means
// of four alternating pairs). The retention runs once per index touched, after all the
// writes. Returns the count.
const std::string kRecordBatch = std::string(kPrelude) + R"lua(
local prefix, ttl, max = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local now = now_ms()
local score = int(now)
local kv, all, by_fn = {}, {}, {}
local n = 0
for i = 4, #ARGV - 2, 3 do
  local rid, fn = ARGV[i], ARGV[i + 1]
  kv[#kv + 1] = prefix .. 'inv:' .. rid
  kv[#kv + 1] = ARGV[i + 2]
  local member = rid .. ':1'
  all[#all + 1] = score
  all[#all + 1] = member
  local f = by_fn[fn]
  if not f then
    f = {}
    by_fn[fn] = f
  end
  f[#f + 1] = score
  f[#f + 1] = member
  n = n + 1
end
if n > 0 then
  redis.call('MSET', unpack(kv))
  redis.call('ZADD', prefix .. 'invocations', unpack(all))
end
for fn, f in pairs(by_fn) do redis.call('ZADD', prefix .. 'invocations:fn:' .. fn, unpack(f)) end
trim_all(prefix, ttl, max, now)
for fn in pairs(by_fn) do trim_function(prefix, fn, ttl, max, now) end
return n
)lua";

// KEYS[1] an index. ARGV[1] prefix, ARGV[2] limit, ARGV[3] "" (newest first) or a time in
// ms (records that ended at or after it, oldest first), ARGV[4] record ttl ms, ARGV[5]
// record max. The retention runs first (so a record past its age is not listed while no
// new record has come to end it); index entries whose record is gone are dropped on the
// way.
const std::string kListRecords = std::string(kPrelude) + R"lua(
trim_all(ARGV[1], tonumber(ARGV[4]), tonumber(ARGV[5]), now_ms())
local members
if ARGV[3] == '' then
  members = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
else
  members = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[3], '+inf', 'LIMIT', 0, tonumber(ARGV[2]))
end
local out = {}
for _, m in ipairs(members) do
  local rid, n = string.match(m, '^(.*):(%d+)$')
  local v = false
  if rid then v = read_record(ARGV[1] .. 'inv:' .. rid, tonumber(n)) end
  if v then out[#out + 1] = v else redis.call('ZREM', KEYS[1], m) end
end
return out
)lua";

// KEYS[1] a request id's records key (a list or a string). ARGV[1] prefix, ARGV[2] record
// ttl ms, ARGV[3] record max: the retention runs first, as for kListRecords. Returns its
// records, in order.
const std::string kGetRecords = std::string(kPrelude) + R"lua(
trim_all(ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), now_ms())
local t = redis.call('TYPE', KEYS[1])['ok']
if t == 'string' then return {redis.call('GET', KEYS[1])} end
if t == 'list' then return redis.call('LRANGE', KEYS[1], 0, -1) end
return {}
)lua";

// KEYS[1] dlq, KEYS[2] stream. ARGV[1] dead letter id, ARGV[2] the new request id.
// Returns {entry id, function} or nil if there is no such dead letter.
const std::string kReplay = std::string(kPrelude) + R"lua(
local e = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #e == 0 then return false end
local f = e[1][2]
local m = {}
for i = 1, #f, 2 do m[f[i]] = f[i + 1] end
local id = redis.call('XADD', KEYS[2], '*', 'accepted_ms', int(now_ms()),
                      'function', m['function'] or '', 'request_id', ARGV[2],
                      'payload', m['payload'] or '', 'content_type',
                      m['content_type'] or 'application/json', 'attempt', '1',
                      'source', 'replay', 'replay_of', m['request_id'] or '')
redis.call('XDEL', KEYS[1], ARGV[1])
return {id, m['function'] or ''}
)lua";

}  // namespace ephemera::events::scripts
