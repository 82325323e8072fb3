"""Logging that a flood of bad input cannot amplify: at most one line per kind of problem per interval."""

from __future__ import annotations

import logging
import time
from typing import Any


class RateLimitedLog:
    """One line per ``kind`` per ``interval`` seconds; the next line that gets through says how many were dropped.

    Kinds are fixed strings chosen by the caller (never built from peer input), so the table stays small."""

    def __init__(self, logger: logging.Logger, interval: float = 10.0) -> None:
        self.logger = logger
        self.interval = interval
        self._last: dict[str, tuple[float, int]] = {}

    def log(self, level: int, kind: str, msg: str, *args: Any, exc_info: bool = False) -> bool:
        """Log unless a line of this kind went out less than ``interval`` ago; True if it was written."""
        if not self.logger.isEnabledFor(level):
            return False
        now = time.monotonic()
        last, dropped = self._last.get(kind, (-self.interval, 0))
        if now - last < self.interval:
            self._last[kind] = (last, dropped + 1)
            return False
        self._last[kind] = (now, 0)
        if dropped:
            msg = f"{msg} (and {dropped} more like this in the last {now - last:.0f}s)"
        self.logger.log(level, msg, *args, exc_info=exc_info)
        return True

    def warning(self, kind: str, msg: str, *args: Any) -> bool:
        return self.log(logging.WARNING, kind, msg, *args)

    def info(self, kind: str, msg: str, *args: Any) -> bool:
        return self.log(logging.INFO, kind, msg, *args)

    def error(self, kind: str, msg: str, *args: Any, exc_info: bool = False) -> bool:
        return self.log(logging.ERROR, kind, msg, *args, exc_info=exc_info)
