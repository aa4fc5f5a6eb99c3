"""conftest.py of the directory where test_docs.py runs docs/testing.md's snippets.

The snippets call ``my_sip_client`` and ``my_async_client``: "the client you test",
which a reader supplies. Here they are a minimal UDP UAC, put in builtins because the
snippets use them as the reader's own module-level names, without an import.
"""

from __future__ import annotations

import asyncio
import builtins
import re
import socket
import uuid

_TO_TAG = re.compile(rb"(?im)^(?:to|t)[ \t]*:[^\r\n]*;tag=([^;\s]+)")
_HOST_PORT = re.compile(r"@([^:;>]+):(\d+)")


class SnippetClient:
    """INVITE, the ACK its final response needs and, on request, a BYE: over UDP."""

    user_agent = "MyApp/1.0"

    def call(self, uri: str) -> int:
        return self._call(uri, hang_up=False)

    def call_and_hang_up(self, uri: str) -> int:
        return self._call(uri, hang_up=True)

    def call_until_hung_up(self, uri: str) -> bool:
        """Call, and stay in the call until the far end's BYE, answered 200."""
        return self._call(uri, hang_up=False, wait_bye=True) == 200

    def _call(self, uri: str, *, hang_up: bool, wait_bye: bool = False) -> int:
        match = _HOST_PORT.search(uri)
        assert match, f"no host:port in {uri}"
        target = (match.group(1), int(match.group(2)))
        call_id = f"{uuid.uuid4().hex}@127.0.0.1"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(10)
            port = sock.getsockname()[1]

            def send(method: str, cseq: int, branch: str, to_tag: bytes | None) -> None:
                to = f"<{uri}>" + (f";tag={to_tag.decode()}" if to_tag else "")
                sock.sendto((
                    f"{method} {uri} SIP/2.0\r\n"
                    f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch={branch};rport\r\n"
                    f"Max-Forwards: 70\r\nFrom: <sip:me@127.0.0.1>;tag=snippet\r\n"
                    f"To: {to}\r\nCall-ID: {call_id}\r\n"
                    f"CSeq: {cseq} {method}\r\nContact: <sip:me@127.0.0.1:{port}>\r\n"
                    f"User-Agent: {self.user_agent}\r\nContent-Length: 0\r\n\r\n"
                ).encode(), target)

            def final() -> tuple[int, bytes | None]:
                while True:
                    data = sock.recv(65535)
                    code = int(data.split(b" ", 2)[1])
                    if code >= 200:
                        tag = _TO_TAG.search(data)
                        return code, tag.group(1) if tag else None

            invite_branch = f"z9hG4bK{uuid.uuid4().hex[:16]}"
            send("INVITE", 1, invite_branch, None)
            code, to_tag = final()
            # A non-2xx is ACKed in its transaction; a 2xx's ACK is a transaction of its own.
            ack_branch = invite_branch if code >= 300 else f"z9hG4bK{uuid.uuid4().hex[:16]}"
            send("ACK", 1, ack_branch, to_tag)
            if hang_up and code < 300:
                send("BYE", 2, f"z9hG4bK{uuid.uuid4().hex[:16]}", to_tag)
                final()
            if wait_bye and code < 300:
                while not (bye := sock.recv(65535)).startswith(b"BYE "):
                    pass  # the 200's retransmissions, until our ACK stopped them
                head = bye.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
                echoed = [line for line in head if line.split(b":", 1)[0].lower() in (
                    b"via", b"from", b"to", b"call-id", b"cseq")]
                sock.sendto(b"SIP/2.0 200 OK\r\n" + b"\r\n".join(echoed)
                            + b"\r\nContent-Length: 0\r\n\r\n", target)
            return code


class AsyncSnippetClient:
    async def call(self, uri: str) -> int:
        return await asyncio.to_thread(SnippetClient().call, uri)


builtins.my_sip_client = SnippetClient()  # type: ignore[attr-defined]
builtins.my_async_client = AsyncSnippetClient()  # type: ignore[attr-defined]
