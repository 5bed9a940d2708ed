"""The Python floor: a bare asyncio (uvloop) request/response server with the same 8-byte
proto framing as the node, answering every request with a canned reply of a given size.

    python bench/floor_server.py PORT REPLY_BYTES
"""

import asyncio
import struct
import sys

import uvloop


class Floor(asyncio.Protocol):
    def __init__(self, reply: bytes):
        self.reply = reply
        self.buf = bytearray()

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        buf = self.buf
        buf += data
        while len(buf) >= 8:
            size = struct.unpack_from(">Q", buf)[0] & 0xFFFFFFFFFFFF
            if len(buf) < 8 + size:
                return
            del buf[: 8 + size]
            self.transport.write(self.reply)


async def main(port: int, reply_bytes: int) -> None:
    reply = struct.pack(">Q", (2 << 56) | (3 << 48) | reply_bytes) + bytes(reply_bytes)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Floor(reply), "127.0.0.1", port, reuse_address=True)
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.install()
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
