"""Our pure-Python smart client: blocking sockets (gevent-friendly), cluster tend, partition routing.

    from cluster.client import Client, operations
    client = Client({"hosts": [("127.0.0.1", 3000)]}).connect()
"""

from . import errors, operations
from .client import Client

__all__ = ["Client", "errors", "operations"]
