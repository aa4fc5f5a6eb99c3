"""Reception statistics of one RTP source: RFC 3550 A.1 (sequence numbers, with wrap,
probation and restart), A.3 (expected, lost, fraction lost) and A.8 (interarrival
jitter). Sans-I/O: the arrival time is passed in, in seconds on any monotonic clock.

The RFC's reference code, transcribed::

    MAX_DROPOUT = 3000, MAX_MISORDER = 100, MIN_SEQUENTIAL = 2
    udelta = seq - max_seq (mod 2^16)
    if probation: in order -> probation--, valid when it reaches 0; else restart it
    elif udelta < MAX_DROPOUT: in order, with a permissible gap (wrap -> cycles += 2^16)
    elif udelta <= 2^16 - MAX_MISORDER: a very large jump; two in sequence -> restart
    else: duplicate or reordered packet
    expected = cycles + max_seq - base_seq + 1;  lost = expected - received
    D = (Rj - Ri) - (Sj - Si);  J += (|D| - J) / 16

One deliberate change: A.1 starts counting at the packet that ends probation, so the
MIN_SEQUENTIAL - 1 packets before it are neither received nor expected. A test double
reports every packet that arrived, so here the probation packets (in sequence by
definition) count in both.
"""

from __future__ import annotations

from .rtcp import ReportBlock

MAX_DROPOUT = 3000
MAX_MISORDER = 100
MIN_SEQUENTIAL = 2
SEQ_MOD = 1 << 16


class ReceptionStats:
    """What one source sent us. ``update`` once per packet of that SSRC."""

    __slots__ = ("_bad_seq", "_base_seq", "_clock_rate", "_cycles", "_expected_prior",
                 "_first_arrival", "_jitter", "_last_arrival", "_last_timestamp", "_max_seq",
                 "_octets", "_packets", "_probation", "_received", "_received_prior")

    def __init__(self) -> None:
        self._packets = 0
        self._octets = 0
        self._first_arrival: float | None = None
        self._last_arrival: float | None = None
        self._last_timestamp = 0
        self._clock_rate = 8000
        self._jitter = 0.0  # timestamp units, as A.8 keeps it
        self._max_seq = 0
        self._base_seq = 0
        self._bad_seq = SEQ_MOD + 1
        self._cycles = 0
        self._received = 0
        self._received_prior = 0
        self._expected_prior = 0
        self._probation = MIN_SEQUENTIAL

    def _init_seq(self, seq: int) -> None:
        self._base_seq = seq
        self._max_seq = seq
        self._bad_seq = SEQ_MOD + 1
        self._cycles = 0
        self._received = 0
        self._received_prior = 0
        self._expected_prior = 0

    def update(self, seq: int, rtp_timestamp: int, arrival_seconds: float,
               clock_rate: int = 8000, octets: int = 0) -> bool:
        """Account one packet (``octets``: its payload's size). Returns whether A.1
        counts it as valid (False while on probation or for a wild jump)."""
        self._packets += 1
        self._octets += octets
        if self._last_arrival is None:
            self._first_arrival = arrival_seconds
            self._max_seq = (seq - 1) & 0xFFFF
        else:
            # A.8 with the timestamp difference taken mod 2^32 as a signed step, so a
            # wrapping timestamp is not a jump of 2^32 units.
            step = ((rtp_timestamp - self._last_timestamp + 0x80000000) & 0xFFFFFFFF) \
                - 0x80000000
            deviation = abs((arrival_seconds - self._last_arrival) * clock_rate - step)
            self._jitter += (deviation - self._jitter) / 16.0
        self._last_arrival = arrival_seconds
        self._last_timestamp = rtp_timestamp
        self._clock_rate = clock_rate or 8000
        return self._update_seq(seq & 0xFFFF)

    def _update_seq(self, seq: int) -> bool:
        udelta = (seq - self._max_seq) & 0xFFFF
        if self._probation:
            if seq == (self._max_seq + 1) & 0xFFFF:
                self._probation -= 1
                self._max_seq = seq
                if self._probation == 0:
                    self._init_seq(seq)
                    # The change from A.1 the module docstring gives: the probation run counts.
                    # Unmasked: a run across the wrap gives a negative base, which
                    # keeps expected = max - base + 1 right without a cycle.
                    self._base_seq = seq - (MIN_SEQUENTIAL - 1)
                    self._received = MIN_SEQUENTIAL
                    return True
            else:
                self._probation = MIN_SEQUENTIAL - 1
                self._max_seq = seq
            return False
        if udelta < MAX_DROPOUT:
            if seq < self._max_seq:
                self._cycles += SEQ_MOD
            self._max_seq = seq
        elif udelta <= SEQ_MOD - MAX_MISORDER:
            if seq == self._bad_seq:
                # Two packets in sequence after a very large jump: the source restarted.
                self._init_seq(seq)
            else:
                self._bad_seq = (seq + 1) & 0xFFFF
                return False
        self._received += 1
        return True

    # -- A.3 ------------------------------------------------------------------------------
    @property
    def packets(self) -> int:
        """Every packet given to ``update`` (probation, duplicates and jumps included)."""
        return self._packets

    @property
    def octets(self) -> int:
        return self._octets

    @property
    def extended_max(self) -> int:
        return self._cycles + self._max_seq

    @property
    def expected(self) -> int:
        if self._probation:
            return 0
        return self.extended_max - self._base_seq + 1

    @property
    def lost(self) -> int:
        """Expected minus received: negative when duplicates outnumber the losses."""
        return self.expected - self._received if not self._probation else 0

    @property
    def fraction_lost(self) -> float:
        """Lost over expected since the start, 0-1 (0 when none lost or duplicates)."""
        expected = self.expected
        return max(0, self.lost) / expected if expected > 0 else 0.0

    @property
    def jitter(self) -> float:
        """The A.8 interarrival jitter, in seconds."""
        return self._jitter / self._clock_rate

    @property
    def first_arrival(self) -> float | None:
        return self._first_arrival

    @property
    def last_arrival(self) -> float | None:
        return self._last_arrival

    def report_block(self, ssrc: int, last_sr: int = 0,
                     delay_since_last_sr: int = 0) -> ReportBlock:
        """The RFC 3550 6.4.1 block for this source (``ssrc``: the source's), with A.3's
        fraction over the interval since the previous call."""
        expected = self.expected
        expected_interval = expected - self._expected_prior
        self._expected_prior = expected
        received_interval = self._received - self._received_prior
        self._received_prior = self._received
        lost_interval = expected_interval - received_interval
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = min(255, (lost_interval << 8) // expected_interval)
        cumulative = max(-0x800000, min(0x7FFFFF, self.lost))
        return ReportBlock(ssrc, fraction, cumulative, self.extended_max & 0xFFFFFFFF,
                           min(int(self._jitter), 0xFFFFFFFF), last_sr, delay_since_last_sr)
