"""Unit tests of sdp.py: the answer to an offer (RFC 3264 6), the default offer and the
summary of an offer that rule conditions read (read_offer)."""

from __future__ import annotations

from sipresponder.sip.sdp import make_answer, make_offer, read_offer

# RFC 3264 10.1: an audio and a video stream offered.
OFFER = (
    b"v=0\r\n"
    b"o=alice 2890844526 2890844526 IN IP4 host.atlanta.example.com\r\n"
    b"s=\r\n"
    b"c=IN IP4 host.atlanta.example.com\r\n"
    b"t=0 0\r\n"
    b"m=audio 49170 RTP/AVP 0 8 97\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:97 iLBC/8000\r\n"
    b"m=video 51372 RTP/AVP 31 32\r\n"
    b"a=rtpmap:31 H261/90000\r\n"
    b"a=rtpmap:32 MPV/90000\r\n"
)


def lines(sdp: bytes | None) -> list[str]:
    assert sdp is not None and sdp.endswith(b"\r\n")
    return sdp.decode().split("\r\n")[:-1]


def test_answer_to_the_rfc_3264_offer() -> None:
    assert lines(make_answer(OFFER, "192.0.2.5", 7)) == [
        "v=0",
        "o=sipresponder 7 7 IN IP4 192.0.2.5",
        "s=sipresponder",
        "c=IN IP4 192.0.2.5",
        "t=0 0",
        # One m-line per offered one, in order (RFC 3264 6), each with the offerer's
        # first codec (its order is its preference, 6.1).
        "m=audio 40000 RTP/AVP 0",
        "a=rtpmap:0 PCMU/8000",
        "a=sendrecv",
        "m=video 40002 RTP/AVP 31",
        "a=rtpmap:31 H261/90000",
        "a=sendrecv",
    ]


def test_directions_are_mirrored() -> None:
    offer = OFFER.replace(b"a=rtpmap:97 iLBC/8000\r\n", b"a=rtpmap:97 iLBC/8000\r\na=sendonly\r\n")
    answer = lines(make_answer(offer, "192.0.2.5", 1))
    # RFC 3264 6.1: a sendonly stream is answered recvonly; the session-level default
    # (sendrecv) applies to the video stream.
    assert answer[answer.index("m=audio 40000 RTP/AVP 0") + 2] == "a=recvonly"
    assert answer[-1] == "a=sendrecv"
    inactive = lines(make_answer(b"v=0\r\na=inactive\r\nm=audio 1 RTP/AVP 0\r\n", "h", 1))
    assert inactive[-1] == "a=inactive"


def test_telephone_events_and_their_fmtp_are_kept() -> None:
    offer = (b"v=0\r\nm=audio 5004 RTP/AVP 101 18 0\r\na=rtpmap:101 telephone-event/8000\r\n"
             b"a=fmtp:101 0-15\r\na=rtpmap:18 G729/8000\r\na=fmtp:18 annexb=no\r\n")
    assert lines(make_answer(offer, "192.0.2.5", 1))[5:] == [
        "m=audio 40000 RTP/AVP 18 101",  # the first real codec, not the event payload
        "a=rtpmap:18 G729/8000",
        "a=fmtp:18 annexb=no",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-15",
        "a=sendrecv",
    ]


def test_static_payload_types_need_no_rtpmap() -> None:
    answer = lines(make_answer(b"v=0\r\nm=audio 5004 RTP/AVP 8\r\n", "192.0.2.5", 1))
    assert answer[5:7] == ["m=audio 40000 RTP/AVP 8", "a=rtpmap:8 PCMA/8000"]


def test_streams_that_cannot_be_answered_are_declined_in_place() -> None:
    offer = (b"v=0\r\nm=audio 0 RTP/AVP 0\r\nm=application 9 TCP/BFCP *\r\n"
             b"m=image 5006 udptl t38\r\nm=audio 5004 RTP/AVP 0\r\n")
    answer = lines(make_answer(offer, "192.0.2.5", 1))
    # RFC 3264 6: a rejected stream keeps its position with port 0.
    assert [line for line in answer if line.startswith("m=")] == [
        "m=audio 0 RTP/AVP 0",
        "m=application 0 TCP/BFCP *",
        "m=image 0 udptl t38",
        "m=audio 40006 RTP/AVP 0",
    ]


def test_no_media_or_a_short_m_line_gives_no_answer() -> None:
    assert make_answer(b"v=0\r\ns=-\r\n", "192.0.2.5", 1) is None
    assert make_answer(b"v=0\r\nm=audio 5004 RTP/AVP\r\n", "192.0.2.5", 1) is None
    assert make_answer(b"", "192.0.2.5", 1) is None


def test_ipv6_address() -> None:
    answer = lines(make_answer(OFFER, "2001:db8::5", 3))
    assert answer[1] == "o=sipresponder 3 3 IN IP6 2001:db8::5"
    assert answer[3] == "c=IN IP6 2001:db8::5"


def test_offer() -> None:
    offer = make_offer("192.0.2.5", 42)
    assert lines(offer) == [
        "v=0",
        "o=sipresponder 42 42 IN IP4 192.0.2.5",
        "s=sipresponder",
        "c=IN IP4 192.0.2.5",
        "t=0 0",
        "m=audio 40000 RTP/AVP 0 8 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=sendrecv",
    ]
    # An offer is also an acceptable offer to answer.
    assert lines(make_answer(offer, "192.0.2.6", 1))[5] == "m=audio 40000 RTP/AVP 0 101"


# -- read_offer: what rule conditions and templates read ---------------------------

def test_read_offer_of_the_rfc_3264_offer() -> None:
    summary = read_offer(OFFER)
    assert summary is not None
    assert summary.media == ("audio", "video")
    assert summary.codecs == ("PCMU/8000", "PCMA/8000", "iLBC/8000", "H261/90000", "MPV/90000")
    assert {"pcmu/8000", "pcma/8000", "ilbc/8000"} <= summary.codec_keys
    assert summary.directions == ("sendrecv", "sendrecv")  # RFC 3264 5.1: the default
    assert summary.connection == "host.atlanta.example.com"


def test_read_offer_names_static_payload_types() -> None:
    # RFC 3551 6: 0, 8, 9 and 18 are PCMU, PCMA, G722 and G729 at 8000 Hz.
    sdp = b"v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 5004 RTP/AVP 18 9 8 0 101\r\n" \
          b"a=rtpmap:101 telephone-event/8000\r\n"
    summary = read_offer(sdp)
    assert summary is not None
    assert summary.codecs == ("G729/8000", "G722/8000", "PCMA/8000", "PCMU/8000",
                              "telephone-event/8000")


def test_rtpmap_overrides_and_channels() -> None:
    sdp = (b"v=0\nm=audio 5004 RTP/SAVPF 111 0\na=rtpmap:111 opus/48000/2\n"
           b"a=rtpmap:0 pcmu/8000\n")  # LF-only lines are read too
    summary = read_offer(sdp)
    assert summary is not None
    assert summary.codecs == ("opus/48000/2", "pcmu/8000")
    # "name/rate" finds a codec with encoding parameters; keys are lowercased.
    assert {"opus/48000", "opus/48000/2", "pcmu/8000"} <= summary.codec_keys


def test_directions_session_and_media_level() -> None:
    sdp = (b"v=0\r\nc=IN IP6 2001:db8::1\r\na=sendonly\r\n"
           b"m=audio 5004 RTP/AVP 0\r\n"
           b"m=video 5006 RTP/AVP 31\r\na=inactive\r\n")
    summary = read_offer(sdp)
    assert summary is not None
    assert summary.directions == ("sendonly", "inactive")
    assert summary.connection == "2001:db8::1"


def test_disabled_and_non_rtp_streams() -> None:
    # Port 0: a disabled stream is not offered (RFC 3264 5.1); T.38 over UDPTL has no
    # payload types, so its fmt "t38" is no codec.
    sdp = (b"v=0\r\nm=audio 0 RTP/AVP 0\r\nm=image 5008 udptl t38\r\n"
           b"c=IN IP4 192.0.2.9/127\r\n")
    summary = read_offer(sdp)
    assert summary is not None
    assert summary.media == ("image",)
    assert summary.codecs == ()
    assert summary.connection == "192.0.2.9"  # the media-level one, ttl cut off


def test_not_sdp_and_garbage() -> None:
    assert read_offer(b"") is None
    assert read_offer(b"hello") is None
    assert read_offer(b"v=0\r\nm=audio\r\na=rtpmap:\r\n\xff\xfe") is not None  # skipped, no error
