"""The kill loops of bench/killloop.py, scaled down: `moneyd xrp:start` and `eth:start` under their JS parents,
killed with SIGKILL at random moments (payments both ways, a top-up, startup), restarted each time; no acknowledged
claim lost, payments resume after every restart, a top-up made while moneyd is down is announced at its start, and
at the end the parent's books and ours agree to the unit. The full loops (20 kills each) are in bench/."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.killloop import run_uplink


@pytest.mark.parametrize(("uplink", "seed"), [("xrp", 5), ("eth", 5)])
async def test_kill_loop_books_agree_to_the_unit(uplink: str, seed: int, tmp_path: Path) -> None:
    report = await run_uplink(uplink, 3, seed, tmp_path)
    text = "\n".join(report.lines())
    assert not report.errors, text
    assert len(report.kills) == 3 and report.resumed == report.restarts >= 2, text
    assert any(kill.startswith("topup (just after") for kill in report.kills), text  # the seed plans one
    assert report.acked_claims > 0 and report.lost_claims == 0 and report.unstored_our_claims == 0, text
    assert report.topups_announced == 1, text
    assert report.disagreement and all(v == 0 for v in report.disagreement.values()), text
