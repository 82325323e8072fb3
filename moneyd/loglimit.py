"""A bounded log: nothing a client does can make moneyd's log grow without bound.

One concept: every line is of a *kind*, and each kind has a budget (``Budgets``): a burst of lines, then one a
minute; what is held back is counted and said on the next line of that kind (``(N more like this not logged)``).
With a few dozen kinds in the code, a flood of bad input costs at most a few KB of log a minute.

Two ways to name the kind, one budget rule:

- ``LogLimit``, a filter on the log handlers (``install``): the kind is the logger, the level and the message
  template (``"app at %s refused: %s"``, not the formatted text), so all refusals of one sort share one budget
  however the attacker varies them. It covers every logger, moneyd's and its libraries'; tracebacks from the
  websockets library (raised by bad input on a socket, not by a moneyd bug) are cut to their last line.
- ``RateLimitedLog``, at the call site, where moneyd logs what a peer can repeat at will (handshakes, malformed
  frames): the caller names the kind, and the budget is checked before a record is built, so a flood costs no
  formatting. Its lines are marked so ``LogLimit`` neither counts them twice nor takes a line carrying the count
  for a new kind.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Final

BURST = 10
PER_MINUTE = 1.0
MAX_KINDS = 1000  # kinds are templates in code, but a library could log formatted text: bound the table anyway
OTHER: Final = ("", 0, "(other)")  # the kind every kind past MAX_KINDS shares
_BUDGETED = "moneyd_budgeted"  # a LogRecord attribute: RateLimitedLog has charged this line already


@dataclass
class _Budget:
    tokens: float
    stamp: float
    held: int = 0


class Budgets:
    """A token bucket per kind: ``burst`` lines at once, refilled at ``per_minute``; at most ``MAX_KINDS`` kinds."""

    def __init__(self, burst: int = BURST, per_minute: float = PER_MINUTE, clock: Callable[[], float] = time.monotonic) -> None:
        self.burst, self.rate, self.clock = float(burst), per_minute / 60.0, clock
        self._kinds: dict[Hashable, _Budget] = {}

    def take(self, kind: Hashable) -> int | None:
        """Spend one line of ``kind``'s budget: None when it is spent (the line is held back and counted), else
        how many lines of this kind were held back since the last one written (to say so on this one)."""
        now = self.clock()
        b = self._kinds.get(kind)
        if b is None:
            if len(self._kinds) >= MAX_KINDS:
                kind = OTHER
                b = self._kinds.get(kind)
            if b is None:
                b = self._kinds[kind] = _Budget(self.burst, now)
        b.tokens = min(self.burst, b.tokens + (now - b.stamp) * self.rate)
        b.stamp = now
        if b.tokens < 1:
            b.held += 1
            return None
        b.tokens -= 1
        held, b.held = b.held, 0
        return held


def with_held(msg: str, held: int) -> str:
    return f"{msg} ({held} more like this not logged)" if held else msg


class LogLimit(logging.Filter):
    """The budget on a handler: the kind of a record is its logger, level and message template."""

    def __init__(self, burst: int = BURST, per_minute: float = PER_MINUTE, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.budgets = Budgets(burst, per_minute, clock)

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _BUDGETED, False):
            return True
        template = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
        held = self.budgets.take((record.name, record.levelno, template))
        if held is None:
            return False
        record.msg = with_held(template, held)
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


class RateLimitedLog:
    """The budget at the call site: ``limited.warning("malformed", "%s: malformed BTP frame (%s)", label, e)``.

    Kinds are fixed strings chosen by the caller (never built from peer input), so the table stays small."""

    def __init__(self, logger: logging.Logger, budgets: Budgets | None = None) -> None:
        self.logger = logger
        self.budgets = budgets if budgets is not None else Budgets()

    def log(self, level: int, kind: str, msg: str, *args: Any, exc_info: bool = False) -> bool:
        """Log unless ``kind``'s budget is spent; True if the line was written."""
        if not self.logger.isEnabledFor(level):
            return False
        held = self.budgets.take((level, kind))
        if held is None:
            return False
        self.logger.log(level, with_held(msg, held), *args, exc_info=exc_info, extra={_BUDGETED: True})
        return True

    def warning(self, kind: str, msg: str, *args: Any) -> bool:
        return self.log(logging.WARNING, kind, msg, *args)

    def info(self, kind: str, msg: str, *args: Any) -> bool:
        return self.log(logging.INFO, kind, msg, *args)

    def error(self, kind: str, msg: str, *args: Any, exc_info: bool = False) -> bool:
        return self.log(logging.ERROR, kind, msg, *args, exc_info=exc_info)
