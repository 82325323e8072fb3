"""Side-by-side benchmark: our moneyd vs the JS moneyd 4.3.0, with the same JS client.

    python3 bench/compare.py [--reps 3] [--only py|js] [--pings 10000 --pipelined 10000 --amount 10000000 ...]

For each implementation and repetition it starts `moneyd local` fresh on 127.0.0.1:7768, runs the JS reference
client (../shared/jsref/bench/client-bench.js: sequential pings, 32-in-flight pipelined prepares, a 10,000-packet
ilp-protocol-stream payment) against it, reads the server's CPU time and peak RSS from /proc, stops it, and prints
medians side by side. The JS moneyd runs with its rate limiter off (as in ../shared/jsref), ours with defaults.
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
JS_DIR = ROOT / "tests" / "js"
SHARED_BENCH = ROOT.parent / "shared" / "jsref" / "bench"
PORT = 7768
CLIENT_OPTS = ("amount", "max-packet", "pings", "warmup", "pipelined", "concurrency", "phases")

METRICS = [
    ("pipelined.packets_per_s", "pipelined prepares/s (32 in flight)"),
    ("ping.p50_ms", "Prepare→Fulfill p50 ms"),
    ("ping.p99_ms", "Prepare→Fulfill p99 ms"),
    ("ping.sequential_packets_per_s", "sequential prepares/s"),
    ("stream.packets_per_s", "STREAM packets/s (JS sender)"),
    ("stream.send_ms", "STREAM 10,000-packet payment ms"),
    ("pipelined.cpu.server0_cpu_us_per_packet", "router CPU µs/packet (pipelined)"),
    ("ping.cpu.server0_cpu_us_per_packet", "router CPU µs/packet (seq ping)"),
    ("stream.cpu.server0_cpu_us_per_packet", "router CPU µs/packet (STREAM)"),
    ("idle_rss_kb", "router RSS idle kB"),
    ("peak_rss_kb", "router peak RSS kB (VmHWM)"),
]


def proc_status(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode} before listening on {port}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port} after {timeout}s")


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def start_server(impl: str, data_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "NODE_PATH": str(JS_DIR / "node_modules")}
    if impl == "js":
        cmd = [
            "node", "--unhandled-rejections=warn", "-r", str(SHARED_BENCH / "preload-connector-opts.js"),
            str(JS_DIR / "node_modules" / "moneyd" / "bin" / "moneyd.js"), "local",
        ]
        env["MONEYD_DISABLE_MIDDLEWARE"] = "rateLimit"
        env["HOME"] = str(data_dir)
    else:
        cmd = [sys.executable, "-m", "moneyd", "local", "--port", str(PORT)]
        env["MONEYD_DATA_DIR"] = str(data_dir)
        env["XDG_DATA_HOME"] = str(data_dir)
        env["XDG_CONFIG_HOME"] = str(data_dir)
    return subprocess.Popen(cmd, cwd=JS_DIR, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def run_client(pid: int, opts: dict[str, str], log: Path) -> dict[str, Any]:
    args = ["node", str(SHARED_BENCH / "client-bench.js"), "--sender", f"btp+ws://:secretA@127.0.0.1:{PORT}",
            "--receiver", f"btp+ws://:secretB@127.0.0.1:{PORT}", "--server-pids", str(pid)]
    for k, v in opts.items():
        args += [f"--{k}", v]
    env = {**os.environ, "NODE_PATH": str(JS_DIR / "node_modules")}
    out = subprocess.run(args, cwd=JS_DIR, env=env, capture_output=True, text=True, timeout=900)
    log.write_text(out.stdout + "\n--- stderr ---\n" + out.stderr)
    if out.returncode != 0:
        raise SystemExit(f"client failed ({out.returncode}); see {log}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def one_rep(impl: str, opts: dict[str, str], logs: Path, rep: int) -> dict[str, Any]:
    if not port_is_free(PORT):
        raise SystemExit(f"port {PORT} is busy: stop the moneyd running there first")
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(impl, Path(tmp), logs / f"{impl}-rep{rep}-server.log")
        try:
            wait_for_port(PORT, server)
            time.sleep(0.5)
            idle = proc_status(server.pid)["VmRSS"]
            result = run_client(server.pid, opts, logs / f"{impl}-rep{rep}-client.log")
            result["idle_rss_kb"] = idle
            result["peak_rss_kb"] = proc_status(server.pid)["VmHWM"]
            return result
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def pick(obj: Any, path: str) -> float | None:
    for key in path.split("."):
        if not isinstance(obj, dict) or key not in obj:
            return None
        obj = obj[key]
    return float(obj) if isinstance(obj, int | float) else None


def fmt(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", choices=("py", "js"))
    for opt in CLIENT_OPTS:
        ap.add_argument(f"--{opt}")
    ns = ap.parse_args()
    if not (SHARED_BENCH / "client-bench.js").is_file():
        raise SystemExit(f"the JS client is missing: expected {SHARED_BENCH}/client-bench.js (../shared/jsref)")
    opts = {k: v for k in CLIENT_OPTS if (v := getattr(ns, k.replace("-", "_"))) is not None}
    logs = ROOT / "bench" / "logs"
    logs.mkdir(exist_ok=True)
    impls = [ns.only] if ns.only else ["py", "js"]
    runs: dict[str, list[dict[str, Any]]] = {impl: [] for impl in impls}
    for rep in range(1, ns.reps + 1):
        for impl in impls:
            print(f"[{impl}] rep {rep}/{ns.reps} ...", file=sys.stderr, flush=True)
            runs[impl].append(one_rep(impl, opts, logs, rep))
    stamp = time.strftime("%Y%m%dT%H%M%S")
    (logs / f"compare-{stamp}.json").write_text(json.dumps(runs, indent=1))
    names = [f"moneyd-{impl}" for impl in impls] + (["py/js"] if len(impls) == 2 else [])
    header = f"{'metric (median of ' + str(ns.reps) + ')':<40}" + "".join(f"{n:>14}" for n in names)
    print(header)
    for key, label in METRICS:
        meds = []
        for impl in impls:
            vals = [v for r in runs[impl] if (v := pick(r, key)) is not None]
            meds.append(statistics.median(vals) if vals else None)
        ratio = ""
        if len(meds) == 2 and meds[0] is not None and meds[1]:
            ratio = f"{meds[0] / meds[1]:.2f}×"
        print(f"{label:<40}" + "".join(f"{fmt(m):>14}" for m in meds) + (f"{ratio:>14}" if len(meds) == 2 else ""))
    print(f"\nraw results: bench/logs/compare-{stamp}.json")


if __name__ == "__main__":
    main()
