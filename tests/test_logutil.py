"""moneyd.logutil.RateLimitedLog: a flood of one kind of problem is one line per interval, and the next line says
how many were held back; other kinds are not held back by it."""

from __future__ import annotations

import logging

import pytest

from moneyd import logutil
from moneyd.logutil import RateLimitedLog


def test_one_line_per_kind_per_interval(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(logutil.time, "monotonic", lambda: now[0])
    log = RateLimitedLog(logging.getLogger("test.logutil"), interval=10.0)
    with caplog.at_level(logging.INFO, "test.logutil"):
        assert log.warning("flood", "bad frame from %s", "a")
        assert [log.warning("flood", "bad frame from %s", "b") for _ in range(99)] == [False] * 99
        assert log.info("other", "another kind")  # its own budget
        now[0] += 10.0
        assert log.warning("flood", "bad frame from %s", "c")
        assert not log.log(logging.DEBUG, "quiet", "below the level: neither written nor counted")
    assert [r.getMessage() for r in caplog.records] == [
        "bad frame from a",
        "another kind",
        "bad frame from c (and 99 more like this in the last 10s)",
    ]
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.INFO, logging.WARNING]
