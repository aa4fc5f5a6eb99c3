"""Replicas: two real `sipresponder serve` processes behind one address.

A retransmission may reach another replica than the original did (a UDP load balancer
without affinity). It gets the same octets only if the replicas derive the same To
tag, i.e. share the tag secret. The requests here are answered statelessly and their
responses name no local port (no Contact, no SDP), so two processes on different
ports owe the same client byte-identical answers; one client socket sends to both, so
the received/rport that the responses echo is the same too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncio_dgram
import pytest

from tests.sipclient import make_request

ROOT = Path(__file__).resolve().parents[2]
REQUESTS = [
    make_request("OPTIONS", "sip:200@127.0.0.1", call_id="replica-1@t", branch="z9hG4bK-r1"),
    make_request("INVITE", "sip:486@127.0.0.1", call_id="replica-2@t", branch="z9hG4bK-r2"),
    make_request("REGISTER", "sip:127.0.0.1", call_id="replica-3@t", branch="z9hG4bK-r3",
                 headers=[("Contact", "<sip:u@127.0.0.1:5999>"), ("Expires", "60")]),
]


@contextlib.asynccontextmanager
async def replica(*argv: str, **environ: str) -> AsyncIterator[int]:
    """A `serve` subprocess on a free loopback UDP port; yields the port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIPRESPONDER_")}
    env.update(PYTHONPATH=str(ROOT), **environ)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sipresponder", "serve", *argv,
        stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL, env=env)
    assert proc.stderr is not None
    try:
        async def listening() -> int:
            while True:
                line = (await proc.stderr.readline()).decode()
                assert line, "serve ended before listening"
                if m := re.search(r"listening on udp:127\.0\.0\.1:([0-9]+)", line):
                    return int(m[1])

        yield await asyncio.wait_for(listening(), 10)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0


async def answers(ports: list[int]) -> list[list[bytes]]:
    """Each request of REQUESTS sent from one socket to every port; the answers, per port."""
    client = await asyncio_dgram.bind(("127.0.0.1", 0))
    try:
        out: list[list[bytes]] = [[] for _ in ports]
        for request in REQUESTS:
            for i, port in enumerate(ports):
                await client.send(request, ("127.0.0.1", port))
                data, source = await asyncio.wait_for(client.recv(), 5)
                assert source[1] == port
                out[i].append(data)
        return out
    finally:
        client.close()


def to_tag(response: bytes) -> str:
    m = re.search(rb"\r\nTo: [^\r]*;tag=([^;\r]+)", response)
    assert m, response
    return m[1].decode()


async def test_replicas_sharing_the_secret_answer_byte_for_byte() -> None:
    # One gets the secret as a flag, the other from the environment: both paths count.
    async with replica("--listen", "udp:127.0.0.1:0", "--tag-secret", "shared-s3cret") as a, \
            replica(SIPRESPONDER_LISTEN="udp:127.0.0.1:0",
                    SIPRESPONDER_TAG_SECRET="shared-s3cret") as b, \
            replica("--listen", "udp:127.0.0.1:0") as unkeyed:
        from_a, from_b, from_unkeyed = await answers([a, b, unkeyed])
    assert [r.split(b" ", 2)[1] for r in from_a] == [b"200", b"486", b"200"]
    assert from_a == from_b
    # ... and the secret is what made them agree: the bundled key gives other tags.
    assert all(to_tag(x) != to_tag(y) for x, y in zip(from_a, from_unkeyed, strict=True))


@pytest.mark.parametrize("how", ["flag", "environment"])
async def test_replicas_with_different_secrets_differ_only_in_the_to_tag(how: str) -> None:
    def args(secret: str) -> tuple[tuple[str, ...], dict[str, str]]:
        if how == "flag":
            return ("--listen", "udp:127.0.0.1:0", "--tag-secret", secret), {}
        return (), {"SIPRESPONDER_LISTEN": "udp:127.0.0.1:0", "SIPRESPONDER_TAG_SECRET": secret}

    (argv_a, env_a), (argv_b, env_b) = args("alpha"), args("beta")
    async with replica(*argv_a, **env_a) as a, replica(*argv_b, **env_b) as b:
        from_a, from_b = await answers([a, b])
    for x, y in zip(from_a, from_b, strict=True):
        assert to_tag(x) != to_tag(y)
        assert x.replace(to_tag(x).encode(), to_tag(y).encode()) == y
