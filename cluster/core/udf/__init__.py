"""Record UDFs in Lua, as the server runs them (mod-lua's API, reimplemented).

prelude.py  the Lua side: the sandbox and the list / map / bytes / record / aerospike API
values.py   values between particles, Python and Lua
runtime.py  the node's one Lua state: loading modules, calls under a budget
registry.py the registered modules (udf-put / udf-get / udf-list / udf-remove), shared
record.py   client.apply: run the function, hand its changes to core/write.py
"""
