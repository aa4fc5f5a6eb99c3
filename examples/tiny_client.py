"""A deliberately tiny SIP UAC: the "system under test" of the example tests.

It places one call: INVITE over UDP, waits for the final response (retransmitting
the INVITE on timer A like RFC 3261 17.1.1.2 says), ACKs it and returns the code;
``call`` blocks, ``acall`` is the same for asyncio programs.
"""

from __future__ import annotations

import asyncio
import socket
import uuid


def call(target: str, host: str, port: int, *, user_agent: str = "TinyClient/1.0",
         timeout: float = 5.0) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        local_port = sock.getsockname()[1]
        branch = f"z9hG4bK{uuid.uuid4().hex[:16]}"
        call_id = f"{uuid.uuid4().hex}@127.0.0.1"
        via = f"SIP/2.0/UDP 127.0.0.1:{local_port};branch={branch};rport"
        common = (f"Via: {via}\r\nMax-Forwards: 70\r\n"
                  f"From: <sip:tiny@127.0.0.1>;tag=tiny1\r\n")
        invite = (f"INVITE {target} SIP/2.0\r\n{common}To: <{target}>\r\n"
                  f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\n"
                  f"Contact: <sip:tiny@127.0.0.1:{local_port}>\r\n"
                  f"User-Agent: {user_agent}\r\nContent-Length: 0\r\n\r\n").encode()
        interval, waited = 0.5, 0.0
        sock.sendto(invite, (host, port))
        while True:
            sock.settimeout(interval)
            try:
                data = sock.recv(65535)
            except TimeoutError:
                waited += interval
                if waited >= timeout:
                    raise TimeoutError(f"no final response to INVITE {target}") from None
                interval *= 2
                sock.sendto(invite, (host, port))
                continue
            code = int(data[8:11])
            if code < 200:
                continue
            to = next(line for line in data.decode("latin-1").split("\r\n")
                      if line.lower().startswith("to:"))
            ack = (f"ACK {target} SIP/2.0\r\n{common}{to}\r\nCall-ID: {call_id}\r\n"
                   f"CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n").encode()
            sock.sendto(ack, (host, port))
            return code


class _Replies(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.queue.put_nowait(data)


async def acall(target: str, host: str, port: int, *, user_agent: str = "TinyClient/1.0",
                timeout: float = 5.0) -> int:
    """``call`` for asyncio programs: the same INVITE, timer A and ACK, on the loop."""
    loop = asyncio.get_running_loop()
    transport, replies = await loop.create_datagram_endpoint(
        _Replies, local_addr=("127.0.0.1", 0), remote_addr=(host, port))
    try:
        local_port = transport.get_extra_info("sockname")[1]
        branch = f"z9hG4bK{uuid.uuid4().hex[:16]}"
        call_id = f"{uuid.uuid4().hex}@127.0.0.1"
        common = (f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch={branch};rport\r\n"
                  f"Max-Forwards: 70\r\nFrom: <sip:tiny@127.0.0.1>;tag=tiny1\r\n")
        invite = (f"INVITE {target} SIP/2.0\r\n{common}To: <{target}>\r\n"
                  f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\n"
                  f"Contact: <sip:tiny@127.0.0.1:{local_port}>\r\n"
                  f"User-Agent: {user_agent}\r\nContent-Length: 0\r\n\r\n").encode()
        async with asyncio.timeout(timeout):
            interval = 0.5
            transport.sendto(invite)
            while True:
                try:
                    data = await asyncio.wait_for(replies.queue.get(), interval)
                except TimeoutError:
                    interval *= 2
                    transport.sendto(invite)
                    continue
                code = int(data[8:11])
                if code >= 200:
                    break
        to = next(line for line in data.decode("latin-1").split("\r\n")
                  if line.lower().startswith("to:"))
        transport.sendto((f"ACK {target} SIP/2.0\r\n{common}{to}\r\nCall-ID: {call_id}\r\n"
                          f"CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n").encode())
        return code
    finally:
        transport.close()
