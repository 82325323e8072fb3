"""A bounded log: nothing a client does can make moneyd's log grow without bound.

Every record is of a *kind*: its logger and its message template (``"app at %s refused: %s"``, not the formatted
text), so all refusals of one sort share one budget however the attacker varies them. Each kind may write a burst of
lines, then one a minute; what is held back is counted and said on the next line of that kind. Tracebacks from
the websockets library (raised by bad input on a socket, not by a moneyd bug) are cut to their last line. With a
few dozen kinds in the code, a flood of bad input costs at most a few KB of log a minute, where before each bad
handshake wrote a full traceback.

The limit sits on the handler (``install``), so it covers every logger, moneyd's and its libraries'.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

BURST = 10
PER_MINUTE = 1.0
MAX_KINDS = 1000  # kinds are templates in code, but a library could log formatted text: bound the table anyway


@dataclass
class _Budget:
    tokens: float
    stamp: float
    held: int = 0


class LogLimit(logging.Filter):
    def __init__(self, burst: int = BURST, per_minute: float = PER_MINUTE, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.burst, self.rate, self.clock = float(burst), per_minute / 60.0, clock
        self._kinds: dict[tuple[str, int, str], _Budget] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        template = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
        key = (record.name, record.levelno, template)
        now = self.clock()
        b = self._kinds.get(key)
        if b is None:
            if len(self._kinds) >= MAX_KINDS:
                key = ("", record.levelno, "(other)")
                b = self._kinds.get(key)
            if b is None:
                b = self._kinds[key] = _Budget(self.burst, now)
        b.tokens = min(self.burst, b.tokens + (now - b.stamp) * self.rate)
        b.stamp = now
        if b.tokens < 1:
            b.held += 1
            return False
        b.tokens -= 1
        if b.held:
            record.msg = f"{template} ({b.held} more like this not logged)"
            b.held = 0
        if record.exc_info and record.name.startswith("websockets"):
            exc = record.exc_info[1]
            record.msg = f"{record.msg}: {type(exc).__name__}: {exc}"
            record.exc_info, record.exc_text = None, None
        return True


def install(logger: logging.Logger | None = None) -> LogLimit:
    """Put one LogLimit on every handler of ``logger`` (default: the root logger, as set up by basicConfig)."""
    target = logger or logging.getLogger()
    limit = LogLimit()
    for handler in target.handlers:
        handler.addFilter(limit)
    return limit
