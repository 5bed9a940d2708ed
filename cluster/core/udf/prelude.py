"""The Lua side of the UDF bridge: the sandbox UDF modules run in and the server's Lua types.

PRELUDE runs once in a fresh Lua 5.4 state (the version the server embeds, modules/lua).
It builds, after mod-lua's API (list, map, bytes, record, aerospike, the logging
functions), a table of safe globals every module's environment reads through — no os,
io, load, require of files, debug, collectgarbage, string.dump — and returns the handful
of functions Python drives it with. It is Lua because a record UDF calls these many times
per record; crossing into Python for each `rec['bin']` would cost more than the UDF.

The types are tables behind a protected metatable (`getmetatable` answers their name and
`setmetatable` refuses them); their contents live in a weak side table, so a UDF cannot
corrupt them with rawset. A list keeps NIL in its holes so its size is its own, as the
server's as_arraylist does.

Budget: a count hook charges every STEP instructions against the call's budget and raises
once it is spent; the sandbox's pcall/xpcall re-raise it, so a UDF cannot swallow it.
"""

PRELUDE = r"""
local host = ...                      -- Python callbacks: host.log(level, text)
local sethook, traceback = debug.sethook, debug.traceback
local real_pcall, real_xpcall = pcall, xpcall
local mtype, floor, tointeger = math.type, math.floor, math.tointeger
local sformat, concat_strings, sort = string.format, table.concat, table.sort

local STEP = 1000
local OVER = "UDF exceeded its execution budget"
local budget = { left = 0, over = false }
local function count_hook()
  budget.left = budget.left - STEP
  if budget.left <= 0 then
    budget.over = true
    error(OVER, 0)
  end
end

local NIL = setmetatable({}, { __tostring = function() return "nil" end })
local DATA = setmetatable({}, { __mode = "k" })  -- object -> its contents
local KIND = setmetatable({}, { __mode = "k" })  -- object -> "list" | "map" | "bytes" | "record"

local function kind(v) return KIND[v] end
local function check(v, want, fname)
  if KIND[v] ~= want then
    error(sformat("bad argument #1 to '%s' (%s expected, got %s)", fname, want, KIND[v] or type(v)), 3)
  end
  return DATA[v]
end
local function as_index(i)
  if type(i) ~= "number" then return nil end
  return tointeger(i) or tointeger(floor(i))
end

-- how the server prints values (as_val_tostring): strings quoted inside containers
local show
local function show_item(v)
  if type(v) == "string" then return '"' .. v .. '"' end
  return show(v)
end

------------------------------------------------------------------------- list
local list = {}
local LIST_MT = { __metatable = "list" }

local function new_list(items, n)
  local obj = setmetatable({}, LIST_MT)
  DATA[obj] = { items = items or {}, n = n or 0 }
  KIND[obj] = "list"
  return obj
end

LIST_MT.__index = function(l, i)
  local d, k = DATA[l], as_index(i)
  if k == nil or k < 1 or k > d.n then return nil end
  local v = d.items[k]
  if v == NIL then return nil end
  return v
end
LIST_MT.__newindex = function(l, i, v)
  local d, k = DATA[l], as_index(i)
  if k == nil or k < 1 then return end
  for j = d.n + 1, k - 1 do d.items[j] = NIL end   -- setting past the end pads with nil
  if v == nil then v = NIL end
  d.items[k] = v
  if k > d.n then d.n = k end
end
LIST_MT.__len = function(l) return DATA[l].n end
LIST_MT.__tostring = function(l)
  local d, parts = DATA[l], {}
  for i = 1, d.n do parts[i] = show_item(d.items[i]) end
  return "[" .. concat_strings(parts, ", ") .. "]"
end

local function list_from_table(t)
  -- list{...}: the table's integer keys in order, nil holes left out (as the server does)
  local keys = {}
  for k in pairs(t) do if mtype(k) == "integer" then keys[#keys + 1] = k end end
  sort(keys)
  local items = {}
  for i, k in ipairs(keys) do items[i] = t[k] end
  return new_list(items, #keys)
end

function list.append(l, v)
  local d = check(l, "list", "append")
  d.n = d.n + 1
  d.items[d.n] = (v == nil) and NIL or v
  return l
end
function list.prepend(l, v)
  local d = check(l, "list", "prepend")
  table.insert(d.items, 1, (v == nil) and NIL or v)
  d.n = d.n + 1
  return l
end
function list.insert(l, pos, v)
  local d = check(l, "list", "insert")
  local k = as_index(pos)
  if k == nil or k < 1 then return l end
  if k > d.n then l[k] = v return l end
  table.insert(d.items, k, (v == nil) and NIL or v)
  d.n = d.n + 1
  return l
end
function list.remove(l, pos)
  local d = check(l, "list", "remove")
  local k = as_index(pos)
  if k ~= nil and k >= 1 and k <= d.n then
    table.remove(d.items, k)
    d.n = d.n - 1
  end
  return l
end
function list.size(l) return check(l, "list", "size").n end
function list.concat(l, other)
  local d, o = check(l, "list", "concat"), check(other, "list", "concat")
  for i = 1, o.n do d.n = d.n + 1; d.items[d.n] = o.items[i] end
  return l
end
function list.trim(l, pos)
  local d = check(l, "list", "trim")
  local k = as_index(pos) or 1
  for i = d.n, math.max(k, 1), -1 do d.items[i] = nil end
  d.n = math.min(d.n, math.max(k - 1, 0))
  return l
end
local function slice(d, first, last)
  local items, n = {}, 0
  for i = first, last do n = n + 1; items[n] = d.items[i] end
  return new_list(items, n)
end
function list.take(l, n)
  local d = check(l, "list", "take")
  return slice(d, 1, math.min(as_index(n) or 0, d.n))
end
function list.drop(l, n)
  local d = check(l, "list", "drop")
  return slice(d, math.max(as_index(n) or 0, 0) + 1, d.n)
end
function list.clone(l)
  local d = check(l, "list", "clone")
  return slice(d, 1, d.n)
end
function list.iterator(l)
  local d, i = check(l, "list", "iterator"), 0
  return function()
    i = i + 1
    if i > d.n then return nil end
    local v = d.items[i]
    if v == NIL then return nil end
    return v
  end
end
function list.tostring(l) check(l, "list", "tostring") return tostring(l) end
function list.nbytes(l) return #tostring(l) end
-- `for v in l do`: a list called as an iterator yields its values
LIST_MT.__call = function(l) return list.iterator(l)() end
setmetatable(list, { __call = function(_, t)
  if t == nil then return new_list() end
  if KIND[t] == "list" then return list.clone(t) end
  if type(t) ~= "table" then error("bad argument #1 to 'list' (table expected)", 2) end
  return list_from_table(t)
end })

-------------------------------------------------------------------------- map
local map = {}
local MAP_MT = { __metatable = "map" }

local function new_map()
  local obj = setmetatable({}, MAP_MT)
  DATA[obj] = { entries = {}, n = 0 }
  KIND[obj] = "map"
  return obj
end
local function map_set(d, k, v)
  if k == nil or k ~= k then return end   -- no nil or NaN keys
  local had = d.entries[k] ~= nil
  if v == nil then
    if had then d.entries[k] = nil; d.n = d.n - 1 end
    return
  end
  if not had then d.n = d.n + 1 end
  d.entries[k] = v
end
MAP_MT.__index = function(m, k)
  if k == nil then return nil end
  return DATA[m].entries[k]
end
MAP_MT.__newindex = function(m, k, v) map_set(DATA[m], k, v) end
MAP_MT.__len = function(m) return DATA[m].n end
MAP_MT.__pairs = function(m) return next, DATA[m].entries, nil end
MAP_MT.__tostring = function(m)
  local parts = {}
  for k, v in next, DATA[m].entries do parts[#parts + 1] = show_item(k) .. ":" .. show_item(v) end
  return "{" .. concat_strings(parts, ", ") .. "}"
end

function map.pairs(m)
  local d = check(m, "map", "pairs")
  return next, d.entries, nil
end
map.iterator = map.pairs
function map.keys(m)
  local d, k = check(m, "map", "keys"), nil
  return function() k = next(d.entries, k) return k end
end
function map.values(m)
  local d, k, v = check(m, "map", "values"), nil, nil
  return function() k, v = next(d.entries, k) return v end
end
function map.size(m) return check(m, "map", "size").n end
function map.remove(m, k) map_set(check(m, "map", "remove"), k, nil) return m end
function map.clone(m)
  local d, out = check(m, "map", "clone"), new_map()
  for k, v in next, d.entries do map_set(DATA[out], k, v) end
  return out
end
function map.merge(a, b, resolve)
  local out, db = map.clone(a), check(b, "map", "merge")
  local dout = DATA[out]
  for k, v in next, db.entries do
    local mine = dout.entries[k]
    if mine ~= nil and resolve ~= nil then v = resolve(mine, v) end
    map_set(dout, k, v)
  end
  return out
end
function map.diff(a, b)
  local da, db, out = check(a, "map", "diff"), check(b, "map", "diff"), new_map()
  for k, v in next, da.entries do if db.entries[k] == nil then map_set(DATA[out], k, v) end end
  for k, v in next, db.entries do if da.entries[k] == nil then map_set(DATA[out], k, v) end end
  return out
end
function map.tostring(m) check(m, "map", "tostring") return tostring(m) end
function map.nbytes(m) return #tostring(m) end
setmetatable(map, { __call = function(_, t)
  local out = new_map()
  if t == nil then return out end
  if KIND[t] == "map" then return map.clone(t) end
  if type(t) ~= "table" then error("bad argument #1 to 'map' (table expected)", 2) end
  for k, v in pairs(t) do map_set(DATA[out], k, v) end
  return out
end })

------------------------------------------------------------------------ bytes
-- a byte array held as a table of integers 0..255; index 1-based as in the server
local bytes = {}
local BYTES_MT = { __metatable = "bytes" }
local function new_bytes(arr, n)
  local obj = setmetatable({}, BYTES_MT)
  DATA[obj] = { b = arr or {}, n = n or 0, t = 4 }
  KIND[obj] = "bytes"
  return obj
end
local function grow(d, size)
  for i = d.n + 1, size do d.b[i] = 0 end
  if size > d.n then d.n = size end
end
BYTES_MT.__index = function(o, i)
  local d, k = DATA[o], as_index(i)
  if k == nil or k < 1 or k > d.n then return nil end
  return d.b[k]
end
BYTES_MT.__newindex = function(o, i, v)
  local d, k = DATA[o], as_index(i)
  local byte = as_index(v)
  if k == nil or k < 1 or byte == nil then return end
  grow(d, k)
  d.b[k] = byte & 0xFF
end
BYTES_MT.__len = function(o) return DATA[o].n end
BYTES_MT.__tostring = function(o)
  local d, parts = DATA[o], {}
  for i = 1, d.n do parts[i] = sformat("%02X", d.b[i]) end
  return "Bytes(" .. concat_strings(parts, " ") .. ")"
end
local function bytes_from_string(s)
  local arr = { s:byte(1, -1) }
  return new_bytes(arr, #s)
end
function bytes.size(o) return check(o, "bytes", "size").n end
function bytes.set_size(o, n)
  local d = check(o, "bytes", "set_size")
  n = as_index(n) or 0
  if n < d.n then for i = d.n, n + 1, -1 do d.b[i] = nil end d.n = n else grow(d, n) end
  return true
end
function bytes.get_type(o) return check(o, "bytes", "get_type").t end
function bytes.set_type(o, t) check(o, "bytes", "set_type").t = as_index(t) or 4 return true end
function bytes.get_byte(o, i) return o[i] end
function bytes.set_byte(o, i, v) o[i] = v return true end
function bytes.append_byte(o, v) local d = check(o, "bytes", "append_byte") o[d.n + 1] = v return true end
function bytes.get_string(o, i, len)
  local d = check(o, "bytes", "get_string")
  local k, n, chars = as_index(i) or 1, as_index(len) or 0, {}
  for j = k, math.min(k + n - 1, d.n) do chars[#chars + 1] = string.char(d.b[j]) end
  return concat_strings(chars)
end
function bytes.get_bytes(o, i, len)
  return bytes_from_string(bytes.get_string(o, i, len))
end
local function put_string(o, i, s)
  local d = check(o, "bytes", "set_string")
  local k = as_index(i) or 1
  grow(d, k + #s - 1)
  for j = 1, #s do d.b[k + j - 1] = s:byte(j) end
  return true
end
function bytes.set_string(o, i, s) return put_string(o, i, s) end
function bytes.set_bytes(o, i, other, len)
  local od = check(other, "bytes", "set_bytes")
  local n = math.min(as_index(len) or od.n, od.n)
  return put_string(o, i, bytes.get_string(other, 1, n))
end
function bytes.append_string(o, s) return put_string(o, check(o, "bytes", "append_string").n + 1, s) end
function bytes.append_bytes(o, other, len)
  return bytes.set_bytes(o, check(o, "bytes", "append_bytes").n + 1, other, len)
end
-- fixed-width integers: big-endian unless _le (as the server's default is)
local function int_codec(width, little)
  local fmt = (little and "<" or ">") .. "i" .. width
  local get = function(o, i)
    local s = bytes.get_string(o, i, width)
    if #s < width then return nil end
    return (string.unpack(fmt, s))
  end
  local set = function(o, i, v) return put_string(o, i, string.pack(fmt, as_index(v) or 0)) end
  local append = function(o, v) return set(o, check(o, "bytes", "append").n + 1, v) end
  return get, set, append
end
for _, width in ipairs({ 2, 4, 8 }) do
  local bits = width * 8
  for _, suffix in ipairs({ "", "_be", "_le" }) do
    local get, set, append = int_codec(width, suffix == "_le")
    bytes["get_int" .. bits .. suffix] = get
    bytes["set_int" .. bits .. suffix] = set
    bytes["append_int" .. bits .. suffix] = append
  end
end
setmetatable(bytes, { __call = function(_, n)
  local o = new_bytes()
  return o  -- bytes(n): n is a capacity, the array starts empty (as the server's)
end })

---------------------------------------------------------------------- records
-- A record as the UDF sees it. Bin writes collect in `pending` until aerospike:create or
-- aerospike:update commits them (as the server's udf_record does); Python reads `state`
-- afterwards: the committed bins, whether the record was removed, its new TTL.
local record = {}
local REC_MT = { __metatable = "record" }
REC_MT.__index = function(r, name)
  local v = DATA[r].bins[name]
  if v == NIL then return nil end
  return v
end
REC_MT.__newindex = function(r, name, v)
  if type(name) ~= "string" then return end
  local st = DATA[r]
  st.bins[name] = v
  st.pending[name] = true
end

local function new_record(meta, bins)
  local r = setmetatable({}, REC_MT)
  DATA[r] = { meta = meta, bins = bins, pending = {}, committed = {}, action = nil,
              removed = false, ttl = nil, drop_key = false }
  KIND[r] = "record"
  return r
end
local function rec_state(r, fname) return check(r, "record", fname) end
local function meta_of(r, fname)
  local st = rec_state(r, fname)
  return st.meta, st
end

function record.ttl(r) local m, st = meta_of(r, "ttl") if not m.exists then return 0 end return m.ttl end
function record.last_update_time(r) local m = meta_of(r, "last_update_time") return m.lut end
function record.gen(r) local m = meta_of(r, "gen") return m.exists and m.gen or 0 end
function record.key(r) return meta_of(r, "key").key end
function record.setname(r) return meta_of(r, "setname").setname end
function record.digest(r)
  local d = meta_of(r, "digest").digest
  if d == nil then return nil end
  return bytes_from_string(d)
end
function record.size(r) return meta_of(r, "size").size end
record.memory_size = record.size
record.device_size = record.size
function record.numbins(r)
  local st, n = rec_state(r, "numbins"), 0
  if not st.meta.exists then return 0 end
  for _ in next, st.bins do n = n + 1 end
  return n
end
function record.bin_names(r)
  local st, names = rec_state(r, "bin_names"), {}
  for name in next, st.bins do names[#names + 1] = name end
  sort(names)
  return names
end
function record.set_ttl(r, ttl) rec_state(r, "set_ttl").ttl = as_index(ttl) end
function record.drop_key(r) rec_state(r, "drop_key").drop_key = true end

----------------------------------------------------------------- aerospike
local aerospike = {}
local function commit(st)
  for name in next, st.pending do st.committed[name] = st.bins[name] == nil and NIL or st.bins[name] end
  st.pending = {}
  st.action = "write"
  st.meta.exists = true
end
function aerospike:exists(r) return rec_state(r, "exists").meta.exists == true end
function aerospike:create(r)
  local st = rec_state(r, "create")
  if st.meta.exists then return 1 end          -- the server's answer for an existing record
  commit(st)
  return 0
end
function aerospike:update(r)
  local st = rec_state(r, "update")
  if not st.meta.exists then return -2 end     -- as the server: update does not create
  commit(st)
  return 0
end
function aerospike:remove(r)
  local st = rec_state(r, "remove")
  if not st.meta.exists then return 1 end
  st.meta.exists, st.removed, st.action = false, true, "remove"
  st.bins, st.pending, st.committed = {}, {}, {}
  return 0
end
local LEVELS = { [1] = "warn", [2] = "info", [3] = "debug", [4] = "trace" }
local function logger(level)
  return function(fmt, ...)
    local ok, text = real_pcall(sformat, tostring(fmt), ...)
    host.log(level, ok and text or tostring(fmt))
  end
end
function aerospike:log(level, fmt, ...) logger(LEVELS[level] or "info")(fmt, ...) end
function aerospike:get_current_time() return host.now_ms() end

------------------------------------------------------------------ the sandbox
show = function(v)
  if v == nil or v == NIL then return "nil" end
  return tostring(v)
end

local function safe_pcall(f, ...)
  local results = table.pack(real_pcall(f, ...))
  if budget.over then error(OVER, 0) end
  return table.unpack(results, 1, results.n)
end
local function safe_xpcall(f, handler, ...)
  local results = table.pack(real_xpcall(f, handler, ...))
  if budget.over then error(OVER, 0) end
  return table.unpack(results, 1, results.n)
end
local function copy(t) local c = {} for k, v in pairs(t) do c[k] = v end return c end
local safe_string = copy(string)
safe_string.dump = nil

local SAFE = {
  assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs, select = select,
  tonumber = tonumber, tostring = tostring, type = type, unpack = table.unpack,
  rawequal = rawequal, rawget = rawget, rawlen = rawlen, rawset = rawset,
  getmetatable = getmetatable, setmetatable = setmetatable,
  pcall = safe_pcall, xpcall = safe_xpcall, _VERSION = _VERSION,
  string = safe_string, table = copy(table), math = copy(math), utf8 = copy(utf8),
  coroutine = copy(coroutine),
  list = list, map = map, bytes = bytes, record = record, aerospike = aerospike,
  warn = logger("warn"), info = logger("info"), debug = logger("debug"), trace = logger("trace"),
  print = logger("info"),
}
SAFE._G = SAFE
SAFE.math.randomseed = nil   -- the node's generator is not the UDF's to reseed

local modules = {}   -- name -> the module's environment, once loaded
local exports = {}   -- name -> what require() gives: the chunk's return value, else its environment

local function load_module(name, source, chunkname)
  local env = setmetatable({}, { __index = SAFE })
  env._G = env
  local chunk, err = load(source, "@" .. chunkname, "t", env)
  if not chunk then return nil, err end
  return chunk, env
end
-- require('other'): another registered module, loaded through Python (never a file)
SAFE.require = function(name)
  if modules[name] == nil and not host.module(name) then
    error("module '" .. tostring(name) .. "' not found", 2)
  end
  return exports[name]
end

local api = {}
-- Compile a module's text without running it: nil if fine, else the message "<file>:<line>: ..."
function api.compile(source, chunkname)
  local chunk, err = load(source, "@" .. chunkname, "t", {})
  if chunk then return nil end
  return err
end
-- (Re)load a module: run its top level under the budget; nil or the error text
local calling = false   -- inside api.call: a require() loads under the caller's budget and hook
function api.install(name, source, chunkname, instructions)
  local chunk, env = load_module(name, source, chunkname)
  if not chunk then return env end
  local nested = calling
  if not nested then
    budget.left, budget.over = instructions, false
    sethook(count_hook, "", STEP)
  end
  local ok, result = real_pcall(chunk)
  if not nested then sethook() end
  if budget.over then error(OVER, 0) end
  if not ok then return tostring(result) end
  modules[name] = env
  if result == nil then exports[name] = env else exports[name] = result end
  return nil
end
function api.forget(name) modules[name] = nil; exports[name] = nil end
function api.loaded(name) return modules[name] ~= nil end

-- Call module.fn(rec, args...) under the budget: ok, result (or the error's text)
function api.call(name, fname, rec, args, nargs, instructions)
  local env = modules[name]
  local f = env and rawget(env, fname)
  if type(f) ~= "function" then return false, "function not found" end
  local plain = {}   -- NIL stood for the client's nil arguments on the way in
  for i = 1, nargs do if args[i] ~= NIL then plain[i] = args[i] end end
  budget.left, budget.over = instructions, false
  calling = true
  sethook(count_hook, "", STEP)
  local ok, result = real_pcall(f, rec, table.unpack(plain, 1, nargs))
  sethook()
  calling = false
  if budget.over then return false, OVER end
  if not ok and type(result) ~= "string" then result = nil end
  return ok, result
end

api.new_record = new_record
api.new_list = new_list
api.new_map = function(keys, values, n)
  local m = new_map()
  local d = DATA[m]
  for i = 1, n do map_set(d, keys[i], values[i]) end
  return m
end
api.new_bytes = bytes_from_string
api.kind = kind
api.NIL = NIL
function api.list_items(l) local d = DATA[l] return d.items, d.n end
function api.map_items(m)
  local keys, values, n = {}, {}, 0
  for k, v in next, DATA[m].entries do n = n + 1; keys[n] = k; values[n] = v end
  return keys, values, n
end
function api.bytes_string(o)
  local d, chars = DATA[o], {}
  for i = 1, d.n do chars[i] = string.char(d.b[i]) end
  return concat_strings(chars), d.t
end
function api.record_state(r) return DATA[r] end
return api
"""
