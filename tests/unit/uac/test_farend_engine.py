"""The far end through the engine, sans-I/O: steps after the ACK, responses to our
requests, glare, session timers (RFC 4028), with a clock passed in."""

from __future__ import annotations

import re

import pytest

from sipresponder.scenario.loader import ScenarioError, parse_scenario
from sipresponder.uac.exchange import Exchange
from sipresponder.uas.engine import Engine
from sipresponder.uas.events import Send, Source

CLIENT = Source("udp", ("127.0.0.1", 5999), ("127.0.0.1", 5060), 1)


def request(method: str, user: str = "x", *, call_id: str = "c1", cseq: int = 1,
            branch: str = "z9hG4bK-1", to_tag: str | None = None,
            headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    to = f"<sip:{user}@127.0.0.1:5060>" + (f";tag={to_tag}" if to_tag else "")
    lines = [f"{method} sip:{user}@127.0.0.1:5060 SIP/2.0",
             f"Via: SIP/2.0/UDP 127.0.0.1:5999;branch={branch};rport",
             "Max-Forwards: 70", "From: <sip:alice@127.0.0.1>;tag=alice1", f"To: {to}",
             f"Call-ID: {call_id}", f"CSeq: {cseq} {method}",
             "Contact: <sip:alice@127.0.0.1:5999>", *(f"{n}: {v}" for n, v in headers),
             "Content-Length: 0"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def header(data: bytes, name: str) -> str | None:
    found = re.search(rb"\r\n" + name.encode() + rb": ([^\r]*)", data, re.IGNORECASE)
    return found[1].decode() if found else None


def answer(sent: bytes, code: int = 200, reason: str = "OK", *, to_tag: str = "") -> bytes:
    """The client's response to a request the far end sent."""
    to = header(sent, "To") or ""
    if to_tag and ";tag=" not in to:
        to += f";tag={to_tag}"
    lines = [f"SIP/2.0 {code} {reason}", f"Via: {header(sent, 'Via')}",
             f"From: {header(sent, 'From')}", f"To: {to}",
             f"Call-ID: {header(sent, 'Call-ID')}", f"CSeq: {header(sent, 'CSeq')}",
             "Contact: <sip:alice@127.0.0.1:5999>", "Content-Length: 0"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Far:
    """An engine and what it sent, as a client sees it."""

    def __init__(self, toml: str) -> None:
        self.engine = Engine(parse_scenario(toml))
        self.exchanges: list[Exchange] = []
        self.engine.sent_recorders.append(self.exchanges.append)
        self.now = 100.0

    def handle(self, data: bytes) -> list[Send]:
        return self.engine.handle(data, CLIENT, self.now).sends

    def until(self, when: float) -> list[Send]:
        """Fire every deadline up to ``when``."""
        out: list[Send] = []
        while (deadline := self.engine.next_deadline()) is not None and deadline <= when:
            self.now = deadline
            out += self.engine.fire(deadline)
        self.now = when
        return out

    def requests(self, sends: list[Send], method: str) -> list[bytes]:
        return [s.data for s in sends if s.data.startswith(method.encode() + b" ")]

    def call(self, user: str, **kw: object) -> str:
        """INVITE and ACK; the To tag of our 200."""
        [ok] = self.handle(request("INVITE", user, **kw))  # type: ignore[arg-type]
        assert ok.data.startswith(b"SIP/2.0 200")
        tag = (header(ok.data, "To") or "").split("tag=")[1]
        self.handle(request("ACK", user, branch="z9hG4bK-ack", to_tag=tag))
        return tag


HANGUP = """
[[rule]]
match = { method = "INVITE", user = "hangup" }
code = 200
[[rule.then]]
after = 1
send = "BYE"
"""


def test_bye_one_second_after_the_ack_and_the_clients_200_ends_the_dialog() -> None:
    far = Far(HANGUP)
    tag = far.call("hangup")
    assert not far.until(100.9)
    [bye] = far.requests(far.until(101.0), "BYE")
    assert bye.startswith(b"BYE sip:alice@127.0.0.1:5999 SIP/2.0\r\n")
    assert header(bye, "From") == f"<sip:hangup@127.0.0.1:5060>;tag={tag}"
    assert header(bye, "To") == "<sip:alice@127.0.0.1>;tag=alice1"
    assert header(bye, "CSeq") == "1 BYE"
    far.handle(answer(bye))
    assert far.exchanges[-1].codes == [200]
    assert far.engine.far is not None and far.engine.far.live() == []


def test_an_unanswered_bye_is_retransmitted_over_udp() -> None:
    far = Far(HANGUP)
    far.call("hangup")
    [bye] = far.requests(far.until(101.0), "BYE")
    again = far.requests(far.until(101.5), "BYE")  # Timer E: T1
    assert again == [bye]
    far.handle(answer(bye))
    assert far.requests(far.until(110.0), "BYE") == []


def test_no_ack_still_starts_the_steps_after_64_t1() -> None:
    far = Far(HANGUP)
    far.handle(request("INVITE", "hangup"))
    sends = far.until(100 + 32 + 1 - 0.01)  # 64*T1 after the 200, then the step's 1 s
    assert far.requests(sends, "BYE") == []
    assert far.requests(far.until(133.0), "BYE")


def test_a_bye_from_the_client_drops_the_steps_left() -> None:
    far = Far(HANGUP)
    tag = far.call("hangup")
    far.handle(request("BYE", "hangup", cseq=2, branch="z9hG4bK-bye", to_tag=tag))
    assert far.requests(far.until(110.0), "BYE") == []


HOLD = """
[[rule]]
match = { method = "INVITE", user = "hold" }
code = 200
[[rule.then]]
after = 1
send = "INVITE"
sdp = "sendonly"
[[rule.then]]
after = 1
send = "INVITE"
"""


def test_hold_then_resume_each_acked_and_the_sdp_version_rises() -> None:
    far = Far(HOLD)
    far.call("hold")
    [hold] = far.requests(far.until(101.0), "INVITE")
    assert b"a=sendonly" in hold and header(hold, "CSeq") == "1 INVITE"
    [ack] = far.requests(far.handle(answer(hold)), "ACK")
    assert header(ack, "CSeq") == "1 ACK"
    [resume] = far.requests(far.until(102.0), "INVITE")
    assert b"a=sendrecv" in resume and header(resume, "CSeq") == "2 INVITE"
    versions = [re.search(rb"o=sipresponder \d+ (\d+)", m)[1] for m in (hold, resume)]  # type: ignore[index]
    assert int(versions[1]) == int(versions[0]) + 1


def test_a_client_reinvite_while_ours_is_pending_gets_491_and_ours_is_retried() -> None:
    far = Far(HOLD)
    tag = far.call("hold")
    [hold] = far.requests(far.until(101.0), "INVITE")
    [glare] = far.handle(request("INVITE", "hold", cseq=2, branch="z9hG4bK-g", to_tag=tag))
    assert glare.data.startswith(b"SIP/2.0 491 ")
    far.handle(answer(hold, 491, "Request Pending"))
    retried = far.requests(far.until(103.0), "INVITE")  # RFC 3261 14.1: within 0-2 s
    assert retried and header(retried[0], "CSeq") == "2 INVITE"


TIMER = """
[[rule]]
match = { method = "INVITE", user = "timer" }
code = 200
session_timer = { min_se = 90 }
[[rule]]
match = { method = "INVITE", user = "refreshee" }
code = 200
session_timer = { min_se = 90, refresher = "uac" }
"""


def test_a_session_interval_below_min_se_gets_422_with_min_se() -> None:
    far = Far(TIMER)
    [sent] = far.handle(request("INVITE", "timer", headers=(("Session-Expires", "60"),)))
    assert sent.data.startswith(b"SIP/2.0 422 Session Interval Too Small\r\n")
    assert header(sent.data, "Min-SE") == "90"


def test_the_200_names_the_interval_and_the_uas_refreshes_at_half_of_it() -> None:
    far = Far(TIMER)
    [ok] = far.handle(request("INVITE", "timer", headers=(
        ("Session-Expires", "120"), ("Supported", "timer"))))
    assert header(ok.data, "Session-Expires") == "120;refresher=uas"
    assert header(ok.data, "Require") == "timer"
    assert far.requests(far.until(159.9), "UPDATE") == []
    [update] = far.requests(far.until(160.0), "UPDATE")
    assert header(update, "Session-Expires") == "120;refresher=uas"
    far.handle(answer(update))
    assert far.requests(far.until(220.0), "UPDATE")  # and again, half an interval on


def test_as_refreshee_the_far_end_hangs_up_when_no_refresh_comes() -> None:
    far = Far(TIMER)
    [ok] = far.handle(request("INVITE", "refreshee", headers=(
        ("Session-Expires", "90"), ("Supported", "timer"))))
    assert header(ok.data, "Session-Expires") == "90;refresher=uac"
    assert far.requests(far.until(159.9), "BYE") == []
    assert far.requests(far.until(160.0), "BYE")  # 90 - min(32, 30) = 60 s


def test_the_clients_refresh_keeps_the_session() -> None:
    far = Far(TIMER)
    [ok] = far.handle(request("INVITE", "refreshee", headers=(
        ("Session-Expires", "90"), ("Supported", "timer"))))
    tag = (header(ok.data, "To") or "").split("tag=")[1]
    far.until(150.0)
    far.handle(request("UPDATE", "refreshee", cseq=2, branch="z9hG4bK-u", to_tag=tag))
    assert far.requests(far.until(209.0), "BYE") == []
    assert far.requests(far.until(210.0), "BYE")


def test_a_client_without_the_extension_leaves_the_refreshing_to_us() -> None:
    far = Far(TIMER)
    [ok] = far.handle(request("INVITE", "refreshee", headers=(("Session-Expires", "90"),)))
    assert header(ok.data, "Session-Expires") == "90;refresher=uas"
    assert header(ok.data, "Require") is None


SUBSCRIBE = """
[[rule]]
match = { method = "SUBSCRIBE", headers = { Expires = "^\\\\s*0\\\\s*$" } }
code = 200
[[rule.then]]
send = "NOTIFY"
[[rule]]
match = { method = "SUBSCRIBE" }
code = 200
headers = { Expires = "{header.Expires}" }
[[rule.then]]
send = "NOTIFY"
body = "Messages-Waiting: yes\\r\\n"
content_type = "application/simple-message-summary"
"""


def test_subscribe_gets_a_notify_in_its_dialog_and_an_unsubscribe_ends_it() -> None:
    far = Far(SUBSCRIBE)
    [ok] = far.handle(request("SUBSCRIBE", "mwi", headers=(
        ("Event", "message-summary"), ("Expires", "3600"))))
    tag = (header(ok.data, "To") or "").split("tag=")[1]
    [notify] = far.requests(far.until(100.0), "NOTIFY")
    assert header(notify, "Event") == "message-summary"
    assert header(notify, "Subscription-State") == "active;expires=3600"
    assert notify.endswith(b"Messages-Waiting: yes\r\n")
    far.handle(answer(notify))
    far.handle(request("SUBSCRIBE", "mwi", cseq=2, branch="z9hG4bK-2", to_tag=tag,
                       headers=(("Event", "message-summary"), ("Expires", "0"))))
    [last] = far.requests(far.until(100.0), "NOTIFY")
    assert header(last, "Subscription-State") == "terminated;reason=timeout"
    assert header(last, "CSeq") == "2 NOTIFY"
    far.handle(answer(last))
    assert far.engine.far is not None and far.engine.far.live() == []


REFER = """
[[rule]]
match = { method = "REFER" }
code = 202
[[rule.then]]
send = "NOTIFY"
body = "SIP/2.0 100 Trying"
[[rule.then]]
send = "NOTIFY"
body = "SIP/2.0 200 OK"
"""


def test_a_refer_in_a_call_unknown_to_the_far_end_gets_two_sipfrag_notifies() -> None:
    far = Far(REFER)
    far.handle(request("REFER", "refer", to_tag="ourtag", headers=(
        ("Refer-To", "<sip:carol@127.0.0.1>"),)))
    [first] = far.requests(far.until(100.0), "NOTIFY")
    assert header(first, "Event") == "refer"
    assert header(first, "Content-Type") == "message/sipfrag;version=2.0"
    assert header(first, "Subscription-State") == "active;expires=60"
    assert header(first, "From") == "<sip:refer@127.0.0.1:5060>;tag=ourtag"
    far.handle(answer(first))
    [second] = far.requests(far.until(100.0), "NOTIFY")
    assert second.endswith(b"SIP/2.0 200 OK")
    assert header(second, "Subscription-State") == "terminated;reason=noresource"


CALLME = """
[[rule]]
match = { method = "REGISTER", user = "callme" }
code = 200
[[rule.then]]
after = 1
send = "INVITE"
[[rule.then]]
after = 1
send = "BYE"
"""


def test_a_register_triggers_a_call_to_its_contact_acked_then_hung_up() -> None:
    far = Far(CALLME)
    far.handle(request("REGISTER", "callme"))
    [invite] = far.requests(far.until(101.0), "INVITE")
    assert invite.startswith(b"INVITE sip:alice@127.0.0.1:5999 SIP/2.0\r\n")
    assert header(invite, "To") == "<sip:callme@127.0.0.1:5060>"
    assert header(invite, "Content-Type") == "application/sdp"
    [ack] = far.requests(far.handle(answer(invite, to_tag="bob7")), "ACK")
    assert header(ack, "To") == "<sip:callme@127.0.0.1:5060>;tag=bob7"
    [bye] = far.requests(far.until(102.0), "BYE")
    assert header(bye, "Call-ID") == header(invite, "Call-ID")
    assert header(bye, "CSeq") == "2 BYE"


@pytest.mark.parametrize(("step", "error"), [
    ('send = "ACK"', "'then[0].send': must be one of"),
    ('send = "REFER"', "a REFER needs a Refer-To"),
    ('send = "INFO"\nsdp = "sendonly"', "a INFO carries no offer"),
    ('send = "BYE"\nafter = -1', "'then[0].after': must be a number of seconds"),
    ('send = "INFO"\nbody = "x"', "a body needs its content_type"),
    ('send = "BYE"\nheaders = { Via = "x" }', "written by the far end itself"),
    ('send = "BYE"\ncredentials = { username = "a" }', "must be a table { username"),
])
def test_a_step_that_cannot_be_sent_is_refused_at_load(step: str, error: str) -> None:
    with pytest.raises(ScenarioError, match=re.escape(error)):
        parse_scenario(f'[[rule]]\ncode = 200\n[[rule.then]]\n{step}\n')


CHALLENGED = """
[[rule]]
match = { method = "INVITE", user = "hangup" }
code = 200
[[rule.then]]
after = 1
send = "BYE"
credentials = { username = "far", password = "s3cret" }
"""


def challenge(sent: bytes, code: int, header_name: str) -> bytes:
    data = answer(sent, code, "Unauthorized" if code == 401 else "Proxy Authentication Required")
    line = f'{header_name}: Digest realm="lab", nonce="n0nce", algorithm=MD5, qop="auth"\r\n'
    return data.replace(b"Content-Length: 0", line.encode() + b"Content-Length: 0")


@pytest.mark.parametrize(("code", "challenge_header", "credentials_header"), [
    (401, "WWW-Authenticate", "Authorization"),
    (407, "Proxy-Authenticate", "Proxy-Authorization"),
])
def test_a_challenged_bye_is_sent_again_with_credentials(
        code: int, challenge_header: str, credentials_header: str) -> None:
    from sipresponder.auth.digest import algorithm, ha1, parse_credentials, request_digest

    far = Far(CHALLENGED)
    far.call("hangup")
    [bye] = far.requests(far.until(101.0), "BYE")
    [again] = far.requests(far.handle(challenge(bye, code, challenge_header)), "BYE")
    assert header(again, "CSeq") == "2 BYE"  # RFC 3261 22.2: a new request
    credentials = parse_credentials(header(again, credentials_header) or "")
    assert credentials is not None
    md5 = algorithm("MD5")
    expected = request_digest(md5, ha1(md5, "far", "lab", "s3cret"), method="BYE",
                              uri="sip:alice@127.0.0.1:5999", nonce="n0nce", qop="auth",
                              nc=credentials.get("nc"), cnonce=credentials.get("cnonce"))
    assert credentials.get("response") == expected
    # A second challenge is the step's final: no third BYE.
    assert far.requests(far.handle(challenge(again, code, challenge_header)), "BYE") == []
    assert [e.codes for e in far.exchanges if e.method == "BYE"] == [[code], [code]]


def test_a_challenge_without_credentials_ends_the_step() -> None:
    far = Far(HANGUP)
    far.call("hangup")
    [bye] = far.requests(far.until(101.0), "BYE")
    assert far.requests(far.handle(challenge(bye, 401, "WWW-Authenticate")), "BYE") == []


def test_a_codec_change_offers_only_the_codecs_named() -> None:
    far = Far(HOLD.replace('sdp = "sendonly"', 'codecs = ["PCMA", "telephone-event"]'))
    far.call("hold")
    [change] = far.requests(far.until(101.0), "INVITE")
    assert b"m=audio 40000 RTP/AVP 8 101\r\n" in change
    assert b"a=rtpmap:0 " not in change and b"a=sendrecv" in change


CANCELLED = """
[[rule]]
match = { method = "REGISTER", user = "callme" }
code = 200
[[rule.then]]
send = "INVITE"
cancel_after = 2
[[rule.then]]
send = "BYE"
"""


def ringing(sent: bytes) -> bytes:
    return answer(sent, 180, "Ringing", to_tag="bob7")


def test_an_unanswered_call_in_is_cancelled_and_its_487_ends_the_steps() -> None:
    far = Far(CANCELLED)
    far.handle(request("REGISTER", "callme"))
    [invite] = far.requests(far.until(100.0), "INVITE")
    far.handle(ringing(invite))
    assert far.requests(far.until(101.9), "CANCEL") == []
    [cancel] = far.requests(far.until(102.0), "CANCEL")
    # RFC 3261 9.1: the INVITE's Request-URI, Call-ID, From, To, top Via and CSeq number.
    for name in ("Via", "From", "To", "Call-ID"):
        assert header(cancel, name) == header(invite, name), name
    assert cancel.split(b" ", 2)[1] == invite.split(b" ", 2)[1]
    assert header(cancel, "CSeq") == "1 CANCEL"
    far.handle(answer(cancel))
    [ack] = far.requests(far.handle(answer(invite, 487, "Request Terminated")), "ACK")
    assert header(ack, "CSeq") == "1 ACK"  # the transaction's ACK of the 487
    assert far.requests(far.until(140.0), "BYE") == []  # no call, no hang-up
    assert [e.method for e in far.exchanges] == ["INVITE", "CANCEL", "ACK"]


def test_cancel_waits_for_a_provisional() -> None:
    far = Far(CANCELLED)
    far.handle(request("REGISTER", "callme"))
    [invite] = far.requests(far.until(100.0), "INVITE")
    assert far.requests(far.until(103.0), "CANCEL") == []  # no 1xx yet: no CANCEL
    [cancel] = far.requests(far.handle(ringing(invite)), "CANCEL")
    assert header(cancel, "Call-ID") == header(invite, "Call-ID")


def test_a_call_in_answered_busy_runs_no_more_steps() -> None:
    far = Far(CALLME)
    far.handle(request("REGISTER", "callme"))
    [invite] = far.requests(far.until(101.0), "INVITE")
    far.handle(answer(invite, 486, "Busy Here"))
    assert far.requests(far.until(140.0), "BYE") == []


def test_a_subscription_not_refreshed_ends_with_a_terminated_notify() -> None:
    far = Far(SUBSCRIBE)
    far.handle(request("SUBSCRIBE", "mwi", headers=(
        ("Event", "message-summary"), ("Expires", "60"))))
    [notify] = far.requests(far.until(100.0), "NOTIFY")
    far.handle(answer(notify))
    assert far.requests(far.until(159.9), "NOTIFY") == []
    [last] = far.requests(far.until(160.0), "NOTIFY")
    assert header(last, "Subscription-State") == "terminated;reason=timeout"
    assert header(last, "Event") == "message-summary"
    far.handle(answer(last))
    assert far.engine.far is not None and far.engine.far.live() == []


def test_a_refresh_keeps_the_subscription_alive() -> None:
    far = Far(SUBSCRIBE)
    [ok] = far.handle(request("SUBSCRIBE", "mwi", headers=(
        ("Event", "message-summary"), ("Expires", "60"))))
    tag = (header(ok.data, "To") or "").split("tag=")[1]
    far.handle(answer(far.requests(far.until(100.0), "NOTIFY")[0]))
    far.until(150.0)
    far.handle(request("SUBSCRIBE", "mwi", cseq=2, branch="z9hG4bK-r", to_tag=tag,
                       headers=(("Event", "message-summary"), ("Expires", "60"))))
    [again] = far.requests(far.until(150.0), "NOTIFY")
    assert header(again, "Subscription-State") == "active;expires=60"
    far.handle(answer(again))
    assert far.requests(far.until(209.0), "NOTIFY") == []
    assert far.requests(far.until(210.0), "NOTIFY")


def test_a_subscribe_naming_no_subscription_gets_481() -> None:
    far = Far(SUBSCRIBE)
    far.engine.far_end()
    [sent] = far.handle(request("SUBSCRIBE", "mwi", to_tag="forgotten", headers=(
        ("Event", "message-summary"), ("Expires", "60"))))
    assert sent.data.startswith(b"SIP/2.0 481 ")


@pytest.mark.parametrize(("event", "content_type", "needle"), [
    ("message-summary", "application/simple-message-summary", b"Messages-Waiting: no\r\n"),
    ("presence", "application/pidf+xml", b"<basic>open</basic>"),
    ("dialog", "application/dialog-info+xml", b'version="0" state="full"'),
])
def test_a_notify_without_a_body_gets_its_packages(event: str, content_type: str,
                                                   needle: bytes) -> None:
    far = Far('[[rule]]\nmatch = { method = "SUBSCRIBE" }\ncode = 200\nexpires = 60\n'
              '[[rule.then]]\nsend = "NOTIFY"\n')
    far.handle(request("SUBSCRIBE", "bob", headers=(("Event", event), ("Expires", "60"))))
    [notify] = far.requests(far.until(100.0), "NOTIFY")
    assert header(notify, "Content-Type") == content_type
    assert needle in notify
    assert b"sip:bob@127.0.0.1:5060" in notify.split(b"\r\n\r\n", 1)[1]


def test_the_far_ends_dialogs_are_bounded_and_their_state_goes_with_them() -> None:
    from collections import Counter

    from sipresponder.scenario.loader import parse_scenario as load
    from sipresponder.sip.message import parse_request
    from sipresponder.uac.farend import FarEnd

    scenario = load(SUBSCRIBE + "[settings]\nmax_transactions = 2\n")
    far = FarEnd(scenario.settings, Counter(), [])
    rule = scenario.rules[1]
    for n in range(3):
        data = request("SUBSCRIBE", "mwi", call_id=f"c{n}", headers=(
            ("Event", "message-summary"), ("Expires", "60")))
        far.answered(rule, parse_request(data, datagram=True), CLIENT, f"ours{n}", 200,
                     None, 100.0)
    assert len(far.dialogs) == 2 and far.dialogs.evicted == 1
    assert sorted(key[0] for key in far.uses) == ["c1", "c2"]
