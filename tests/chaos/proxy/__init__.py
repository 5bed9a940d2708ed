"""Tests of refproxy, our Toxiproxy-compatible server, with real clients and real sockets."""
