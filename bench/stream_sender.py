"""STREAM sender benchmark: a 10,000-packet payment with our sender (`moneyd pay`) and with the JS
ilp-protocol-stream 2.7.1 sender, through the same router in the same run.

    python3 bench/stream_sender.py [--reps 3] [--routers py,js] [--amount 10000000 --max-packet 1000]

For each router (our `moneyd local`, and the JS moneyd 4.3.0 `local` as in ../shared/jsref) and repetition:
- JS sender: ../shared/jsref/bench/client-bench.js --phases stream (sender A and a JS STREAM receiver B, both
  ilp-plugin-btp apps of the router; maximumPacketAmount 1000, so 10,000 packets);
- our sender: a JS STREAM receiver (tests/js/spsp-receiver.js, also an app of the router, same
  ilp-protocol-stream 2.7.1 server) and `moneyd pay URL 10000000 --max-packet-amount 1000 --json`.
Both figures are for the send phase (after the exchange-rate probe), packets/s = fulfilled-or-rejected
Prepares per second. CPU per packet: the router's (its /proc CPU time over the payment / packets), and our
sender's as a whole process (`moneyd pay`'s user + system time, start-up and probe included, / packets). The JS
sender shares its node process with the JS receiver: its figure is both together, over the send phase. Printed
side by side, never asserted. Packets per CPU-second of each process are printed too (the fair figure when sender,
router and receiver share two cores). `moneyd pay` runs from compiled bytecode, as after `pip install` (a cache under
the temporary directory, even where PYTHONDONTWRITEBYTECODE is set, as bench/startup.py does): otherwise every run
would compile moneyd's modules first, about 0.07 s of CPU no installed moneyd spends.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import JS_DIR, PORT, port_is_free, run_client, start_server, wait_for_port

ROOT = Path(__file__).resolve().parent.parent


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def js_sender(server_pid: int, amount: str, max_packet: str, log: Path) -> dict[str, float]:
    result = run_client(server_pid, {"phases": "stream", "amount": amount, "max-packet": max_packet}, log)
    s = result["stream"]
    return {"packets": float(s["send_prepares"]), "seconds": s["send_ms"] / 1000, "packets_per_s": s["packets_per_s"],
            "wall_s": s["wall_ms_incl_connect"] / 1000,
            "router_cpu_us": float(s.get("cpu", {}).get("server0_cpu_us_per_packet", float("nan"))),
            "sender_cpu_us": float(s.get("cpu", {}).get("client_cpu_us_per_packet", float("nan"))),
            "receiver_cpu_us": float("nan")}  # the JS receiver shares the sender's process: counted there


def py_sender(server_pid: int, amount: str, max_packet: str, log: Path) -> dict[str, float]:
    env = {**os.environ, "NODE_PATH": str(JS_DIR / "node_modules")}
    receiver = subprocess.Popen(
        ["node", "-r", str(JS_DIR / "stream-node20-fix.js"), str(JS_DIR / "spsp-receiver.js"),
         f"btp+ws://:bench-receiver@127.0.0.1:{PORT}"],
        cwd=JS_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert receiver.stdout is not None
        ready = json.loads(receiver.stdout.readline())
        if ready.get("event") != "ready":
            raise SystemExit(f"JS receiver failed: {ready}")
        start = time.monotonic()
        router0 = cpu_seconds(server_pid)
        receiver0 = cpu_seconds(receiver.pid)
        # The receiver is a child too, but one not yet waited for: only `moneyd pay` lands in RUSAGE_CHILDREN.
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        pay_env = {**os.environ, "PYTHONPYCACHEPREFIX": os.path.join(tempfile.gettempdir(), "moneyd-bench-pycache")}
        pay_env.pop("PYTHONDONTWRITEBYTECODE", None)
        out = subprocess.run([sys.executable, "-m", "moneyd", "pay", ready["url"], amount, "--json",
                              "--max-packet-amount", max_packet, "--via", f"btp+ws://127.0.0.1:{PORT}"],
                             env=pay_env, capture_output=True, text=True, timeout=900)
        wall = time.monotonic() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        router_cpu = cpu_seconds(server_pid) - router0
        receiver_cpu = cpu_seconds(receiver.pid) - receiver0
        sender_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        log.write_text(out.stdout + "\n--- stderr ---\n" + out.stderr)
        if out.returncode != 0:
            raise SystemExit(f"moneyd pay failed ({out.returncode}); see {log}")
        r = json.loads(out.stdout)
        packets = float(r["packets"])
        return {"packets": packets, "seconds": r["seconds"], "packets_per_s": packets / r["seconds"], "wall_s": wall,
                "router_cpu_us": router_cpu / packets * 1e6, "sender_cpu_us": sender_cpu / packets * 1e6,
                "receiver_cpu_us": receiver_cpu / packets * 1e6}
    finally:
        receiver.terminate()
        receiver.wait(10)


def one_rep(router: str, amount: str, max_packet: str, logs: Path, rep: int) -> dict[str, dict[str, float]]:
    if not port_is_free(PORT):
        raise SystemExit(f"port {PORT} is busy: stop the moneyd running there first")
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(router, Path(tmp), logs / f"stream-{router}-rep{rep}-router.log")
        try:
            wait_for_port(PORT, server)
            time.sleep(0.5)
            return {
                "js": js_sender(server.pid, amount, max_packet, logs / f"stream-{router}-rep{rep}-js.log"),
                "py": py_sender(server.pid, amount, max_packet, logs / f"stream-{router}-rep{rep}-py.log"),
            }
        finally:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--routers", default="py,js", help="comma list: py (moneyd local), js (JS moneyd 4.3.0 local)")
    ap.add_argument("--amount", default="10000000")
    ap.add_argument("--max-packet", default="1000")
    args = ap.parse_args()
    logs = ROOT / "bench" / "logs"
    logs.mkdir(exist_ok=True)
    print(f"STREAM payment of {args.amount} with max packet {args.max_packet}; medians of {args.reps}")
    print(f"{'router':<22}{'sender':<22}{'packets':>9}{'send s':>9}{'packets/s':>11}{'wall s':>9}"
          f"{'router µs/pkt':>15}{'sender µs/pkt':>15}{'receiver µs/pkt':>17}")
    for router in args.routers.split(","):
        runs = [one_rep(router, args.amount, args.max_packet, logs, i) for i in range(args.reps)]
        per_sender: dict[str, dict[str, float]] = {}
        for sender in ("js", "py"):
            per_sender[sender] = {k: statistics.median(r[sender][k] for r in runs) for k in runs[0][sender]}
        name = {"py": "moneyd local (Python)", "js": "JS moneyd 4.3.0"}[router]
        for sender, label in (("js", "JS ilp-protocol-stream"), ("py", "moneyd pay (Python)")):
            m = per_sender[sender]
            print(f"{name:<22}{label:<22}{m['packets']:>9.0f}{m['seconds']:>9.2f}{m['packets_per_s']:>11.0f}{m['wall_s']:>9.2f}"
                  f"{m['router_cpu_us']:>15.0f}{m['sender_cpu_us']:>15.0f}{m['receiver_cpu_us']:>17.0f}")
            # Packets per CPU-second of each process: what each could move alone on a free core.
            per_cpu = [f"{who} {1e6 / m[key]:,.0f}" for who, key in (("router", "router_cpu_us"), ("sender", "sender_cpu_us"),
                                                                      ("receiver", "receiver_cpu_us")) if m[key] == m[key] and m[key] > 0]
            print(f"{'':<22}{'  packets per CPU-second:':<22} " + ", ".join(per_cpu)
                  + (" (JS: sender and receiver share one process)" if sender == "js" else ""))
        ratio = per_sender["py"]["packets_per_s"] / per_sender["js"]["packets_per_s"]
        print(f"{'':<22}{'ratio py/js':<22}{'':>9}{'':>9}{ratio:>10.2f}x")
    out: dict[str, Any] = {"amount": args.amount, "max_packet": args.max_packet, "reps": args.reps}
    (logs / "stream-sender-last.json").write_text(json.dumps(out))


if __name__ == "__main__":
    main()
