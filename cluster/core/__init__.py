"""Sans-I/O membership protocols: heartbeat, clustering (Paxos), exchange, partition balance.

Pure state machines: time and randomness come in as arguments, messages and events go out.
``membership.Membership`` bundles them for one node; see README.md in this folder.
"""
