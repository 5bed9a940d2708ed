"""A record UDF (`client.apply`): run the function, then let core/write.py make the change.

The UDF sees the record through the prelude's `record` object; whatever it commits with
aerospike:create / aerospike:update (the bins it set, nil for a bin it removed, a TTL from
record.set_ttl) is turned into WRITE ops and handed to `write.write`, an aerospike:remove
to `write.delete`, so generation, last-update-time, TTL and size limits are the one write
rule's, exactly as for any client write. The reply is the server's: the function's result
in a bin named SUCCESS, or result UDF_BAD_RESPONSE (100) with the error text in FAILURE
(and no change to the record).
"""

from dataclasses import dataclass

from cluster.core import bins as binops
from cluster.core import write as writes
from cluster.core.records import RecordImage
from cluster.core.write import Outcome
from cluster.wire import particles
from cluster.wire.message import FieldType, Info2, Info3, Message, Op, OpType
from cluster.wire.particles import ParticleType
from cluster.wire.result_codes import AerospikeError, ResultCode

from .runtime import LUA_ERRORS, LuaRuntime
from .values import UdfValueError

UDF_BAD_RESPONSE = 100  # the server's result for a UDF that failed


@dataclass(frozen=True)
class UdfCall:
    module: str
    function: str
    args: list

    @classmethod
    def from_fields(cls, fields: dict[int, bytes]) -> "UdfCall":
        module, function = fields.get(FieldType.UDF_PACKAGE_NAME), fields.get(FieldType.UDF_FUNCTION)
        if module is None or function is None:  # empty names are a UDF error (not found), as on the server
            raise AerospikeError(ResultCode.PARAMETER, "UDF call without module or function")
        raw = fields.get(FieldType.UDF_ARGLIST)
        args = particles.decode(ParticleType.LIST, raw) if raw else []
        if not isinstance(args, list):
            raise AerospikeError(ResultCode.PARAMETER, "UDF arguments are not a list")
        return cls(module.decode("utf-8", errors="replace"), function.decode("utf-8", errors="replace"), args)


def failure(message: str) -> Outcome:
    return Outcome(UDF_BAD_RESPONSE, ops=[Op(OpType.READ, ParticleType.STRING, "FAILURE", message.encode())])


def _lua_record(runtime: LuaRuntime, live: RecordImage | None, digest: bytes, set_name: str,
                key_field: bytes | None, now_s: int):
    """The prelude's record object for the current copy (live, or None: a record to create)."""
    values = runtime.values
    record_bins, stored_key = binops.decode_payload(live.payload) if live is not None else ({}, None)
    key = stored_key or ((key_field[0], key_field[1:]) if key_field else None)
    meta = {
        b"exists": live is not None,
        b"ttl": max(live.void_time - now_s, 0) if live is not None and live.void_time else 0,
        b"gen": live.generation if live is not None else 0,
        b"lut": live.lut if live is not None else 0,
        b"setname": set_name.encode() if live is not None and set_name else None,
        b"digest": digest,
        b"size": len(live.payload) if live is not None else 0,
        b"key": values.particle_to_lua(*key) if key else None,
    }
    lua_bins = {name.encode(): values.particle_to_lua(ptype, value) for name, (ptype, value) in record_bins.items()}
    return runtime.api.new_record(runtime.lua.table_from(meta), runtime.lua.table_from(lua_bins))


def _committed_ops(runtime: LuaRuntime, state) -> list[Op]:
    """WRITE ops for the bins the UDF committed (a NULL particle removes a bin)."""
    ops = []
    for name, value in state.committed.items():
        ptype, data = runtime.values.to_particle(value)
        ops.append(Op(OpType.WRITE, ptype, name.decode("utf-8", errors="replace"), data))
    return ops


def apply(runtime: LuaRuntime, current: RecordImage | None, digest: bytes, msg: Message, set_name: str,
          now_ms: int, default_ttl: int, max_record_size: int) -> Outcome:
    """Run the UDF `msg` names on the record's current copy; the Outcome (and new image) as
    write.write / write.delete make it, its ops replaced by the SUCCESS or FAILURE bin."""
    call = UdfCall.from_fields(msg.fields)
    live = current if current is not None and not current.tombstone else None
    try:
        rec = _lua_record(runtime, live, digest, set_name, msg.fields.get(FieldType.KEY), now_ms // 1000)
        ok, result = runtime.call(call.module, call.function, rec, call.args)
        if not ok:
            return failure(_server_message(result))
        answer = runtime.values.to_particle(result)
        state = runtime.api.record_state(rec)
        action = state.action
        ops = _committed_ops(runtime, state) if action == b"write" else []
    except UdfValueError as exc:
        return failure(str(exc))
    except (TypeError, OverflowError) as exc:  # a value no bin can hold
        return failure(f"result value type unexpected: {exc}")
    except LUA_ERRORS as exc:  # building the record or its values in Lua failed: the UDF fails, not the node
        return failure(str(exc))

    if action == b"remove":
        outcome = writes.delete(current, Message(info2=msg.info2 | Info2.WRITE | Info2.DELETE), now_ms)
    elif action == b"write":
        ttl = state.ttl
        # after aerospike:remove, a create starts the record afresh
        info3 = Info3.CREATE_OR_REPLACE if state.removed else 0
        request = Message(info2=(msg.info2 | Info2.WRITE) & ~Info2.DELETE, info3=info3,
                          record_ttl=msg.record_ttl if ttl is None else ttl & 0xFFFFFFFF,
                          fields=msg.fields, ops=ops)
        outcome = writes.write(current, digest, request, set_name, now_ms, default_ttl, max_record_size)
    else:  # read only
        outcome = Outcome(ResultCode.OK, live.generation, live.void_time) if live else Outcome(ResultCode.OK)
    outcome.result = ResultCode.OK if outcome.result == ResultCode.KEY_NOT_FOUND else outcome.result
    outcome.ops = [Op(OpType.READ, answer[0], "SUCCESS", answer[1])]
    return outcome


def _server_message(error: str) -> str:
    """The server answers a missing module with "UDF: Execution Error 1"; other errors as Lua
    raised them ("<module path>:<line>: <message>")."""
    if error == "not found":
        return "UDF: Execution Error 1"
    return error
