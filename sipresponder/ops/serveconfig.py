"""`serve` settings from SIPRESPONDER_* environment variables, the tag secret and seed.

Containers and orchestrators configure through the environment, so each `serve`
option a deployment needs has a variable. Precedence is the usual one: a command-line
flag wins over its variable, the variable over the built-in default. An empty variable
counts as unset (Compose and Kubernetes make `NAME=` easy to write by accident).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..scenario.model import Scenario

LOG_FORMATS = ("human", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")
UDP_BALANCE = ("source", "datagram")  # how --workers share a UDP port (supervisor.py)
FLAG_VALUES = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def split_list(text: str) -> list[str]:
    """A comma- or whitespace-separated list (no listen address contains either)."""
    return text.replace(",", " ").split()


@dataclass(frozen=True, slots=True)
class EnvOption:
    dest: str  # the argparse destination of the flag it stands in for
    env: str
    default: Any  # when neither the flag nor the variable is given
    choices: tuple[str, ...] = ()
    is_list: bool = False
    is_flag: bool = False  # a store_true flag: the variable is 1/true/yes or 0/false/no


SERVE_ENV = (
    EnvOption("scenario", "SIPRESPONDER_SCENARIO", None),
    # None: serve falls back to ops/cliargs.py's DEFAULT_LISTEN.
    EnvOption("listen", "SIPRESPONDER_LISTEN", None, is_list=True),
    EnvOption("admin", "SIPRESPONDER_ADMIN", None),
    EnvOption("admin_token", "SIPRESPONDER_ADMIN_TOKEN", None),
    EnvOption("admin_token_file", "SIPRESPONDER_ADMIN_TOKEN_FILE", None),
    EnvOption("admin_insecure", "SIPRESPONDER_ADMIN_INSECURE", False, is_flag=True),
    EnvOption("admin_host", "SIPRESPONDER_ADMIN_HOSTS", None, is_list=True),
    EnvOption("admin_max_event_clients", "SIPRESPONDER_ADMIN_MAX_EVENT_CLIENTS", None),
    EnvOption("log_format", "SIPRESPONDER_LOG_FORMAT", "human", LOG_FORMATS),
    EnvOption("log_level", "SIPRESPONDER_LOG_LEVEL", "warning", LOG_LEVELS),
    EnvOption("workers", "SIPRESPONDER_WORKERS", "1"),
    EnvOption("udp_balance", "SIPRESPONDER_UDP_BALANCE", "source", UDP_BALANCE),
    EnvOption("tag_secret", "SIPRESPONDER_TAG_SECRET", None),
    EnvOption("tls_cert", "SIPRESPONDER_TLS_CERT", None),
    EnvOption("tls_key", "SIPRESPONDER_TLS_KEY", None),
    EnvOption("tls_dir", "SIPRESPONDER_TLS_DIR", None),
    EnvOption("seed", "SIPRESPONDER_SEED", None),
)

ENV_HELP = (
    "Environment variables (a flag wins over its variable): "
    + ", ".join(f"{o.env} (--{o.dest.replace('_', '-')})" for o in SERVE_ENV)
    + "; SIPRESPONDER_LISTEN is a comma- or space-separated list."
)


def apply_env(args: argparse.Namespace, environ: Mapping[str, str]) -> None:
    """Fill every option the command line left unset (None) from ``environ``, then from
    its default. ValueError names the variable when its value is not acceptable."""
    for option in SERVE_ENV:
        if getattr(args, option.dest, None) is not None:
            continue
        raw = environ.get(option.env, "").strip()
        if not raw:
            setattr(args, option.dest, option.default)
            continue
        value: Any = raw
        if option.is_list:
            value = split_list(raw)
        elif option.is_flag:
            if raw.lower() not in FLAG_VALUES:
                raise ValueError(f"{option.env}={raw!r}: expected 1, true, yes, 0, false or no")
            value = FLAG_VALUES[raw.lower()]
        elif option.choices:
            value = raw.lower()
            if value not in option.choices:
                raise ValueError(
                    f"{option.env}={raw!r}: expected one of {', '.join(option.choices)}"
                )
        setattr(args, option.dest, value)
    seed = getattr(args, "seed", None)
    if isinstance(seed, str):
        try:
            args.seed = int(seed)
        except ValueError:
            args.seed = -2
        if args.seed < -1:
            raise ValueError(
                f"--seed / SIPRESPONDER_SEED = {seed!r}: expected an integer, "
                "0 or more (or -1: a new seed every run)"
            )


def with_tag_secret(scenario: Scenario, secret: str | None, seed: int | None = None) -> Scenario:
    """``scenario`` with its settings.tag_key replaced by ``secret`` and its
    settings.seed by ``seed`` (None: unchanged).

    The To tag is a keyed hash of the request's transaction identifiers, so replicas
    that share the key answer a retransmission with the same tag whichever of them it
    reaches; the secret comes from the deployment, not from the scenario file. The
    seed (``--seed``) replays a run's random choices without editing the scenario."""
    changes: dict[str, Any] = {}
    if secret is not None:
        changes["tag_key"] = secret
    if seed is not None:
        changes["seed"] = seed
    if not changes:
        return scenario
    settings = dataclasses.replace(scenario.settings, **changes)
    return dataclasses.replace(scenario, settings=settings)


def keep_tag_secret(holder: Any, secret: str | None, seed: int | None = None) -> None:
    """Make every later ``holder.set_scenario`` (SIGHUP, --watch, the admin API's PUT)
    keep the secret (and the seed) too: a reload must not silently change the tags a
    replica gives."""
    if secret is None and seed is None:
        return
    original: Callable[[Scenario], None] = holder.set_scenario

    def set_scenario(scenario: Scenario) -> None:
        original(with_tag_secret(scenario, secret, seed))

    holder.set_scenario = set_scenario
