"""The log stays bounded whatever a client does (moneyd.loglimit)."""

from __future__ import annotations

import io
import logging

from moneyd.loglimit import LogLimit


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
