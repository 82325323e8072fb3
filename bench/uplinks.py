"""Packets per second through each settled uplink and its JS parent: XRP and ETH.

    flock /tmp/moneyd-bench.lock python3 bench/uplinks.py [--uplinks eth,xrp] [--packets 1000] [--reps 3]
                                                          [--directions out,in] [--profile DIR] [--logs DIR]

The parents are the ones the tests run (tests/uplinks/eth/test_uplink.py, tests/uplinks/xrp/test_uplink.py):
- ETH: ganache with the Unidirectional contract (tests/support/ethfixture.py) and a JS ilp-connector whose child account
  runs ilp-plugin-ethereum 3.0.0-beta.20 in role server (tests/js/eth-parent-connector.js);
- XRP: the XRPL emulator (tests/support/xrpl_emulator) and a JS ilp-connector with ilp-plugin-xrp-asym-server 1.8.1
  (tests/js/xrp-parent-connector.js).
Our side is `moneyd ETH:start` on 127.0.0.1:7768, configured by `moneyd ETH:configure` as a user would.

Directions, each a STREAM payment of --packets packets (a fresh `moneyd pay` each repetition):
- out: `moneyd pay` behind our router pays a JS ilp-protocol-stream receiver (tests/js/spsp-receiver.js) on the
  parent's apps account: every packet is prepaid by a claim we sign, which the JS plugin checks;
- in:  `moneyd pay` on the parent's apps account pays `moneyd receive` behind our router: every packet is followed
  by a claim the JS plugin signs, which our uplink checks and stores before acknowledging.
Figures are packets/s of the send phase (fulfilled or rejected Prepares over `moneyd pay`'s own clock), medians of
--reps. Printed, never asserted. With --profile DIR, `moneyd ETH:start` runs under cProfile (slower) and its
profile is written to DIR/<uplink>.prof when it stops. With --logs DIR (XRP), moneyd runs at debug level with every
line kept (each incoming Prepare, its answer, each claim) and the JS parent with DEBUG=ilp*; both logs land in DIR
(debug logging slows both sides: read the order of events there, not the rate).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
# This file's name would hide the uplinks package: import from the project root, not from bench/.
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != BENCH)]

from tests.support.jsnode import NodeRunner, free_port  # noqa: E402

PORT = 7768  # moneyd's port, as every bench/ script uses (run them under flock /tmp/moneyd-bench.lock)

GWEI_PER_ETH = 10**9
ETH_US, ETH_PARENT = 3, 4  # ganache accounts, as in tests/uplinks/eth/test_uplink.py


class Moneyd:
    """`moneyd <uplink>:start` on PORT with its own config and data directory."""

    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.tmp = tmp
        self.env = {**os.environ, "MONEYD_DATA_DIR": str(tmp / "data"), "MONEYD_NO_KEYRING": "1",
                    "MONEYD_PASSPHRASE": "bench passphrase", "PYTHONPATH": str(ROOT), **env}
        self.proc: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "moneyd", "-c", str(self.tmp / "moneyd.json"), *args],
                              env=self.env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def start(self, uplink: str, profile: Path | None, debug: bool = False) -> None:
        if not port_is_free(PORT):
            raise SystemExit(f"port {PORT} is busy: stop the moneyd running there first")
        pre = [sys.executable]
        if debug:
            # Every line, unbudgeted: moneyd's log limit (moneyd/loglimit.py) would keep 10 of each kind.
            pre += ["-c", "import runpy, moneyd.loglimit as l; l.install = lambda *a, **k: None; "
                          "runpy.run_module('moneyd', run_name='__main__', alter_sys=True)"]
        if profile is not None:
            profile.parent.mkdir(parents=True, exist_ok=True)
            pre += ["-m", "cProfile", "-o", str(profile)]
        log = open(self.tmp / f"{uplink}-moneyd.log", "wb")  # noqa: SIM115  (closed with the process)
        cmd = [*pre, *([] if debug else ["-m", "moneyd"]), "-c", str(self.tmp / "moneyd.json"), f"{uplink}:start",
               "--port", str(PORT), *(["--log-level", "debug"] if debug else [])]
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_for_port(PORT, self.proc, timeout=120)
        deadline = time.monotonic() + 120
        while b"moneyd ready" not in (self.tmp / f"{uplink}-moneyd.log").read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"moneyd {uplink}:start did not get ready; see {self.tmp / f'{uplink}-moneyd.log'}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(2)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not (proc.poll() is None and not port_is_free(port)):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"moneyd exited or does not listen on {port} after {timeout}s")
        time.sleep(0.1)


def pay(env: dict[str, str], url: str, amount: int, max_packet: int, via: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "moneyd", "pay", url, str(amount), "--json", "--max-packet-amount",
                          str(max_packet), "--via", via], env=env, capture_output=True, text=True, timeout=600,
                         stdin=subprocess.DEVNULL)
    if out.returncode != 0:
        raise SystemExit(f"moneyd pay failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    r: dict[str, Any] = json.loads(out.stdout)
    return r


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(run: Callable[[], dict[str, Any]], reps: int, pids: dict[str, int]) -> dict[str, Any]:
    """Medians of ``reps`` payments, and the CPU each process in ``pids`` used per packet over all of them."""
    rates, seconds, packets = [], [], []
    cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
    for _ in range(reps):
        r = run()
        rates.append(r["packets"] / r["seconds"])
        seconds.append(r["seconds"])
        packets.append(r["packets"])
    cpu = {name: (cpu_seconds(pid) - cpu0[name]) / sum(packets) * 1e6 for name, pid in pids.items()}
    return {"packets_per_s": statistics.median(rates), "seconds": statistics.median(seconds),
            "packets": statistics.median(packets), "all": rates, "cpu_us": cpu}


def js_receiver(node: NodeRunner, btp_url: str) -> str:
    rx = node.start("spsp-receiver.js", btp_url)
    return str(rx.event_sync("ready", timeout=60)["url"])


def py_receiver(env: dict[str, str], via: str, tmp: Path) -> tuple[subprocess.Popen[str], str]:
    rx = subprocess.Popen([sys.executable, "-m", "moneyd", "receive", "--port", "0", "--json", "--via", via],
                          env=env, stdout=subprocess.PIPE, stderr=open(tmp / "receive.log", "w"), text=True,  # noqa: SIM115
                          stdin=subprocess.DEVNULL)
    assert rx.stdout is not None
    ready = json.loads(rx.stdout.readline())
    if ready.get("event") != "ready":
        raise SystemExit(f"moneyd receive failed: {ready}")
    return rx, str(ready["url"])


def both_ways(m: Moneyd, node: NodeRunner, parent_pid: int, apps_url: Callable[[str], str], amount: int,
              max_packet: int, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    ours = f"btp+ws://127.0.0.1:{PORT}"
    results: dict[str, dict[str, Any]] = {}
    assert m.proc is not None
    pids = {"moneyd": m.proc.pid, "JS parent": parent_pid}
    if "out" in args.directions:
        url = js_receiver(node, apps_url("bob"))
        pay(m.env, url, max_packet, max_packet, ours)  # warm-up: links, first claims, JIT of the JS side
        results["out"] = measure(lambda: pay(m.env, url, amount, max_packet, ours), args.reps, pids)
    if "in" in args.directions:
        rx, url = py_receiver(m.env, ours, m.tmp)
        try:
            pay(m.env, url, max_packet, max_packet, apps_url("carol"))
            results["in"] = measure(lambda: pay(m.env, url, amount, max_packet, apps_url("carol")), args.reps, pids)
        finally:
            rx.terminate()
            rx.wait(10)
    return results


def bench_eth(args: argparse.Namespace, tmp: Path) -> dict[str, dict[str, Any]]:
    from tests.support.ethfixture import _start, stop

    runner, ganache = _start()
    node = NodeRunner()
    m = Moneyd(tmp, {"MONEYD_ETH_PRIVATE_KEY": ganache.keys[ETH_US]})
    try:
        eport, aport = free_port(), free_port()
        # The parent opens a channel of 1 ETH back to us: room for every repetition of the "in" direction.
        parent = node.start("eth-parent-connector.js", str(eport), str(aport), "test.parent", stream_fix=False, env={
            "ETH_URL": ganache.url, "ETH_CONTRACT": ganache.contract_address, "ETH_KEY": ganache.keys[ETH_PARENT],
            "ETH_OUT_GWEI": str(GWEI_PER_ETH)})
        parent.event_sync("ready", timeout=60)
        done = m.cli("eth:configure", "--parent", f"btp+ws://127.0.0.1:{eport}", "--provider", ganache.url,
                     "--contract", ganache.contract_address, "--name", "alice", "--channel-amount", "1ETH")
        if done.returncode != 0:
            raise SystemExit(f"eth:configure failed:\n{done.stderr}")
        m.start("eth", args.profile / "eth.prof" if args.profile else None)
        # 0.01 ETH in --packets packets (10,000 gwei each for 1,000), as issue #11 measures it.
        max_packet = 10**7 // args.packets
        return both_ways(m, node, parent.proc.pid, lambda name: f"btp+ws://:{name}@127.0.0.1:{aport}",
                         max_packet * args.packets, max_packet, args)
    finally:
        m.stop()
        node.stop_all()
        stop(runner)


def bench_xrp(args: argparse.Namespace, tmp: Path) -> dict[str, dict[str, Any]]:
    from xrpl.wallet import Wallet

    from tests.support.xrpl_emulator.server import XrplEmulator

    emu = XrplEmulator(close_interval=0.2).start()
    node = NodeRunner()
    client = Wallet.create()
    assert client.seed is not None
    m = Moneyd(tmp, {"MONEYD_XRP_SECRET": client.seed})
    try:
        server = Wallet.create()
        assert server.seed is not None
        emu.fund(server.address, 1000 * 10**6)
        emu.fund(client.address, 100 * 10**6)
        asym, apps = free_port(), free_port()
        debug = {"DEBUG": "ilp*,-ilp-connector:routing*", "DEBUG_COLORS": "0"} if args.logs else None
        parent = node.start("xrp-parent-connector.js", str(asym), str(apps), emu.url, server.seed, server.address,
                            "1000", env=debug)
        parent.event_sync("ready", timeout=60)
        done = m.cli("xrp:configure", "--parent", f"btp+ws://127.0.0.1:{asym}", "--xrp-server", emu.url,
                     "--name", "alice")
        if done.returncode != 0:
            raise SystemExit(f"xrp:configure failed:\n{done.stderr}")
        m.start("xrp", args.profile / "xrp.prof" if args.profile else None, debug=args.logs is not None)
        max_packet = 10**6  # scale 9: a packet of 0.001 XRP, as tests/uplinks/xrp/test_uplink.py sends them
        return both_ways(m, node, parent.proc.pid, lambda name: f"btp+ws://{name}:secret-{name}@127.0.0.1:{apps}",
                         max_packet * args.packets, max_packet, args)
    finally:
        m.stop()
        node.stop_all()
        emu.stop()
        if args.logs is not None:
            keep_logs(args.logs, "xrp", tmp, {"parent": node.procs[0].stderr if node.procs else []})


def keep_logs(into: Path, uplink: str, tmp: Path, js: dict[str, list[str]]) -> None:
    """Copy moneyd's and `moneyd receive`'s logs and the JS processes' stderr (their DEBUG output) into ``into``."""
    into.mkdir(parents=True, exist_ok=True)
    for name in (f"{uplink}-moneyd.log", "receive.log"):
        if (tmp / name).exists():
            (into / name).write_bytes((tmp / name).read_bytes())
    for name, lines in js.items():
        (into / f"{uplink}-{name}.log").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--uplinks", default="xrp,eth")
    ap.add_argument("--directions", default="out,in")
    ap.add_argument("--packets", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--profile", type=Path, default=None)
    ap.add_argument("--logs", type=Path, default=None,
                    help="run moneyd at debug level and the JS parent with DEBUG=ilp*; keep their logs in this directory")
    args = ap.parse_args()
    args.directions = args.directions.split(",")
    benches = {"xrp": bench_xrp, "eth": bench_eth}
    rows = []
    for name in args.uplinks.split(","):
        with tempfile.TemporaryDirectory(prefix=f"moneyd-bench-{name}-") as tmp:
            t0 = time.monotonic()
            results = benches[name](args, Path(tmp))
            for direction, r in results.items():
                rows.append((name, direction, r))
            print(f"# {name}: set up and ran in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    load = os.getloadavg()
    print(f"STREAM payments of {args.packets} packets, medians of {args.reps} (load average {load[0]:.1f}, "
          f"{os.cpu_count()} cores)")
    print(f"{'uplink':<7}{'direction':<52}{'packets/s':>10}{'seconds':>9}  {'CPU/packet: moneyd, JS parent':<31}all runs")
    labels = {"out": "out: moneyd pay > router > parent > JS receiver", "in": "in: parent's moneyd pay > router > moneyd receive"}
    for name, direction, r in rows:
        runs = ", ".join(f"{x:.0f}" for x in r["all"])
        cpu = f"{r['cpu_us']['moneyd']:.0f} µs, {r['cpu_us']['JS parent']:.0f} µs"
        print(f"{name:<7}{labels[direction]:<52}{r['packets_per_s']:>10.0f}{r['seconds']:>9.2f}  {cpu:<31}{runs}")


if __name__ == "__main__":
    main()
