"""A short run of bench/fuzz.py (a few thousand mutated inputs in every category) against a real moneyd local:
no crash, no hang of the health probe, no traceback in the log, no wrong fulfillment passed on."""

from __future__ import annotations

from bench.fuzz import run


def test_short_fuzz_run() -> None:
    r = run(3000, seed=7)
    assert "error" not in r, r.get("error")
    assert r["inputs"] == 3000 and set(r["categories"]) == {"btp", "ilp", "ids", "fulfill", "ws", "http", "auth"}, r
    assert r["crashes"] == 0, r
    assert r["hangs"] == 0 and r["health_payments"] > 0, r["health_errors"]
    assert r["tracebacks"] == 0, r["error_lines"]
    assert r["fulfilled_wrongly"] == 0, r["outcomes"]
