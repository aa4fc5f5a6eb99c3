"""A naive SIP responder, the second reference of bench/run.py (``--reference naive``).

It answers every UDP datagram that carries the five header fields a response must
copy (Via, From, To, Call-ID, CSeq) with ``200 OK`` made of those five lines and
``Content-Length: 0``: no parsing beyond splitting lines, no checks, no To tag, no
rules. This is about the least a Python program can do per request, so its rate is
the ceiling a Python responder can hope for on this machine (issue 4's stretch
target: sipresponder >= 0.8x of it on UDP OPTIONS).

    python bench/naive_udp.py --port 5090      # uvloop when installed, 4 MiB buffers
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket

BUFFER = 4 * 1024 * 1024
COPIED = (b"via:", b"from:", b"to:", b"call-id:", b"cseq:")


class NaiveResponder(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        head = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
        if head[0].startswith(b"ACK "):
            return
        lines = [line for line in head[1:] if line[:9].lower().startswith(COPIED)]
        if len(lines) < 5:
            return
        self.transport.sendto(
            b"SIP/2.0 200 OK\r\n" + b"\r\n".join(lines) + b"\r\nContent-Length: 0\r\n\r\n",
            addr,
        )


async def serve(host: str, port: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER)
    sock.bind((host, port))
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(NaiveResponder, sock=sock)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        transport.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop  # type: ignore[import-not-found]
    except ImportError:
        asyncio.run(serve(args.host, args.port))
    else:
        uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
