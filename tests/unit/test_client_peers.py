"""Parsing `peers-clear-std` values."""

import pytest

from cluster.client.errors import ClientError
from cluster.client.peers import parse_peers


def test_peers_with_ports():
    value = "3,3000,[[BB9000000000002,,[127.0.0.1:3001]],[BB9000000000003,,[127.0.0.1:3002,10.0.0.3]]]"
    assert parse_peers(value) == (3, [("BB9000000000002", [("127.0.0.1", 3001)]),
                                      ("BB9000000000003", [("127.0.0.1", 3002), ("10.0.0.3", 3000)])])


def test_no_peers_and_empty_default_port():
    assert parse_peers("7,3000,[]") == (7, [])
    assert parse_peers("1,,[[A,,[h]]]") == (1, [("A", [("h", 3000)])])


def test_default_port_tls_name_and_ipv6():
    value = "2,4000,[[A1,tls-a,[[::1]:3005,[fe80::2],host]]]"
    assert parse_peers(value) == (2, [("A1", [("::1", 3005), ("fe80::2", 4000), ("host", 4000)])])


@pytest.mark.parametrize("value", ["", "x,3000,[]", "1,3000", "1,3000,[[A,,[h:p]]]", "1,3000,[[A,,[h]]"])
def test_malformed_peers(value):
    with pytest.raises(ClientError):
        parse_peers(value)
