"""Kill loop: `moneyd xrp:start` or `eth:start` under its JS parent, killed with SIGKILL at random moments (during
payments both ways, during a top-up, during startup) and restarted each time; then what the parent recorded and
what moneyd stored are compared claim by claim and unit by unit. Prints the figures; exits 1 on any disagreement.

    flock /tmp/moneyd-bench.lock python3 bench/killloop.py --uplink xrp --kills 20 [--seed N]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.killloop import run_uplink


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--uplink", choices=("xrp", "eth"), required=True)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seed", type=int, default=13)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="moneyd-killloop-") as tmp:
        report = asyncio.run(run_uplink(args.uplink, args.kills, args.seed, Path(tmp), lambda s: print(s, flush=True)))
    print("\n".join(report.lines()))
    print("PASS" if report.ok() else "FAIL")
    return 0 if report.ok() else 1


if __name__ == "__main__":
    sys.exit(main())
