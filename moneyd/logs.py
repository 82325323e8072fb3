"""Logging for a running moneyd: ``--log-level`` and ``--log-format text|json``.

Library loggers (websockets, aiohttp, asyncio) are held at WARNING so their per-connection chatter never reaches
the normal output; their warnings come out in moneyd's own format, like every other line.
"""

from __future__ import annotations

import json
import logging
import sys
import time

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")
LIBRARIES = ("websockets", "aiohttp", "asyncio", "urllib3", "web3", "xrpl")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc)


class LibraryLines(logging.Filter):
    """Library records in moneyd's voice: a handshake a non-WebSocket client botched is its problem (debug only);
    any other library warning becomes one line (no traceback) under ``moneyd.lib.NAME``."""

    def __init__(self, debug: bool) -> None:
        super().__init__()
        self.debug = debug

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith(("moneyd", "uplinks")) or self.debug:
            return True
        if record.name.startswith("websockets") and record.getMessage() == "opening handshake failed":
            return False
        if record.exc_info and record.exc_info[1] is not None:
            e = record.exc_info[1]
            record.msg, record.args = f"{record.getMessage()}: {type(e).__name__}: {e}", None
            record.exc_info = record.exc_text = None
        record.name = f"moneyd.lib.{record.name}"
        return True


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
    handler.addFilter(LibraryLines(level == "debug"))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    quiet_libs = max(root.level, logging.WARNING) if level != "debug" else logging.DEBUG
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(quiet_libs)
