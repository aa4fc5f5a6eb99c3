"""call/offer (what an offer lets our stream do, and our answer) and call/table (the
streams of the live calls: ports, the adapter's changes, the end of a stream)."""

from __future__ import annotations

from sipresponder.call.media import MediaPlan, Negotiated
from sipresponder.call.offer import answer, audio_offer
from sipresponder.call.table import MediaTable, PortPool
from sipresponder.media.rtp import pack_rtp

OFFER = (b"v=0\r\no=t 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
         b"m=video 0 RTP/AVP 31\r\n"
         b"m=audio 6000 RTP/AVP 18 8 0 101\r\nc=IN IP4 192.0.2.9\r\n"
         b"a=rtpmap:101 telephone-event/8000\r\n")


def test_the_first_active_audio_stream_and_its_media_level_address() -> None:
    offer = audio_offer(OFFER)
    assert offer is not None and (offer.address, offer.port) == ("192.0.2.9", 6000)
    assert dict(offer.formats)["8"] == "PCMA/8000"  # a static type's name
    assert offer.choose() == Negotiated("PCMA", 8, 101, ("192.0.2.9", 6000))


def test_our_answer_names_our_port_and_keeps_the_m_lines() -> None:
    answered = answer(OFFER, "127.0.0.1", 7, 41000)
    assert answered is not None
    body, negotiated = answered
    assert body.count(b"m=") == 2 and b"m=video 0 RTP/AVP 31" in body
    assert b"m=audio 41000 RTP/AVP 8 101\r\n" in body and negotiated.codec == "PCMA"


def test_offers_our_stream_cannot_answer() -> None:
    assert answer(OFFER.replace(b"18 8 0 101", b"18"), "127.0.0.1", 7, 41000) is None
    assert audio_offer(OFFER.replace(b"RTP/AVP 18", b"RTP/SAVP 18")) is None
    assert audio_offer(b"v=0\r\nm=audio 0 RTP/AVP 0\r\n") is None
    assert audio_offer(b"not sdp") is None


def test_ports_are_even_and_a_freed_one_is_used_last() -> None:
    pool = PortPool(40001, 40008)
    assert pool.size == 4
    taken = [pool.take() for _ in range(4)]
    assert taken == [40002, 40004, 40006, 40008] and pool.take() is None
    pool.give_back(40004)
    assert pool.take() == 40004


def test_a_stream_is_bound_then_closed_and_its_port_comes_back() -> None:
    table = MediaTable(40000, 40002, max_seconds=10.0)
    port = table.reserve()
    assert port == 40000
    table.open(port, "call-1", "127.0.0.1", MediaPlan("echo"),
               Negotiated("PCMU", 0, None, ("127.0.0.1", 6000)), 0.0)
    assert table.take_changes() == ([(40000, "127.0.0.1")], [])
    packet = pack_rtp(0, 1, 160, 5, b"\x00" * 160)
    assert table.receive(port, packet, ("127.0.0.1", 6000), 0.0) == []  # not bound yet
    table.bound(port, 77)
    [echo] = table.receive(port, packet, ("127.0.0.1", 6000), 0.02)
    assert (echo.transport, echo.remote, echo.conn) == ("udp", ("127.0.0.1", 6000), 77)
    table.close("call-1")
    assert table.take_changes() == ([], [40000]) and len(table) == 0
    assert table.receive(port, packet, ("127.0.0.1", 6000), 0.04) == []


def test_a_stream_ends_after_max_seconds_and_an_unbindable_port_ends_its_call() -> None:
    table = MediaTable(40000, 40002, max_seconds=10.0)
    for call in ("a", "b"):
        port = table.reserve()
        assert port is not None
        table.open(port, call, "127.0.0.1", MediaPlan("none"),
                   Negotiated("PCMU", 0, None, None), 0.0)
    assert table.reserve() is None  # the range is two streams
    table.unbindable(40002)
    assert table.session("b") is None and table.session("a") is not None
    assert table.next_deadline() == 10.0
    table.fire(10.0)
    assert len(table) == 0 and table.reserve() is not None


def test_info_digits_join_the_streams_in_the_order_they_came() -> None:
    from sipresponder.media.dtmf import sender_packets

    table = MediaTable(40000, 40002)
    port = table.reserve()
    assert port is not None
    session = table.open(port, "c", "127.0.0.1", MediaPlan("none"),
                         Negotiated("PCMU", 0, 101, None), 0.0)
    for timestamp, marker, payload in sender_packets("1", 800):
        session.receive(pack_rtp(101, 1, timestamp, 9, payload, marker=marker),
                        ("127.0.0.1", 6000), 0.0)
    table.info("c", "application/dtmf-relay", b"Signal=#\r\nDuration=100\r\n")
    table.info("c", "application/dtmf", b"11")
    table.info("c", "text/plain", b"9")  # not a DTMF body: not ours
    table.info("other", "application/dtmf", b"4")  # no such call
    assert session.dtmf == "1##" and session.summary()["dtmf"] == "1##"
