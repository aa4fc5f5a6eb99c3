"""serve's SIPRESPONDER_* variables (a flag wins, then the variable, then the default)
and the tag secret, which every later scenario swap must keep."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from sipresponder.ops.admin import Admin
from sipresponder.ops.cli import main
from sipresponder.ops.cliargs import build_parser
from sipresponder.ops.serveconfig import apply_env, keep_tag_secret, split_list, with_tag_secret
from sipresponder.scenario.loader import parse_scenario
from sipresponder.testing.api import Responder
from tests.sipclient import make_request, udp_exchange

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _keep_logging() -> Iterator[None]:
    """main(["serve", ...]) configures the "sipresponder" logger on the test's captured
    stderr; put it back, or later tests log into a closed stream."""
    logger = logging.getLogger("sipresponder")
    requests = logging.getLogger("sipresponder.requests")  # configured too
    saved = (logger.handlers[:], logger.level, logger.propagate, requests.level)
    yield
    logger.handlers[:], logger.propagate = saved[0], saved[2]
    logger.setLevel(saved[1])  # setLevel: it clears the loggers' isEnabledFor caches
    requests.setLevel(saved[3])


def serve_args(*argv: str, **environ: str) -> argparse.Namespace:
    args = build_parser().parse_args(["serve", *argv])
    apply_env(args, {f"SIPRESPONDER_{k.upper()}": v for k, v in environ.items()})
    return args


def test_defaults_without_flags_or_variables() -> None:
    args = serve_args()
    assert (args.scenario, args.listen, args.admin, args.admin_token) == (None, None, None, None)
    assert (args.log_format, args.log_level, args.tag_secret) == ("human", "warning", None)
    assert args.workers == "1"


def test_variables_fill_what_the_flags_left_out() -> None:
    args = serve_args(
        scenario="/s/x.toml", listen="udp:0.0.0.0:5070, tcp:0.0.0.0:5070  udp:[::]:5070",
        admin="0.0.0.0:8080", admin_token="tok", log_format="JSON", log_level="Warning",
        tag_secret="s3cret", workers="auto", tls_cert="/c.pem", tls_key="/k.pem",
        tls_dir="/tmp/t")
    assert args.scenario == "/s/x.toml"
    assert args.listen == ["udp:0.0.0.0:5070", "tcp:0.0.0.0:5070", "udp:[::]:5070"]
    assert (args.admin, args.admin_token) == ("0.0.0.0:8080", "tok")
    assert (args.log_format, args.log_level, args.tag_secret) == ("json", "warning", "s3cret")
    assert args.workers == "auto"
    assert (args.tls_cert, args.tls_key, args.tls_dir) == ("/c.pem", "/k.pem", "/tmp/t")


def test_a_flag_wins_over_its_variable() -> None:
    args = serve_args("--scenario", "flag.toml", "--listen", "tcp:127.0.0.1:1",
                      "--log-level", "error", "--tag-secret", "flag",
                      scenario="env.toml", listen="udp:127.0.0.1:2", log_level="debug",
                      log_format="json", tag_secret="env")
    assert (args.scenario, args.listen) == ("flag.toml", ["tcp:127.0.0.1:1"])
    assert (args.log_level, args.tag_secret) == ("error", "flag")
    assert args.log_format == "json"  # no flag: the variable


def test_an_empty_variable_counts_as_unset() -> None:
    args = serve_args(listen=" ", log_level="", tag_secret="")
    assert (args.listen, args.log_level, args.tag_secret) == (None, "warning", None)


def test_a_bad_value_names_its_variable() -> None:
    with pytest.raises(ValueError, match=r"^SIPRESPONDER_LOG_LEVEL='loud': expected one of debug"):
        serve_args(log_level="loud")


def test_split_list() -> None:
    assert split_list("a,b c,,\td\n") == ["a", "b", "c", "d"]


def test_serve_reports_bad_variables_and_lets_flags_win(monkeypatch, capsys) -> None:
    monkeypatch.setenv("SIPRESPONDER_LOG_FORMAT", "xml")
    assert main(["serve"]) == 2
    assert capsys.readouterr().err == \
        "error: SIPRESPONDER_LOG_FORMAT='xml': expected one of human, json\n"
    monkeypatch.delenv("SIPRESPONDER_LOG_FORMAT")
    monkeypatch.setenv("SIPRESPONDER_SCENARIO", "/nonexistent/env.toml")
    monkeypatch.setenv("SIPRESPONDER_LISTEN", "sctp:127.0.0.1:5")
    assert main(["serve"]) == 2
    assert "/nonexistent/env.toml: cannot read" in capsys.readouterr().err
    # The flag replaces the variable: the scenario loads and the listen error comes next.
    assert main(["serve", "--scenario", str(ROOT / "scenarios" / "default.toml")]) == 2
    assert "'sctp:127.0.0.1:5': expected PROTO:HOST:PORT" in capsys.readouterr().err


def test_with_tag_secret_replaces_only_the_key() -> None:
    scenario = parse_scenario('[settings]\nserver = "X"\ntag_key = "file"\n', "<t>")
    assert with_tag_secret(scenario, None) is scenario
    secret = with_tag_secret(scenario, "deploy")
    assert (secret.settings.tag_key, secret.settings.server) == ("deploy", "X")
    assert scenario.settings.tag_key == "file"  # the loaded scenario is not mutated
    assert secret.tag_key != scenario.tag_key


async def test_a_scenario_put_over_the_admin_api_keeps_the_secret() -> None:
    """The admin PUT path (Admin.replace_scenario) goes through set_scenario too."""
    request = make_request("OPTIONS", "sip:200@127.0.0.1", call_id="keep@t", branch="z9hG4bK-k")
    async with Responder(with_tag_secret(parse_scenario("", "<t>"), "deploy"),
                         ["udp:127.0.0.1:0"]) as reference, \
            Responder(parse_scenario("", "<t>"), ["udp:127.0.0.1:0"]) as swapped:
        keep_tag_secret(swapped, "deploy")
        text = '[settings]\ntag_key = "from-the-put"\n'
        Admin(swapped, "").replace_scenario(text)
        [want] = await udp_exchange(reference.address()[1], request)
        [got] = await udp_exchange(swapped.address()[1], request)
    assert got.get("To") == want.get("To")
    assert ";tag=" in got.get("To")


def test_seed_from_flag_or_variable() -> None:
    assert serve_args().seed is None
    assert serve_args(seed="42").seed == 42
    assert serve_args("--seed", "7", seed="42").seed == 7
    assert serve_args(seed="-1").seed == -1
    for bad in ("x", "-2", "1.5"):
        with pytest.raises(ValueError, match="SIPRESPONDER_SEED"):
            serve_args(seed=bad)


def test_with_tag_secret_sets_the_seed_and_keeps_it_over_swaps() -> None:
    scenario = parse_scenario('[settings]\nseed = 1\ntag_key = "file"\n', "<t>")
    seeded = with_tag_secret(scenario, None, 9)
    assert (seeded.settings.seed, seeded.settings.tag_key) == (9, "file")

    class Holder:
        def __init__(self) -> None:
            self.got: list[int] = []

        def set_scenario(self, new) -> None:
            self.got.append(new.settings.seed)

    holder = Holder()
    keep_tag_secret(holder, None, 5)
    holder.set_scenario(scenario)
    assert holder.got == [5]
