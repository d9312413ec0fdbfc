//! The directory's Lua scripts ([`super::directory`]): each does one
//! decision or one read in one round trip, atomically, so two nodes
//! claiming one device together cannot both win, and a read never sees a
//! half-written entry.
//!
//! A node is live while its heartbeat record `<p>node:<id>` exists (it has
//! the TTL `cluster.nodeTtl`, see [`super::nodes`]): every read checks the
//! node of each entry and passes over a dead node's, so nothing depends on
//! a dead node cleaning up; the writer's sweep removes them later.
//! Key names are built in Rust ([`super::keys`]) and passed in; the node
//! record keys are reached by prefix, as the heartbeat script does.

/// KEYS: the user's block, the device's block (the user's again when there
/// is no device), then the device's owner when there is a device.
/// ARGV: this node, the connection id, `1` to reject while held, the node
/// record prefix. Returns `{"blocked", until}`, `{"busy"}`, or `{"ok"}`
/// with the previous live holder's node and connection when there was one.
pub(super) const CLAIM: &str = r"
local upto = 0
for i = 1, 2 do
  local v = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
  if v > upto then upto = v end
end
if upto > 0 then return {'blocked', tostring(upto)} end
if #KEYS < 3 then return {'ok'} end
local held = redis.call('GET', KEYS[3])
local node, conn
if held then
  node, conn = string.match(held, '^(%S+) (%S+)$')
  if node and node ~= ARGV[1] and redis.call('EXISTS', ARGV[4] .. node) == 0 then
    node = nil
  end
end
if node and node ~= ARGV[1] and ARGV[3] == '1' then return {'busy'} end
redis.call('SET', KEYS[3], ARGV[1] .. ' ' .. ARGV[2])
if node then return {'ok', node, conn} end
return {'ok'}
";

/// KEYS: the device's owner. ARGV: `"<node> <conn>"` of a connection
/// being recorded, its node, the node record prefix. Makes it the owner
/// unless a live connection of another node is: after a claim it is already
/// (a no-op); after Redis lost the owner (restarted empty) it is again; a
/// connection that took the device over on another node meanwhile keeps it.
pub(super) const OWN: &str = r"
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then return 0 end
if held then
  local node = string.match(held, '^(%S+) ')
  if node and node ~= ARGV[2] and redis.call('EXISTS', ARGV[3] .. node) == 1 then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
";

/// KEYS: the device's owner. ARGV: `"<node> <conn>"` of the claim to
/// undo, the previous owner's (or empty). Only while the claim still owns
/// the device.
pub(super) const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2]) end
end
return 1
";

/// KEYS: the record, every-connection index, app index, user index, the
/// node's set, then the device's owner when there is a device. ARGV: the
/// connection id, its `"<node> <conn>"`. The owner is deleted only if it is
/// still this connection (a newer one may have taken the device over).
pub(super) const LEFT: &str = r"
redis.call('DEL', KEYS[1])
for i = 2, 4 do redis.call('ZREM', KEYS[i], ARGV[1]) end
redis.call('SREM', KEYS[5], ARGV[1])
if #KEYS > 5 and redis.call('GET', KEYS[6]) == ARGV[2] then redis.call('DEL', KEYS[6]) end
return 1
";

/// KEYS: the block. ARGV: until (Unix ms), its TTL in ms. A longer block
/// already there stays.
pub(super) const BLOCK: &str = r"
local cur = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if cur >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
";

/// Shared by the readers: `describe(id)` is the entry's fields, with its
/// node's advertised address, or nil when there is no record or its node
/// is dead.
const DESCRIBE: &str = r"
local live = {}
local function addr_of(node)
  if live[node] == nil then
    local record = redis.call('GET', ARGV[1] .. node)
    live[node] = false
    if record then
      local ok, decoded = pcall(cjson.decode, record)
      if ok and type(decoded) == 'table' and type(decoded.addr) == 'string' then
        live[node] = decoded.addr
      else
        live[node] = ''
      end
    end
  end
  return live[node]
end
local fields = {'node', 'app', 'user', 'device', 'remote', 'since', 'streams'}
local function describe(id)
  local r = redis.call('HMGET', ARGV[2] .. id, unpack(fields))
  if not r[1] or not r[2] or not r[3] then return nil end
  local addr = addr_of(r[1])
  if not addr then return nil end
  return {id, r[1], addr, r[2], r[3], r[4] or '', r[5] or '', r[6] or '0', r[7] or '[]'}
end
";

/// KEYS: a sorted index. ARGV: node record prefix, connection record
/// prefix, where to start (`-` or `(<id>`), how many. Up to that many live
/// entries in id order (see [`DESCRIBE`] for each one's fields).
pub(super) fn page() -> String {
    format!(
        "{DESCRIBE}{}",
        r"
local out = {}
local start = ARGV[3]
local want = tonumber(ARGV[4])
while #out < want do
  local ids = redis.call('ZRANGEBYLEX', KEYS[1], start, '+', 'LIMIT', 0, math.max(want - #out, 64))
  if #ids == 0 then break end
  for _, id in ipairs(ids) do
    start = '(' .. id
    local d = describe(id)
    if d then
      table.insert(out, d)
      if #out >= want then break end
    end
  end
end
return out
"
    )
}

/// ARGV: node record prefix, connection record prefix, the id. The live
/// entry, as a one-element list, or an empty one.
pub(super) fn locate() -> String {
    format!(
        "{DESCRIBE}{}",
        r"
local d = describe(ARGV[3])
if d then return {d} end
return {}
"
    )
}

/// KEYS: an application's index. ARGV: node record prefix, connection
/// record prefix. Returns `{users, connections, node, addr, count, …}`
/// over live entries. O(the application's connections).
pub(super) fn app_counts() -> String {
    format!(
        "{DESCRIBE}{}",
        r"
local users, per_node, order = {}, {}, {}
local n_users, n_conns = 0, 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local r = redis.call('HMGET', ARGV[2] .. id, 'node', 'user')
  if r[1] and r[2] and addr_of(r[1]) then
    n_conns = n_conns + 1
    if not users[r[2]] then users[r[2]] = true; n_users = n_users + 1 end
    if not per_node[r[1]] then per_node[r[1]] = 0; table.insert(order, r[1]) end
    per_node[r[1]] = per_node[r[1]] + 1
  end
end
local out = {n_users, n_conns}
for _, node in ipairs(order) do
  table.insert(out, node)
  table.insert(out, addr_of(node))
  table.insert(out, per_node[node])
end
return out
"
    )
}
