"""How long a person waits: `moneyd --help`, `moneyd --version`, `moneyd NAME:start --help` for each uplink, a TAB in
each shell, and `moneyd pay` of one packet (wall time, from start to exit, through a running `moneyd local` to a
`moneyd receive`), beside the JS moneyd's --help where it is installed.

moneyd runs from its compiled bytecode, as after `pip install` (which compiles it): a cache under the temporary
directory, filled by the warm-up runs, even where PYTHONDONTWRITEBYTECODE is set (otherwise every run would compile
moneyd's sources again, which no installed moneyd does).

    flock /tmp/moneyd-bench.lock python3 bench/startup.py [--runs 15]

Uses hyperfine when it is on PATH (its median), else runs each command itself. Prints medians; a busy machine
makes them noisy, so compare figures from the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).parent.parent
JS_MONEYD = ROOT / "tests" / "js" / "node_modules" / "moneyd" / "bin" / "moneyd.js"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONPYCACHEPREFIX": os.path.join(tempfile.gettempdir(), "moneyd-bench-pycache")}
ENV.pop("PYTHONDONTWRITEBYTECODE", None)
MONEYD = [sys.executable, "-m", "moneyd"]


def median_seconds(argv: list[str], runs: int, env: dict[str, str] | None = None) -> float:
    env = env or ENV
    if shutil.which("hyperfine"):
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            cmd = " ".join(_quote(a) for a in argv)
            subprocess.run(["hyperfine", "-N", "--warmup", "2", "--runs", str(runs), "--export-json", out.name, cmd],
                           env=env, check=True, capture_output=True, cwd=ROOT)
            return float(json.loads(Path(out.name).read_text())["results"][0]["median"])
    times = []
    for i in range(runs + 2):
        start = time.perf_counter()
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, cwd=ROOT)
        if i >= 2:  # warm-up runs fill the page cache
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def _quote(arg: str) -> str:
    return arg if all(c.isalnum() or c in "-_./:=@$" for c in arg) else "'" + arg.replace("'", "'\\''") + "'"


TAB = {
    # Each shell loads the script once, then runs its completion for `moneyd xrp:c` 50 times: per-TAB cost.
    "bash": ["bash", "--norc", "--noprofile", "-c",
             "source completions/moneyd.bash; for i in $(seq 50); do COMP_LINE='moneyd xrp:c'; COMP_POINT=12; "
             "COMP_WORDS=(moneyd xrp : c); COMP_CWORD=3; _moneyd; done; echo ${COMPREPLY[@]}"],
    "fish": ["fish", "--no-config", "-c",
             "source completions/moneyd.fish; for i in (seq 50); complete -C 'moneyd xrp:c' >/dev/null; end"],
}


def tab_ms(shell: str) -> float | None:
    argv = TAB.get(shell)
    if argv is None or shutil.which(argv[0]) is None:
        return None
    empty = {"bash": ["bash", "--norc", "--noprofile", "-c", "true"], "fish": ["fish", "--no-config", "-c", "true"]}
    times = []
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run(argv, cwd=ROOT, check=True, capture_output=True)
        whole = time.perf_counter() - start
        start = time.perf_counter()
        subprocess.run(empty[shell], cwd=ROOT, check=True, capture_output=True)
        times.append((whole - (time.perf_counter() - start)) / 50)
    return statistics.median(times) * 1000


def pay_one_packet(runs: int) -> float:
    data = tempfile.mkdtemp()
    router = subprocess.Popen([*MONEYD, "local", "--port", "7768"], env={**ENV, "MONEYD_DATA_DIR": data},
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    recv = None
    try:
        assert router.stdout is not None
        if not router.stdout.readline().startswith("moneyd ready"):
            raise SystemExit("moneyd local did not start (is port 7768 taken? run under flock /tmp/moneyd-bench.lock)")
        recv = subprocess.Popen([*MONEYD, "receive", "--port", "0", "--json"], env=ENV, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        assert recv.stdout is not None
        url = json.loads(recv.stdout.readline())["url"]
        return median_seconds([*MONEYD, "pay", url, "1000", "--json"], runs)
    finally:
        for proc in (recv, router):
            if proc is not None:
                proc.send_signal(signal.SIGINT)
                proc.wait(20)
        shutil.rmtree(data, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores; median of {args.runs} runs")
    rows = [("moneyd --help", median_seconds([*MONEYD, "--help"], args.runs), 0.25),
            ("moneyd --version", median_seconds([*MONEYD, "--version"], args.runs), 0.25)]
    rows += [(f"moneyd {name}:start --help", median_seconds([*MONEYD, f"{name}:start", "--help"], args.runs), None)
             for name in ("btp", "xrp", "eth")]
    if JS_MONEYD.exists():
        node = shutil.which("node")
        if node:
            rows.append(("JS moneyd --help", median_seconds([node, str(JS_MONEYD), "--help"], args.runs), None))
    rows.append(("moneyd pay (1 packet, wall)", pay_one_packet(args.runs), 0.6))
    for label, seconds, target in rows:
        goal = "" if target is None else f"   (target ≤ {target:.2f} s)"
        print(f"{label:30} {seconds:6.3f} s{goal}")
    for shell in ("bash", "fish"):
        ms = tab_ms(shell)
        if ms is not None:
            print(f"{'TAB in ' + shell + ' (xrp:c)':30} {ms:6.2f} ms   (target < 150 ms; no Python runs)")


if __name__ == "__main__":
    main()
