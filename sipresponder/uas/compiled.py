"""The one boundary to the compiled request path (issue 13).

``sipresponder._speedups`` is a C extension (sipresponder/csrc/speedups.c) that
answers the requests whose answer the Python engine has already given for the same
request line on the same listener (``uas/fast.py`` teaches it) and reads UDP
datagrams in batches (``transport/batch.py``). It is optional, like aiohttp's
``_http_parser``: ``pip install .`` builds it where a C compiler and the Python
headers exist; without it, or with ``SIPRESPONDER_NO_EXTENSIONS=1`` in the
environment, every request takes the pure-Python engine, which is the reference the
compiled path is tested against (tests/differential/).

Nothing else imports the extension: ``speedups`` is the module or None. Its types
are in ``sipresponder/_speedups.pyi``; the names below re-export them for
annotations (``if TYPE_CHECKING:``), so that mypy checks every call into the C code.

The contract with the C code lives in the extension, not in copies: the deferral
reasons, the table's tally limit and ``CHECKS``, the RFC 3261 8.2 checks of
uas/validation.py that its scan mirrors. ``unmirrored_checks`` names those a
scenario enables that the extension does not mirror: the compiled path then stays
off for that scenario (fails closed) rather than answer what the engine would reject.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from sipresponder._speedups import Answered, Unsent, serve_udp
    from sipresponder._speedups import Deferred as Deferred
    from sipresponder._speedups import Table as Table

    # serve_udp's type, for a transport that keeps the function (transport/batch.py);
    # mypy checks below that the stub's function is one.
    ServeUDP = Callable[
        [int, Table | None, int, bool, bool, bool, int],
        tuple[list[Deferred], list[Answered] | None, list[Unsent] | None, int],
    ]
    _SERVE_UDP: ServeUDP = serve_udp

NO_EXTENSIONS = "SIPRESPONDER_NO_EXTENSIONS"
HOW_TO_BUILD = (
    "install a C compiler and the Python headers (Debian: apt-get install gcc python3-dev) "
    "and reinstall sipresponder (pip install --force-reinstall --no-deps .)"
)


def _load() -> tuple[ModuleType | None, str]:
    if os.environ.get(NO_EXTENSIONS, "") not in ("", "0"):
        return None, f"pure Python ({NO_EXTENSIONS} is set)"
    try:
        # By name, not `from .. import`: the extension is no module of the package's
        # rings (tests/unit/test_layers.py), only this boundary knows it.
        module = importlib.import_module("sipresponder._speedups")
    except ImportError as exc:
        return None, (
            f"pure Python (the compiled extension is not built: {exc}; to build it, "
            f"{HOW_TO_BUILD})"
        )
    return module, "compiled (sipresponder._speedups)"


speedups, STATUS = _load()
AVAILABLE = speedups is not None
# recvmmsg/sendmmsg exist on Linux only; elsewhere UDP is read one datagram a call.
BATCHED_UDP = AVAILABLE and bool(getattr(speedups, "HAVE_MMSG", 0))

# Read from the extension (csrc/speedups.c module attributes), never copied here.
# Without it no table exists: no reason is a miss and no check is mirrored.
MISS: int = speedups.MISS if speedups is not None else -1
MAX_TALLY: int = speedups.MAX_TALLY if speedups is not None else 0
MIRRORED_CHECKS: frozenset[str] = frozenset(speedups.CHECKS if speedups is not None else ())


def unmirrored_checks(switches: Mapping[str, bool]) -> list[str]:
    """The checks ``switches`` turns on that the compiled scan does not mirror, in
    order: a request it would answer could be one of these checks' rejections."""
    return [name for name, on in switches.items() if on and name not in MIRRORED_CHECKS]
