"""The Aerospike client wire protocol: framing, info text, AS_MSG, particles, digests.

Everything here is pure byte manipulation shared by the node (server side), our smart
client and the fuzz tests. Layouts are those the official clients send and parse (aerospike-client-python / C client, as_proto and as_msg).
"""
