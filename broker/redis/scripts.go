package redis

import (
	"fmt"
	"strconv"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

// Lua scripts. Every key a script touches is passed in KEYS and all keys of
// one call share a topic's hash tag (a partition's, for a partitioned
// topic), so each script runs on one Cluster slot.

// script is a Lua script with its name and source, kept to say in errors
// which command of which script Redis refused.
type script struct {
	*goredis.Script
	name, src string
}

func newScript(name, src string) script {
	return script{Script: goredis.NewScript(src), name: name, src: src}
}

// scripts returns every script of the package.
func scripts() []script {
	return []script{settleScript, promoteScript, readScript, peekScript, recoverScript, extendScript, replayScript, trimScript, deleteConsumerScript, tickScript,
		cancelEntryScript, cancelDelayedScript, publishUniqueScript, ackUniqueScript, releaseUniqueScript,
		ackResultScript, progressScript, setPartitionsScript, dropRetiredScript, drainedScript}
}

// commandAt returns the Redis command that line (1-based) of s runs, in ACL
// form ("xadd", "xinfo|groups"), or "" when the line runs none.
func (s script) commandAt(line int) string {
	lines := strings.Split(s.src, "\n")
	if line < 1 || line > len(lines) {
		return ""
	}
	_, call, ok := strings.Cut(lines[line-1], "call('") // redis.call or redis.pcall
	if !ok {
		return ""
	}
	cmd, rest, _ := strings.Cut(call, "'")
	cmd = strings.ToLower(cmd)
	if cmd == "xinfo" || cmd == "xgroup" {
		if _, sub, ok := strings.Cut(rest, ", '"); ok {
			sub, _, _ = strings.Cut(sub, "'")
			cmd += "|" + strings.ToLower(sub)
		}
	}
	return cmd
}

// An ACL refusal is recognised by substrings of the texts of Redis 7.0:
//
//	NOPERM this user has no permissions to run the 'xadd' command
//	NOPERM this user has no permissions to access one of the keys used as arguments
//	ERR The user executing the script can't run this command or subcommand script: <sha1>, on @user_script:<line>.
//	ERR The user executing the script can't access at least one of the keys mentioned in the command script: <sha1>, on @user_script:<line>.
//
// and of Redis 7.2 and later, and Valkey:
//
//	NOPERM User <user> has no permissions to run the 'xadd' command
//	NOPERM No permissions to access a key
//	NOPERM User <user> has no permissions to access the '<key>' key
//	ERR ACL failure in script: User <user> has no permissions to run the 'xlen' command script: <sha1>, on @user_script:<line>.
//	ERR ACL failure in script: No permissions to access a key script: <sha1>, on @user_script:<line>.
const (
	aclPrefix       = "NOPERM"
	aclScript70     = "ERR The user executing the script can't"
	aclScript72     = "ERR ACL failure in script"
	aclRunQuoted    = "permissions to run the '"
	aclRunScript70  = "can't run this command"
	aclKeyQuoted    = "permissions to access the '"
	aclScriptLineAt = "@user_script:"
)

// aclRefusal describes an error text of a command or script refused by the
// ACL.
type aclRefusal struct {
	inScript bool
	run      bool   // a command was refused (else a key, or something else)
	key      bool   // a key was refused
	cmd      string // the command refused, in ACL form ("xinfo|groups"), if known
	keyName  string // the key refused, if the text names it
	script   string // the script's name, if it is one of the package's
}

// parseACLRefusal reads msg, an error text from Redis, and reports whether
// it is an ACL refusal. It never panics, whatever msg holds.
func parseACLRefusal(msg string) (aclRefusal, bool) {
	var r aclRefusal
	// Prefixes only: an error that merely quotes these texts (an unknown
	// command's echo, a payload in a message) is not a refusal.
	r.inScript = strings.HasPrefix(msg, aclScript70) || strings.HasPrefix(msg, aclScript72)
	if !r.inScript && !strings.HasPrefix(msg, aclPrefix) {
		return r, false
	}
	if cmd, ok := quotedAfter(msg, aclRunQuoted); ok && validACLCommand(cmd) {
		r.cmd = strings.ToLower(cmd)
	}
	r.run = r.cmd != "" || strings.Contains(msg, aclRunQuoted) || strings.Contains(msg, aclRunScript70)
	if key, ok := quotedKey(msg); ok {
		r.keyName = key
	}
	r.key = !r.run && (r.keyName != "" || strings.Contains(msg, "access one of the keys") ||
		strings.Contains(msg, "access at least one of the keys") || strings.Contains(msg, "access a key"))
	if !r.inScript {
		return r, true
	}
	for _, s := range scripts() {
		if !strings.Contains(msg, s.Hash()) {
			continue
		}
		r.script = s.name
		if r.cmd == "" {
			r.cmd = s.commandAt(scriptLine(msg))
		}
	}
	return r, true
}

// quotedAfter returns the text between marker (which ends with a quote)
// and the next quote in msg.
func quotedAfter(msg, marker string) (string, bool) {
	_, rest, ok := strings.Cut(msg, marker)
	if !ok {
		return "", false
	}
	q, _, ok := strings.Cut(rest, "'")
	return q, ok && q != ""
}

// quotedKey returns the key a refusal names ("… access the '<key>' key"),
// which may itself hold quotes: the text up to the last "' key".
func quotedKey(msg string) (string, bool) {
	_, rest, ok := strings.Cut(msg, aclKeyQuoted)
	if !ok {
		return "", false
	}
	i := strings.LastIndex(rest, "' key")
	if i <= 0 {
		return "", false
	}
	return rest[:i], true
}

// validACLCommand reports whether s looks like a command name in ACL form.
func validACLCommand(s string) bool {
	if len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("|-_.", c)) {
			return false
		}
	}
	return true
}

// scriptLine returns the script line number an error text reports
// ("@user_script:12"), or 0.
func scriptLine(msg string) int {
	_, rest, ok := strings.Cut(msg, aclScriptLineAt)
	if !ok {
		return 0
	}
	digits := rest[:len(rest)-len(strings.TrimLeft(rest, "0123456789"))]
	n, err := strconv.Atoi(digits)
	if err != nil {
		return 0
	}
	return n
}

// explainACL returns err, from a command or script refused by the Redis
// ACL, wrapped in an error that starts with NOPERM and says which
// permission to grant. The command is taken from the error when Redis names
// it; for a script of this package that Redis does not name it in (Redis
// 7.0), it is read from the script's source at the line Redis reports.
// Other errors are returned as they are.
func (b *Broker) explainACL(err error) error {
	r, ok := parseACLRefusal(err.Error())
	if !ok {
		return err
	}
	script := "a"
	if r.script != "" {
		script = "conveyor's " + r.script
	}
	keys := fmt.Sprintf("allow the namespace's keys (~%s:*)", b.o.Namespace)
	switch {
	case r.run && r.cmd != "" && r.inScript:
		return fmt.Errorf("NOPERM: the Redis ACL user may not run %s, which %s script runs: grant it with ACL SETUSER <user> +%s (conveyor's docs/redis.md lists the least-privilege ACL): %w",
			aclDisplay(r.cmd), script, r.cmd, err)
	case r.run && r.cmd != "":
		return fmt.Errorf("NOPERM: the Redis ACL user may not run %s: grant it with ACL SETUSER <user> +%s (conveyor's docs/redis.md lists the least-privilege ACL): %w",
			aclDisplay(r.cmd), r.cmd, err)
	case r.run && r.inScript:
		return fmt.Errorf("NOPERM: the Redis ACL user may not run a command of %s script (ACL LOG on the server names it): grant it with ACL SETUSER (conveyor's docs/redis.md lists the least-privilege ACL): %w",
			script, err)
	case r.run:
		return fmt.Errorf("NOPERM: the Redis ACL user may not run a command (ACL LOG on the server names it): grant it with ACL SETUSER (conveyor's docs/redis.md lists the least-privilege ACL): %w", err)
	case r.key && r.inScript:
		what := "a command"
		if r.cmd != "" {
			what = aclDisplay(r.cmd)
		}
		return fmt.Errorf("NOPERM: the Redis ACL user may not access a key that %s in %s script uses: %s: %w", what, script, keys, err)
	case r.key && r.keyName != "":
		return fmt.Errorf("NOPERM: the Redis ACL user may not access the key %q of namespace %q: %s: %w", r.keyName, b.o.Namespace, keys, err)
	case r.key:
		return fmt.Errorf("NOPERM: the Redis ACL user may not access a key of namespace %q: %s: %w", b.o.Namespace, keys, err)
	default:
		return fmt.Errorf("NOPERM: the Redis ACL user lacks a permission (ACL LOG on the server names it; conveyor's docs/redis.md lists the least-privilege ACL): %w", err)
	}
}

// aclDisplay writes an ACL command name as a command: "xinfo|groups" as
// "XINFO GROUPS".
func aclDisplay(cmd string) string {
	return strings.ToUpper(strings.ReplaceAll(cmd, "|", " "))
}

// settleScript moves a delivered entry to its next place in one atomic step:
// XADD to a stream (retry or snooze now), ZADD to the delayed set (retry or
// snooze later) or XADD to the dead-letter stream, then XACK + XDEL of the
// entry. If the entry is no longer pending in the group (someone else
// already settled it after this consumer lost its lease), or is pending for
// another consumer (it recovered the entry after this consumer's lease
// expired, and is running the job now), nothing is written: the consumer
// that holds a job decides its outcome.
//
// A settle leaves a marker (KEYS[3], holding the settle's token, for
// ARGV[8] ms): when the client runs the same call again because the reply
// of the first run was lost (go-redis retries a command whose connection
// broke), the second run finds the entry gone and the marker holding its own
// token, and reports the settle as done instead of "no longer pending".
//
// Redis does not roll a script back when a command fails, so the order
// matters: the pending check is read-only (XPENDING) and the entry is
// acknowledged and deleted only after the write that can fail (WRONGTYPE on
// the target, too many values to unpack) succeeded. A failed settle leaves
// the entry pending, to be redelivered after its lease.
//
// KEYS[1] the stream the entry was read from
// KEYS[2] the target: a stream, a delayed ZSET, or a dead-letter stream
// KEYS[3] the settle marker of the entry
// ARGV[1] group
// ARGV[2] entry ID
// ARGV[3] mode: "stream", "delayed" or "dlq"
// ARGV[4] mode "delayed": due time (unix ms, the ZSET score);
//
//	mode "dlq": the dead-letter cap (<= 0: no cap); else unused
//
// ARGV[5] mode "delayed": the encoded member; else unused
// ARGV[6] the consumer settling the entry
// ARGV[7] the settle's token, unique to the call
// ARGV[8] how long the marker lives (ms)
// ARGV[9..] mode "stream"/"dlq": the new entry's field, value pairs
//
// For a unique job, KEYS[4] is its claim, and two more arguments follow the
// fields: the job ID and the claim's new TTL (ms). When the claim still
// names the job, a dead-lettering deletes it and a retry or snooze renews
// it.
//
// Returns {settled, overflow}: settled is 0 when the entry was not pending
// (nothing written), 2 when another consumer holds it (nothing written), 3
// when an earlier run of the same call settled it (nothing written now), 1
// otherwise; overflow is 1 when a dead letter was added to a stream already
// at or above the cap.
var settleScript = newScript("settle", `
local p = redis.pcall('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if type(p) ~= 'table' or p.err or #p == 0 then
  if redis.call('GET', KEYS[3]) == ARGV[7] then
    return {3, 0}
  end
  return {0, 0}
end
if p[1][2] ~= ARGV[6] then
  return {2, 0}
end
redis.call('SET', KEYS[3], ARGV[7], 'PX', ARGV[8])
local mode = ARGV[3]
local last = #ARGV
if KEYS[4] then last = last - 2 end
local overflow = 0
if mode == 'delayed' then
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
else
  if mode == 'dlq' then
    local cap = tonumber(ARGV[4])
    if cap > 0 and redis.call('XLEN', KEYS[2]) >= cap then
      overflow = 1
    end
  end
  redis.call('XADD', KEYS[2], '*', unpack(ARGV, 9, last))
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
if KEYS[4] and redis.call('GET', KEYS[4]) == ARGV[last + 1] then
  if mode == 'dlq' then
    redis.call('DEL', KEYS[4])
  else
    redis.call('PEXPIRE', KEYS[4], ARGV[last + 2])
  end
end
return {1, overflow}
`)

// promoteScript moves due members of a delayed set to the topic's stream.
// Members are netstring-encoded field lists; one that cannot be decoded is
// added as an entry with the single field "malformed_delayed" (no payload),
// which the consumer then dead-letters as malformed: never dropped.
//
// KEYS[1] delayed ZSET (score = due unix ms)
// KEYS[2] stream
// ARGV[1] now (unix ms)
// ARGV[2] most members to move
//
// Returns {number of members moved, score of the earliest member left (due
// unix ms), or -1 when the set is empty}.
var promoteScript = newScript("promote", `
local function decode(s)
  local out, pos, n = {}, 1, #s
  while pos <= n do
    local c = string.find(s, ':', pos, true)
    if not c then return nil end
    local len = tonumber(string.sub(s, pos, c - 1))
    if not len or len < 0 then return nil end
    local stop = c + len
    if string.sub(s, stop + 1, stop + 1) ~= ',' then return nil end
    out[#out + 1] = string.sub(s, c + 1, stop)
    pos = stop + 2
  end
  if #out == 0 or #out % 2 == 1 then return nil end
  return out
end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, m in ipairs(due) do
  local fields = decode(m)
  if fields then
    redis.call('XADD', KEYS[2], '*', unpack(fields))
  else
    redis.call('XADD', KEYS[2], '*', 'malformed_delayed', m)
  end
  redis.call('ZREM', KEYS[1], m)
end
local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {#due, tonumber(head[2]) or -1}
`)

// readScript reads new entries (XREADGROUP >) from several streams in one
// round trip, leasing no more than a total of COUNT. A paused stream (its
// pause key is set) is not read. How COUNT is shared among the others
// depends on the mode:
//
//   - turn: it goes round the streams from the one at index ARGV[5], each
//     time giving every stream that still had entries an equal part of
//     what is left (at least one), until COUNT entries are read or every
//     stream came back short.
//   - weighted: each entry goes to the stream with entries whose pass is
//     lowest, whose pass then grows by its stride (stride scheduling; see
//     internal/share); a stream that came back short leaves its part to
//     the others and its pass is brought up to theirs.
//   - strict: the streams are read in order, each with all that is left.
//
// Each stream is read in order, so a stream's entries stay FIFO. Used where
// all streams sit in one slot (a single Redis, Sentinel), and on Cluster
// with one stream.
//
// KEYS[1..n] streams; KEYS[n+1..2n] their pause keys
// ARGV[1] group
// ARGV[2] consumer
// ARGV[3] COUNT: most entries to read in all
// ARGV[4] mode: turn, weighted or strict
// ARGV[5] turn: index (0-based) of the stream served first
// ARGV[5..4+n] weighted: the streams' strides; ARGV[5+n..4+2n] their passes
//
// Returns {reads, failures, next, paused, passes}: reads is a list of
// {stream index (1-based), entries as XREADGROUP returns them}; failures a
// list of {stream index, error text} of the streams whose read failed
// (NOGROUP when the stream or its group was deleted); next (turn) the
// 0-based index after the last stream that gave entries, for the next call
// to start from; paused the indexes of the paused streams; passes
// (weighted) the streams' new passes.
var readScript = newScript("read", `
local n, left, mode = #KEYS / 2, tonumber(ARGV[3]), ARGV[4]
local live, nlive, reads, failures, paused, passes, next = {}, 0, {}, {}, {}, {}, 0
for i = 1, n do
  live[i] = not redis.call('GET', KEYS[n + i])
  if live[i] then nlive = nlive + 1 else paused[#paused + 1] = i end
end
local function read(i, c)
  local ok, r = pcall(redis.call, 'XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', c, 'STREAMS', KEYS[i], '>')
  local got = 0
  if not ok then
    if type(r) == 'table' then r = r.err end
    failures[#failures + 1] = {i, tostring(r)}
  elseif r then
    got = #r[1][2]
    reads[#reads + 1] = {i, r[1][2]}
  end
  if got < c then
    live[i] = false
    nlive = nlive - 1
  end
  return got
end
if mode == 'turn' then
  local first = tonumber(ARGV[5]) % n
  next = first
  while left > 0 and nlive > 0 do
    local share = math.max(1, math.floor(left / nlive))
    for j = 0, n - 1 do
      local i = (first + j) % n + 1
      if left <= 0 then break end
      if live[i] then
        local got = read(i, math.min(share, left))
        left = left - got
        if got > 0 then next = i % n end
      end
    end
  end
elseif mode == 'strict' then
  for i = 1, n do
    if left <= 0 then break end
    if live[i] then left = left - read(i, left) end
  end
else
  local stride = {}
  for i = 1, n do
    stride[i] = tonumber(ARGV[4 + i])
    passes[i] = tonumber(ARGV[4 + n + i])
  end
  while left > 0 and nlive > 0 do
    local plan, p = {}, {}
    for i = 1, n do plan[i], p[i] = 0, passes[i] end
    for _ = 1, left do
      local best
      for i = 1, n do
        if live[i] and (not best or p[i] < p[best]) then best = i end
      end
      plan[best] = plan[best] + 1
      p[best] = p[best] + stride[best]
    end
    for i = 1, n do
      if plan[i] > 0 then
        local got = read(i, plan[i])
        left = left - got
        passes[i] = passes[i] + got * stride[i]
      end
    end
  end
  local low
  for i = 1, n do
    if live[i] and (not low or passes[i] < low) then low = passes[i] end
  end
  for i = 1, n do
    if low and not live[i] and passes[i] < low then passes[i] = low end
  end
end
return {reads, failures, next, paused, passes}
`)

// peekScript reports how many entries, up to a limit, a stream has that its
// consumer group has not read yet, without reading (leasing) them. Used on
// Redis Cluster, where one script cannot read streams of several slots.
//
// KEYS[1] stream
// KEYS[2] the stream's pause key
// ARGV[1] group
// ARGV[2] the most entries to count
//
// Returns the number of unread entries (0 when the stream is paused), -1
// when the stream or its group does not exist.
var peekScript = newScript("peek", `
if redis.call('GET', KEYS[2]) then return 0 end
local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', KEYS[1])
if not ok then
  local e = type(groups) == 'table' and groups.err or tostring(groups)
  if string.find(e, 'no such key', 1, true) then return -1 end
  return redis.error_reply(e)
end
for _, g in ipairs(groups) do
  local name, last
  for j = 1, #g, 2 do
    if g[j] == 'name' then name = g[j + 1] end
    if g[j] == 'last-delivered-id' then last = g[j + 1] end
  end
  if name == ARGV[1] then
    return #redis.call('XRANGE', KEYS[1], '(' .. last, '+', 'COUNT', ARGV[2])
  end
end
return -1
`)

// recoverScript claims entries idle longer than the lease (XAUTOCLAIM) and
// reads their delivery counts (XPENDING) in one round trip.
//
// KEYS[1] stream
// KEYS[2] the stream's pause key: a paused stream is not recovered
// ARGV[1] group
// ARGV[2] consumer
// ARGV[3] min idle (ms)
// ARGV[4] cursor
// ARGV[5] COUNT
//
// Returns {next cursor, entries, delivery counts, deleted IDs}: entries as
// XAUTOCLAIM returns them ({id, {field, value, ...}}), counts in the same
// order, and the IDs of pending entries whose stream entry was deleted (they
// are removed from the pending list by XAUTOCLAIM: those jobs are lost).
// For a paused stream it returns {"0-0", {}, {}, {}}.
var recoverScript = newScript("recover", `
if redis.call('GET', KEYS[2]) then return {'0-0', {}, {}, {}} end
local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5])
local entries, counts, deleted = {}, {}, r[3] or {}
for _, e in ipairs(r[2]) do
  if e then
    local p = redis.call('XPENDING', KEYS[1], ARGV[1], e[1], e[1], 1)
    entries[#entries + 1] = e
    counts[#counts + 1] = (p[1] and p[1][4]) or 1
  end
end
return {r[1], entries, counts, deleted}
`)

// extendScript renews the lease of entries this consumer still owns: for
// each ID whose pending entry belongs to the consumer, XCLAIM … 0 … JUSTID
// (idle reset, delivery count unchanged). An entry recovered by another
// consumer is left alone, so a heartbeat never steals a job back. An ID
// counts as renewed only if XCLAIM's reply contains it: XCLAIM drops from the
// pending list, without returning them, entries deleted from the stream
// while pending (their jobs are lost).
//
// KEYS[1] stream
// ARGV[1] group
// ARGV[2] consumer
// ARGV[3..] entry IDs
//
// Returns {renewed IDs, IDs deleted from the stream while pending}.
var extendScript = newScript("extend", `
local out, deleted = {}, {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then
    local c = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    if c[1] then
      out[#out + 1] = ARGV[i]
    else
      deleted[#deleted + 1] = ARGV[i]
    end
  end
end
return {out, deleted}
`)

// replayScript moves dead letters back to their origin stream, each in one
// atomic step: the new entry keeps payload, id, headers and enqueued_at, has
// attempt 1 and no failure fields; the dead letter is acknowledged in the
// group (if a consumer of the dead-letter topic holds it) and deleted. A dead
// letter without id or enqueued_at gets them explicitly from its own entry
// ID (its receipt, and its milliseconds), the values a reader of the dead
// letter sees, since the new entry's ID differs.
//
// A unique job's dead letter takes its key's claim (set to the job's ID,
// with the claim's safety TTL) unless another job holds it: then it stays,
// and its entry ID and the holder's ID are returned.
//
// KEYS[1] dead-letter stream
// KEYS[2] origin stream
// KEYS[3..] the claims of the unique dead letters' keys
// ARGV[1] group
// ARGV[2] the claims' safety TTL (ms)
// ARGV[3] what follows an entry ID in its receipt (keys.receipt: "@<n>/<i>"
// on a partition, "" on a topic's historical keys)
// ARGV[4..] pairs: dead-letter entry ID (validated by the caller), index in
// KEYS of its claim (0: not unique)
//
// Returns {moved, {entry ID, holder's job ID, ...}}: the number of dead
// letters moved (IDs not found are skipped) and those refused.
var replayScript = newScript("replay", `
local skip = {attempt = true, error = true, reason = true, handler = true, origin = true, failed_at = true, stack = true}
local moved, refused = 0, {}
for i = 4, #ARGV, 2 do
  local e = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
  local claim = KEYS[tonumber(ARGV[i + 1])]
  local held = claim and redis.call('GET', claim)
  if #e > 0 and held then
    refused[#refused + 1] = ARGV[i]
    refused[#refused + 1] = held
  elseif #e > 0 then
    local f, out, id, hasEnq = e[1][2], {}, nil, false
    for j = 1, #f, 2 do
      if not skip[f[j]] then
        out[#out + 1] = f[j]
        out[#out + 1] = f[j + 1]
        if f[j] == 'id' then id = f[j + 1] end
        if f[j] == 'enqueued_at' then hasEnq = true end
      end
    end
    if not id then
      id = e[1][1] .. ARGV[3]
      out[#out + 1] = 'id'
      out[#out + 1] = id
    end
    if not hasEnq then
      out[#out + 1] = 'enqueued_at'
      out[#out + 1] = string.match(e[1][1], '^(%d+)')
    end
    out[#out + 1] = 'attempt'
    out[#out + 1] = '1'
    redis.call('XADD', KEYS[2], '*', unpack(out))
    redis.pcall('XACK', KEYS[1], ARGV[1], ARGV[i])
    redis.call('XDEL', KEYS[1], ARGV[i])
    if claim then
      redis.call('SET', claim, id, 'PX', ARGV[2])
    end
    moved = moved + 1
  end
end
return {moved, refused}
`)

// trimScript trims a stream without removing any pending entry (of any
// group) or anything newer than it. Unless ARGV[3] is "1", it also keeps
// every entry not yet delivered to each group (newer than the group's
// last-delivered-id) and, on a stream without any group, every entry. With
// ARGV[4] "1" it removes nothing and counts what it would remove (a dry
// run): the same decisions, so the count is exact at that moment.
//
// KEYS[1] stream
// ARGV[1] mode: "maxlen" or "minid"
// ARGV[2] mode "maxlen": entries to keep; mode "minid": the target MINID
// ARGV[3] "1": unread entries may be removed; else they are kept
// ARGV[4] "1": count only (dry run); else trim
//
// Returns the number of entries removed (or, in a dry run, that would be).
var trimScript = newScript("trim", `
local function less(a, b)
  local am, as = string.match(a, '^(%d+)-?(%d*)$')
  local bm, bs = string.match(b, '^(%d+)-?(%d*)$')
  am, bm = tonumber(am), tonumber(bm)
  if am ~= bm then return am < bm end
  return (tonumber(as) or 0) < (tonumber(bs) or 0)
end
-- after returns the smallest ID greater than id (id itself when its
-- sequence is too large for exact arithmetic: one entry more is kept).
local function after(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  if not ms or #seq > 15 then return id end
  return ms .. '-' .. string.format('%d', tonumber(seq) + 1)
end
local len = redis.call('XLEN', KEYS[1])
if len == 0 then return 0 end
local unread = ARGV[3] == '1'
local dry = ARGV[4] == '1'
-- below counts the entries with an ID lower than id (what XTRIM MINID id
-- removes), reading from whichever end of the stream is nearer the cut.
local function below(id)
  if not less('0-0', id) then return 0 end
  local batch = 1000
  local lo, hi, nlo, nhi = '-', '+', 0, 0
  while true do
    local a = redis.call('XRANGE', KEYS[1], lo, '(' .. id, 'COUNT', batch)
    nlo = nlo + #a
    if #a < batch then return nlo end
    lo = '(' .. a[#a][1]
    local z = redis.call('XREVRANGE', KEYS[1], hi, id, 'COUNT', batch)
    nhi = nhi + #z
    if #z < batch then return len - nhi end
    hi = '(' .. z[#z][1]
  end
end
local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
if #groups == 0 and not unread then return 0 end
-- Entries with an ID below bound may be removed; nil: no bound.
local bound = nil
local function lower(id)
  if bound == nil or less(id, bound) then bound = id end
end
for _, g in ipairs(groups) do
  local name, last
  for j = 1, #g, 2 do
    if g[j] == 'name' then name = g[j + 1] end
    if g[j] == 'last-delivered-id' then last = g[j + 1] end
  end
  local p = redis.call('XPENDING', KEYS[1], name)
  if p[1] > 0 then lower(p[2]) end
  if not unread then lower(after(last or '0-0')) end
end
if ARGV[1] == 'maxlen' then
  local keep = tonumber(ARGV[2])
  local n = len - keep
  if n <= 0 then return 0 end
  if bound ~= nil then
    local older = redis.call('XRANGE', KEYS[1], '-', '(' .. bound, 'COUNT', n)
    if #older < n then
      -- Only the entries below bound may go.
      if dry or #older == 0 then return #older end
      return redis.call('XTRIM', KEYS[1], 'MINID', bound)
    end
  end
  if dry then return n end
  return redis.call('XTRIM', KEYS[1], 'MAXLEN', keep)
end
local minid = ARGV[2]
if bound ~= nil and less(bound, minid) then
  minid = bound
end
if dry then return below(minid) end
return redis.call('XTRIM', KEYS[1], 'MINID', minid)
`)
