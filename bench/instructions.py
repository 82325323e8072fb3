"""Instructions per packet, counted by valgrind (callgrind): a figure that load from other processes does not move.

    python3 bench/instructions.py [--what router-stream,router-ping,pay] [--packets 1000] [--port 17941]

On a shared 2-core machine CPU time per packet varies ±20% from run to run, which hides a change worth 5%. The
instructions a process executes do not: this script runs the process under ``valgrind --tool=callgrind`` and prints
user-space instructions per packet (the kernel's share, about 20% of the router's CPU, is not counted; nor are cache
misses, which are what a wake-up from idle costs on top). Slow (valgrind runs Python about 50× slower); figures are
printed, never asserted.

- router-stream / router-ping: ``moneyd local`` under callgrind; the JS client (../shared/jsref) makes a short
  warm-up run, the counters are zeroed, then it sends a STREAM payment of ``--packets`` packets (or as many
  sequential pings); instructions from the zeroing to the end of the run, per packet.
- pay: ``moneyd pay`` under callgrind (start-up included, as the STREAM sender bench counts it) to a JS STREAM
  receiver behind our router, for ``--packets`` packets and for one packet: the difference gives the per-packet
  figure, the one-packet run the fixed cost.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import JS_DIR, SHARED_BENCH, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
PYTHON = os.path.realpath(sys.executable)  # not a pyenv shim (a shell script valgrind would follow instead)


def _env(data: str) -> dict[str, str]:
    # Compiled bytecode, as after `pip install` (see bench/startup.py), even where PYTHONDONTWRITEBYTECODE is set.
    env = {**os.environ, "MONEYD_DATA_DIR": data, "XDG_DATA_HOME": data, "XDG_CONFIG_HOME": data,
           "PYTHONPATH": str(ROOT), "NODE_PATH": str(JS_DIR / "node_modules"),
           "PYTHONPYCACHEPREFIX": os.path.join(tempfile.gettempdir(), "moneyd-bench-pycache")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _summary(out: Path) -> int:
    m = re.search(r"^summary: (\d+)", out.read_text(errors="replace"), re.MULTILINE)
    if m is None:
        raise SystemExit(f"no callgrind summary in {out}")
    return int(m.group(1))


def _router(port: int, data: str, callgrind_out: Path | None) -> subprocess.Popen[bytes]:
    cmd = [PYTHON, "-m", "moneyd", "local", "--port", str(port), "--admin-api-port", "0"]
    if callgrind_out is not None:
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={callgrind_out}", *cmd]
    proc = subprocess.Popen(cmd, cwd=JS_DIR, env=_env(data), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, proc, timeout=120)
    time.sleep(0.5)
    return proc


def _client(port: int, phase: str, packets: int) -> None:
    args = ["node", str(SHARED_BENCH / "client-bench.js"), "--sender", f"btp+ws://:secretA@127.0.0.1:{port}",
            "--receiver", f"btp+ws://:secretB@127.0.0.1:{port}", "--phases", phase, "--amount", str(packets * 1000),
            "--max-packet", "1000", "--pings", str(packets), "--warmup", "10", "--pipelined", "10"]
    subprocess.run(args, cwd=JS_DIR, env=_env(""), check=True, capture_output=True, timeout=1800)


def router(phase: str, packets: int, port: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cg.out"
        proc = _router(port, tmp, out)
        try:
            _client(port, phase, 20)  # warm-up: connections, first-packet paths
            subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True, capture_output=True)
            _client(port, phase, packets)
            subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True, capture_output=True)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(60)
        dumps = sorted(Path(tmp).glob("cg.out.*"))
        if not dumps:
            raise SystemExit("callgrind wrote no dump")
        # the ping phase also sends the warm-up and pipelined prepares: 20 more than asked
        return _summary(dumps[0]) / (packets + (20 if phase == "ping" else 0))


def pay(packets: int, port: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        proc = _router(port, tmp, None)
        receiver = subprocess.Popen(
            ["node", "-r", str(JS_DIR / "stream-node20-fix.js"), str(JS_DIR / "spsp-receiver.js"),
             f"btp+ws://:bench-receiver@127.0.0.1:{port}"],
            cwd=JS_DIR, env=_env(tmp), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            assert receiver.stdout is not None
            url = json.loads(receiver.stdout.readline())["url"]
            counts = []
            pay_cmd = [PYTHON, "-m", "moneyd", "pay", url, "1000", "--via", f"btp+ws://127.0.0.1:{port}"]
            subprocess.run(pay_cmd, cwd=tempfile.gettempdir(), env=_env(tmp), check=True, capture_output=True)  # fills the bytecode cache
            for n in (1, packets):
                out = Path(tmp) / f"pay{n}.out"
                subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", PYTHON, "-m", "moneyd",
                                "pay", url, str(n * 1000), "--json", "--max-packet-amount", "1000",
                                "--via", f"btp+ws://127.0.0.1:{port}"],
                               cwd=tempfile.gettempdir(), env=_env(tmp), check=True, capture_output=True, timeout=1800)
                counts.append(_summary(out))
        finally:
            receiver.terminate()
            receiver.wait(10)
            proc.send_signal(signal.SIGINT)
            proc.wait(30)
        return counts[0], (counts[1] - counts[0]) / (packets - 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--what", default="router-stream,router-ping,pay")
    ap.add_argument("--packets", type=int, default=1000)
    ap.add_argument("--port", type=int, default=17941)
    args = ap.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("valgrind (callgrind) is not installed")
    for what in args.what.split(","):
        if what == "router-stream":
            print(f"router, STREAM payment from the JS sender: {router('stream', args.packets, args.port):,.0f} instructions/packet")
        elif what == "router-ping":
            print(f"router, sequential pings from the JS client: {router('ping', args.packets, args.port):,.0f} instructions/packet")
        elif what == "pay":
            fixed, per = pay(args.packets, args.port)
            print(f"moneyd pay: {fixed:,.0f} instructions for a 1-packet payment (start-up), then {per:,.0f} per packet")
        else:
            raise SystemExit(f"unknown --what {what!r}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
