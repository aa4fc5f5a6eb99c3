"""Types of ``sipresponder._speedups``, the compiled request path (csrc/speedups.c).

The C extension ships no type information of its own: this stub is what mypy checks
the calls in uas/fast.py, transport/server.py and transport/batch.py against. The
module is optional (uas/compiled.py loads it, or None); import these names for
annotations only, under ``if TYPE_CHECKING:``, through uas/compiled.py.
"""

from typing import Final, TypeVar

_Rule = TypeVar("_Rule")

# Table.answer / serve_udp outcomes: ANSWERED, or why the request was deferred.
ANSWERED: Final[int]
MISS: Final[int]
LEARNED_NO: Final[int]
UNUSUAL: Final[int]
OFF: Final[int]
# serve_udp exists (recvmmsg/sendmmsg: Linux).
HAVE_MMSG: Final[int]
# Datagrams read per recvmmsg call.
BATCH: Final[int]
# Tallies a table counts by (Table.learn's ``tally`` is below it).
MAX_TALLY: Final[int]
# The names of uas/validation.py CHECKS whose effect the scan mirrors (or defers on).
CHECKS: Final[tuple[str, ...]]

# serve_udp's lists: (data, (ip, port) or the raw sockaddr Python must name, reason),
# (data, (ip, port), tally, response or None for an absorbed ACK), (response, (ip, port)).
Deferred = tuple[bytes, tuple[str, int] | bytes, int]
Answered = tuple[bytes, tuple[str, int], int, bytes | None]
Unsent = tuple[bytes, tuple[str, int]]
# answer_stream's records: (offset, length, tally, response or None).
StreamRecord = tuple[int, int, int, bytes | None]

class Table:
    """The compiled answers of one engine's scenario, by listener and request line."""

    @property
    def last_tally(self) -> int: ...
    def __init__(
        self,
        tag_key: bytes,
        accept: tuple[bytes, ...],
        max_headers: int,
        max_line_length: int,
        max_message_size: int,
        max_amplification: float,
        checks: dict[str, bool],
        strict_length: bool,
        max_entries: int = ...,
    ) -> None: ...
    def learn(
        self,
        local_id: int,
        request_line: bytes,
        head: bytes | None,
        tail: bytes | None,
        tally: int,
        after: bytes | None = None,
        /,
    ) -> None: ...
    def answer(
        self,
        data: bytes,
        ip: str,
        port: int,
        local_id: int,
        datagram: bool,
        ack_ok: bool,
        *,
        count: bool = True,
    ) -> bytes | int: ...
    def answer_stream(
        self, data: bytes, ip: str, port: int, local_id: int, ack_ok: bool, journal: bool, /
    ) -> tuple[bytes, int, int, list[StreamRecord] | None]: ...
    def bind(
        self, counters: dict[str, int], keys: list[tuple[str, str | None, _Rule]], /
    ) -> None: ...
    def forget(self, local_id: int, request_line: bytes, /) -> None: ...
    def clear(self) -> None: ...
    def size(self) -> int: ...
    def deferred(self) -> dict[str, int]: ...

def serve_udp(
    fd: int,
    table: Table | None,
    local_id: int,
    enabled: bool,
    ack_ok: bool,
    journal: bool,
    max_batches: int,
    /,
) -> tuple[list[Deferred], list[Answered] | None, list[Unsent] | None, int]: ...
def blake2s_tag(key: bytes, material: bytes, /) -> bytes: ...
