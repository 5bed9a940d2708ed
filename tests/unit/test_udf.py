"""cluster/core/udf without a node: the registry's answers and merging, the Lua API a
record UDF sees, and what its changes become through core/write.py."""

import base64
import hashlib
import json

import pytest

from cluster.core import bins as binops
from cluster.core.udf import record as udf_record
from cluster.core.udf.registry import Entry, UdfRegistry
from cluster.core.udf.runtime import LuaRuntime
from cluster.wire import particles
from cluster.wire.message import FieldType, Info2, Message

NOW_MS = 500_000_000_000


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def put_line(filename: str, text: str) -> dict[str, str]:
    content = b64(text)
    return {"filename": filename, "content": content, "content-len": str(len(content)), "udf-type": "LUA"}


@pytest.fixture
def lua():
    holder = {}
    registry = UdfRegistry(None, lambda f, t: holder["rt"].compile_error(f, t))
    holder["rt"] = LuaRuntime(registry.source_of, instructions=1_000_000)
    holder["rt"].registry = registry
    return holder["rt"]


def run(rt, text, function, *args, current=None):
    rt.registry.put(put_line("m.lua", text), 1)
    msg = Message(info2=Info2.WRITE, fields={FieldType.NAMESPACE: b"test", 30: b"m", 31: function.encode(),
                                             32: particles.encode(list(args))[1]})
    outcome = udf_record.apply(rt, current, b"d" * 20, msg, "s", NOW_MS, 0, 1 << 20)
    (answer,) = outcome.ops
    return outcome, answer.name, particles.decode(answer.ptype, answer.value)


def bins_of(image) -> dict:
    return {k: particles.decode(*v) for k, v in binops.decode_payload(image.payload)[0].items()}


def test_registry_answers_and_hash_as_the_server(tmp_path):
    registry = UdfRegistry(tmp_path / "UDF.json", lambda f, t: None)
    text = "function f(r) return 1 end"
    assert registry.put(put_line("x.lua", text), 10)[0] == "ok"
    smd_value = json.dumps({"content64": b64(text), "type": "LUA", "name": "x.lua"})
    assert registry.list() == f"filename=x.lua,hash={hashlib.sha1(smd_value.encode()).hexdigest()},type=LUA;"
    assert registry.get({"filename": "x.lua"}) == f"type=LUA;content={b64(text)};"
    assert registry.get({"filename": "y.lua"}) == "error=not_found"
    assert registry.put({**put_line("x.lua", text), "content-len": "5"}, 11)[0] == "error=invalid_content_len"
    assert registry.put({**put_line("x", text)}, 11)[0] == "error=invalid_filename"
    assert registry.put({**put_line("x.lua", text), "content": "!!!!" * 9}, 11)[0] == "error=invalid_base64_content"
    # persisted, and read back by the next registry on that file
    assert UdfRegistry(tmp_path / "UDF.json", lambda f, t: None).list() == registry.list()
    assert registry.remove({"filename": "x.lua"}, 12)[0] == "ok"
    assert registry.list() == "" and registry.source_of("x") is None


def test_merge_takes_the_newest_stamp_whatever_the_order(tmp_path):
    a, b = UdfRegistry(None, lambda f, t: None), UdfRegistry(None, lambda f, t: None)
    _, first = a.put(put_line("m.lua", "x = 1"), 100)
    _, removal = a.remove({"filename": "m.lua"}, 200)
    assert b.merge("m.lua", removal) and not b.merge("m.lua", first)  # the older put arrives late
    assert b.list() == "" and b.entries == a.entries
    assert not b.merge("m.lua", Entry(None, "LUA", 200))  # the same entry again changes nothing


def test_compile_errors_are_reported_with_line_and_message(lua):
    answer, entry = lua.registry.put(put_line("bad.lua", "\nfunction f(\n"), 1)
    assert entry is None
    assert answer.startswith("error=compile_error;file=bad.lua;line=3;message=")
    assert base64.b64decode(answer.rpartition("message=")[2]).decode() == "<name> or '...' expected near <eof>"


def test_create_update_remove_go_through_the_write_rule(lua):
    text = """
function put(r, v) r['a'] = v; r['gone'] = nil
  if aerospike:exists(r) then aerospike:update(r) else aerospike:create(r) end return record.gen(r) end
function remove(r) return aerospike:remove(r) end
function remove_then_create(r) aerospike:remove(r); r['b'] = 2; return aerospike:create(r) end
function read(r) r['a'] = 99; return r['a'] end
"""
    outcome, name, value = run(lua, text, "put", 1)
    # record.gen: the generation the UDF found (0: none), as the server answers
    assert (name, value, outcome.generation, outcome.image.generation) == ("SUCCESS", 0, 1, 1)
    created = outcome.image
    assert bins_of(created) == {"a": 1} and created.lut == NOW_MS
    outcome, _, value = run(lua, text, "put", 2, current=created)
    assert outcome.image.generation == 2 and outcome.image.lut == NOW_MS + 1 and bins_of(outcome.image) == {"a": 2}
    outcome, _, value = run(lua, text, "read", current=created)
    assert value == 99 and outcome.image is None  # set but never committed: nothing written
    outcome, _, value = run(lua, text, "remove", current=created)
    assert value == 0 and outcome.image.generation == 2 and not outcome.image.payload
    outcome, _, value = run(lua, text, "remove_then_create", current=created)
    assert value == 0 and bins_of(outcome.image) == {"b": 2}  # the create replaced every bin


def test_values_cross_both_ways(lua):
    text = """
function echo(r, v) return v end
function kinds(r, l, m, b) return list{list.size(l), map.size(m), bytes.size(b), l[2], m['k'], b[1]} end
function build(r)
  local l = list{1, 2}; list.append(l, "x"); list.prepend(l, 0); list.insert(l, 2, 0.5)
  local m = map(); m['a'] = l; m[1] = true
  local b = bytes(4); b[1] = 255; bytes.append_int16_be(b, 258)
  return list{l, m, b, list.take(l, 2), list.drop(l, 3), tostring(list{1, "s"})}
end
"""
    for value in (1, -2**63, 2.5, "text", True, [1, [2, "x"]], {"k": {"n": 1}}, b"\x00\x01"):
        assert run(lua, text, "echo", value)[2] == value
    assert run(lua, text, "kinds", [1, 2], {"k": "v"}, b"\x07")[2] == [2, 1, 1, 2, "v", 7]
    assert run(lua, text, "build")[2] == [[0, 0.5, 1, 2, "x"], {"a": [0, 0.5, 1, 2, "x"], 1: True},
                                          b"\xff\x01\x02", [0, 0.5], [2, "x"], '[1, "s"]']


def test_errors_budget_and_sandbox(lua):
    text = """
function fail(r) error("bad thing") end
function spin(r) while true do end end
function hide(r) local ok = pcall(function() while true do end end) return ok end
function memory(r) local t = {} for i = 1, 1e9 do t[i] = string.rep("x", 1000) .. i end end
function escape(r) return tostring(os) .. tostring(io) .. tostring(load) .. tostring(require and 1) end
"""
    outcome, name, value = run(lua, text, "fail")
    assert (outcome.result, name, value) == (100, "FAILURE", "udf/m.lua:2: bad thing")
    assert run(lua, text, "spin")[2] == "UDF exceeded its execution budget"
    assert run(lua, text, "hide")[2] == "UDF exceeded its execution budget"
    assert run(lua, text, "escape")[2] == "nilnilnil1"
    assert run(lua, text, "nope")[2] == "function not found"
    assert run(lua, "function f(r) return 7 end", "f")[2] == 7  # a new registration is reloaded


def test_memory_is_capped():
    registry = UdfRegistry(None, lambda f, t: None)
    rt = LuaRuntime(registry.source_of, max_memory=16 * 1024 * 1024)
    rt.registry = registry
    outcome, name, value = run(rt, 'function big(r) return #string.rep("x", 100000000) end', "big")
    assert (outcome.result, name, value) == (100, "FAILURE", "not enough memory")
    assert run(rt, "function f(r) return #string.rep('x', 1000) end", "f")[2] == 1000  # and it recovers


def test_require_loads_another_module_under_the_callers_budget(lua):
    lua.registry.put(put_line("helper.lua", "local M = {} function M.twice(x) return 2 * x end return M"), 1)
    text = """
function use(r, x) local h = require('helper') return h.twice(x) end
function spin_after(r) require('helper') while true do end end
"""
    assert run(lua, text, "use", 21)[2] == 42
    assert run(lua, text, "spin_after")[2] == "UDF exceeded its execution budget"
