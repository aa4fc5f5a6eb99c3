"""Log line formats: one human-readable line per event, or one JSON object per line."""

from __future__ import annotations

import json
import logging
import time

REQUESTS_LOGGER = "sipresponder.requests"  # uas/eventlog.py and the transports log there

# Attributes every LogRecord has; anything else came through `extra=` and is data.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "message": record.getMessage(),
        }
        entry.update((k, v) for k, v in vars(record).items() if k not in _STANDARD)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(fmt: str, level: str) -> None:
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("sipresponder")
    root.handlers[:] = [handler]
    # Start-up, reload and shutdown lines are INFO on "sipresponder" and show at the
    # default level (warning); what happens per request or per connection is INFO on
    # "sipresponder.requests", shown only when info or debug is asked for, so that the
    # default costs one isEnabledFor test per request.
    wanted = logging.getLevelName(level.upper())
    root.setLevel(min(wanted, logging.INFO) if wanted <= logging.WARNING else wanted)
    logging.getLogger(REQUESTS_LOGGER).setLevel(wanted)
    root.propagate = False
