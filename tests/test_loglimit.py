"""The log stays bounded whatever a client does (moneyd.loglimit: LogLimit on the handler, RateLimitedLog at the call
site, one budget rule)."""

from __future__ import annotations

import io
import logging

from moneyd.loglimit import Budgets, LogLimit, RateLimitedLog


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def logger_with_limit(clock: Clock) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(LogLimit(burst=3, per_minute=1, clock=clock))
    log = logging.getLogger(f"test.loglimit.{id(out)}")
    log.propagate = False
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return log, out


def test_a_flood_of_one_kind_is_cut_and_counted() -> None:
    clock = Clock()
    log, out = logger_with_limit(clock)
    for i in range(10_000):
        log.info("app at %s refused: %s", f"127.0.0.1:{i}", "x" * (i % 50))
    log.warning("a different kind")
    lines = out.getvalue().splitlines()
    assert len(lines) == 4 and lines[-1] == "a different kind"
    clock.now += 60
    log.info("app at %s refused: %s", "127.0.0.1:1", "late")
    assert out.getvalue().splitlines()[-1] == "app at 127.0.0.1:1 refused: late (9997 more like this not logged)"


def test_websockets_tracebacks_become_one_line() -> None:
    clock = Clock()
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(LogLimit(clock=clock))
    ws_log = logging.getLogger("websockets.server.test")
    ws_log.propagate = False
    ws_log.addHandler(handler)
    try:
        raise ValueError("bad Upgrade header")
    except ValueError:
        ws_log.exception("opening handshake failed")
    assert out.getvalue() == "opening handshake failed: ValueError: bad Upgrade header\n"
    ws_log.removeHandler(handler)


def test_kinds_are_bounded() -> None:
    clock = Clock()
    log, out = logger_with_limit(clock)
    for i in range(5000):
        log.info(f"formatted by the caller {i}")  # what a careless library does
    assert len(out.getvalue().splitlines()) <= 1000 + 3


def test_a_call_site_kind_has_the_same_budget() -> None:
    clock = Clock()
    log, out = logger_with_limit(Clock())  # a LogLimit on the handler too, as moneyd runs
    limited = RateLimitedLog(log, Budgets(burst=2, per_minute=1, clock=clock))
    written = [limited.warning("malformed", "%s: malformed BTP frame (%s)", f"app {i}", "x") for i in range(1000)]
    assert written[:2] == [True, True] and not any(written[2:])
    assert limited.info("handshake", "refused a WebSocket handshake from %s", "127.0.0.1") is True  # another kind
    clock.now += 60
    assert limited.warning("malformed", "%s: malformed BTP frame (%s)", "app 9", "late") is True
    lines = out.getvalue().splitlines()
    # The handler's LogLimit (burst 3) neither counts these lines again nor takes the counted one for a new kind.
    assert lines == ["app 0: malformed BTP frame (x)", "app 1: malformed BTP frame (x)",
                     "refused a WebSocket handshake from 127.0.0.1",
                     "app 9: malformed BTP frame (late) (998 more like this not logged)"]


def test_a_call_site_line_below_the_level_costs_no_budget() -> None:
    clock = Clock()
    log, out = logger_with_limit(clock)
    limited = RateLimitedLog(log, Budgets(burst=1, per_minute=1, clock=clock))
    assert limited.log(logging.DEBUG, "answer", "answer to an unknown request") is False
    assert limited.info("answer", "answer to an unknown request") is True
    assert out.getvalue() == "answer to an unknown request\n"
