"""The Aerospike client wire protocol: framing, info text, AS_MSG, particles, digests.

Everything here is pure byte manipulation shared by the node (server side), our smart
client and the fuzz tests. Layouts follow ../shared/spec/aerospike-wire-protocol.md.
"""
