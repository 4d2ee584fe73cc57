"""A small OpenAI-shaped SSE upstream that sends each event as its own HTTP chunk,
`--gap-ms` apart, so a proxy sees one body callback per event (a `direct_response`
body arrives in one piece). `x-bench-first-gap-ms: N` on a request makes it wait N ms
after the first event (the first-byte probe). Listens on 127.0.0.1 only."""
from __future__ import annotations

import argparse
import asyncio
import socket

from sse_body import openai_sse_events


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, events: list[bytes], gap: float):
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            headers = {}
            for line in head.split(b"\r\n")[1:]:
                if b":" in line:
                    k, v = line.split(b":", 1)
                    headers[k.strip().lower()] = v.strip()
            if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
                while True:
                    size = int((await reader.readline()).split(b";")[0], 16)
                    await reader.readexactly(size + 2)
                    if size == 0:
                        break
            else:
                n = int(headers.get(b"content-length", b"0"))
                if n:
                    await reader.readexactly(n)
            first_gap = float(headers.get(b"x-bench-first-gap-ms", b"0")) / 1000
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                         b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n")
            for i, ev in enumerate(events):
                writer.write(b"%x\r\n%s\r\n" % (len(ev), ev))
                await writer.drain()
                await asyncio.sleep(first_gap if (i == 0 and first_gap) else gap)
            writer.write(b"0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--events", type=int, default=20)
    ap.add_argument("--gap-ms", type=float, default=1.0)
    a = ap.parse_args()
    events = openai_sse_events(a.events)
    server = await asyncio.start_server(lambda r, w: handle(r, w, events, a.gap_ms / 1000),
                                        "127.0.0.1", a.port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
