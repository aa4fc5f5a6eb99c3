"""The one boundary to the compiled request path (issue 13).

``sipresponder._speedups`` is a C extension (sipresponder/csrc/speedups.c) that
answers the requests whose answer the Python engine has already given for the same
request line on the same listener (``uas/fast.py`` teaches it) and reads UDP
datagrams in batches (``transport/batch.py``). It is optional, like aiohttp's
``_http_parser``: ``pip install .`` builds it where a C compiler and the Python
headers exist; without it, or with ``SIPRESPONDER_NO_EXTENSIONS=1`` in the
environment, every request takes the pure-Python engine, which is the reference the
compiled path is tested against (tests/differential/).

Nothing else imports the extension: ``speedups`` is the module or None.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

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
