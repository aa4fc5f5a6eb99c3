"""Compiled responses and their per-scenario cache (uas/plan.py)."""

from __future__ import annotations

import gc
from pathlib import Path

from sipresponder.scenario.loader import load_scenario, parse_scenario
from sipresponder.scenario.model import ResponseSpec
from sipresponder.scenario.template import compile_template
from sipresponder.sip.message import Request, parse_request
from sipresponder.sip.response import Echo
from sipresponder.uas.engine import Engine
from sipresponder.uas.events import Source
from sipresponder.uas.plan import PlanCache, compile_response, own_contact
from tests.sipclient import make_request, parse_response

ROOT = Path(__file__).resolve().parents[3]
SCENARIO = load_scenario(ROOT / "scenarios" / "default.toml")
UDP = Source("udp", ("192.0.2.1", 5070), ("192.0.2.9", 5060), 1)


def parse(data: bytes) -> Request:
    return parse_request(data, datagram=True)


def render(cache: PlanCache, spec: ResponseSpec, request: Request, code: int | None = None,
           source: Source = UDP) -> bytes:
    code = code if code is not None else spec.code  # type: ignore[assignment]
    assert isinstance(code, int)
    key = (id(spec), code, request.method, source.transport, source.local)
    plan = cache.get(key) or cache.compile(spec, code, request.method, source)
    echo = Echo(request, source.remote, SCENARIO.tag_key)
    return plan.render(request, source, echo, SCENARIO)[2]


def test_plan_is_compiled_once_and_reused() -> None:
    cache = PlanCache(SCENARIO)
    spec = ResponseSpec(200, sdp=False)
    request = parse(make_request("OPTIONS", "sip:a@x"))
    first = render(cache, spec, request)
    assert len(cache) == 1
    plan = cache.get((id(spec), 200, "OPTIONS", "udp", UDP.local))
    assert plan is not None and plan.spec is spec and plan.fixed is not None
    assert render(cache, spec, request) == first and len(cache) == 1
    render(cache, spec, parse(make_request("MESSAGE", "sip:a@x")))
    assert len(cache) == 2  # one per method


def test_cache_is_bounded() -> None:
    cache = PlanCache(SCENARIO, max_plans=8)
    spec = ResponseSpec(200, sdp=False)
    for i in range(20):
        render(cache, spec, parse(make_request(f"X{i}", "sip:a@x")))
        assert len(cache) <= 8


def test_a_reused_id_never_returns_another_specs_plan() -> None:
    """Specs made per request (a Digest challenge with its own nonce) come and go; in
    CPython a new object often takes the id of one just freed. The cache holds each
    spec through its plan, so an id cannot be reused while a plan answers to it."""
    cache = PlanCache(SCENARIO)
    request = parse(make_request("REGISTER", "sip:a@x"))
    ids = set()
    for i in range(50):
        spec = ResponseSpec(401, sdp=False, headers=[("X-Nonce", compile_template(str(i)))])
        ids.add(id(spec))
        resp = parse_response(render(cache, spec, request))
        assert resp.get("X-Nonce") == str(i)
        del spec
        gc.collect()
    assert len(ids) == 50  # the cached plans kept every spec alive


def test_completion_is_one_spec_per_final_with_a_200_and_the_same_headers() -> None:
    cache = PlanCache(SCENARIO)
    final = ResponseSpec(180, reason=compile_template("Ringing Loud"), delay=1.0,
                         headers=[("X-A", compile_template("1"))])
    done = cache.completion(final)
    assert done is cache.completion(final)
    assert (done.code, done.reason, done.delay, done.headers) == (200, None, 0.0, final.headers)
    resp = parse_response(render(cache, done, parse(make_request("INVITE", "sip:a@x"))))
    assert (resp.code, resp.reason, resp.get("X-A")) == (200, "OK", "1")


def test_engine_keeps_its_cache_per_scenario() -> None:
    engine = Engine(SCENARIO)
    engine.handle(make_request("OPTIONS", "sip:a@x"), UDP, 0.0)
    old = engine.plans
    assert len(old) == 1
    engine.scenario = parse_scenario("[default]\ncode = 202\n", "<test>")
    assert engine.plans is not old and len(engine.plans) == 0
    [send] = engine.handle(make_request("OPTIONS", "sip:a@x"), UDP, 0.0).sends
    assert parse_response(send.data).code == 202


def test_fixed_and_dynamic_paths_write_the_same_framing() -> None:
    request = parse(make_request("MESSAGE", "sip:a@x"))
    echo = Echo(request, UDP.remote, SCENARIO.tag_key)
    fixed = compile_response(ResponseSpec(200, sdp=False), 200, "MESSAGE", UDP, SCENARIO)
    dynamic = compile_response(ResponseSpec(200, reason=compile_template("{method} ok"),
                                            sdp=False), 200, "MESSAGE", UDP, SCENARIO)
    a = fixed.render(request, UDP, echo, SCENARIO)[2]
    b = dynamic.render(request, UDP, echo, SCENARIO)[2]
    assert a.replace(b"200 OK", b"200 MESSAGE ok") == b
    assert a.endswith(b"Content-Length: 0\r\n\r\n")


def test_body_refused_by_accept_gives_406() -> None:
    spec = ResponseSpec(200, body=compile_template("hi"), content_type="text/plain")
    request = parse(make_request("MESSAGE", "sip:a@x", headers=[("Accept", "application/sdp")]))
    code, reason, data = compile_response(spec, 200, "MESSAGE", UDP, SCENARIO).render(
        request, UDP, Echo(request, UDP.remote, SCENARIO.tag_key), SCENARIO)
    resp = parse_response(data)
    assert (code, reason, resp.code) == (406, "Not Acceptable", 406)
    assert resp.get("Warning") == '399 sipresponder "No acceptable body format: text/plain"'
    assert data.endswith(b"Server: sipresponder\r\nContent-Length: 0\r\n\r\n")


def test_own_contact_per_transport() -> None:
    assert own_contact(UDP) == "<sip:sipresponder@192.0.2.9:5060>"
    tls = Source("tls", ("192.0.2.1", 1), ("::1", 5061), 3)
    assert own_contact(tls) == "<sip:sipresponder@[::1]:5061;transport=tls>"


def test_bindings_take_a_non_ascii_digit_expiry_as_no_number() -> None:
    """str.isdigit() holds for '²' but int() refuses it: found by the differential
    fuzzing of the compiled path (an internal error for every such REGISTER)."""
    from sipresponder.uas.plan import bindings

    raw = ("REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-1\r\n"
           "From: <sip:a@example.com>;tag=1\r\nTo: <sip:a@example.com>\r\nCall-ID: c\r\n"
           "CSeq: 1 REGISTER\r\nContact: <sip:a@192.0.2.1>;expires=\xb2, <sip:b@192.0.2.1>\r\n"
           "Expires: \xb2\xb3\r\nContent-Length: 0\r\n\r\n").encode("latin-1")
    request = parse_request(raw, datagram=True)
    assert bindings(request) == ["<sip:a@192.0.2.1>;expires=\xb2",
                                 "<sip:b@192.0.2.1>;expires=3600"]


def test_a_status_code_template_rendering_a_non_ascii_digit_is_a_500() -> None:
    scenario = parse_scenario('[[rule]]\ncode = "{ruri.user}"\nfill_required = true\n', "t.toml")
    engine = Engine(scenario)
    raw = (b"OPTIONS sip:%B2%B2%B2@example.com SIP/2.0\r\n"
           b"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-1\r\nFrom: <sip:a@example.com>;tag=1\r\n"
           b"To: <sip:b@example.com>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n"
           b"Content-Length: 0\r\n\r\n")
    outcome = engine.handle(raw, Source("udp", ("192.0.2.1", 5060), ("127.0.0.1", 5060), 1), 0)
    assert engine.counters["internal_errors"] == 0
    assert [s.data[:12] for s in outcome.sends] == [b"SIP/2.0 500 "]
