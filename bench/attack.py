"""Hostile local apps against a real ``moneyd local``, while two good apps pay each other.

    flock /tmp/moneyd-bench.lock python3 bench/attack.py [--scale 1.0] [--only NAME ...] [--json]

Each scenario of issue 12 starts a fresh ``python -m moneyd local`` on a free 127.0.0.1 port (temp
MONEYD_DATA_DIR, stderr to a file, open-files soft limit 1024 as on a stock system), starts two good apps paying
each other both ways and a prober connecting a fresh app every half second, then runs the attacker in a separate
process (so its CPU does not count against the good apps' latency). It prints, per scenario: the good apps'
payments, errors and worst latency, how many fresh apps connected, the router's peak RSS (/proc VmHWM), how much
its log grew and any tracebacks in it, and the attacker's own figures; then PASS/FAIL against the done-when
figures (no error, no latency above 1 s, fresh apps connect, peak RSS <= 150 MB, log growth <= 1 MB).

Everything is on 127.0.0.1 and bounded in count and time. tests/attacks/test_attacks.py runs the other scenarios scaled
down, and tests/attacks/test_transport_attacks.py the stuck reader and the malformed-frame flood (with the
transport's own limits); this script runs them all at full size (``--scale 1``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import os
import random
import re
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from moneyd.btp import BtpConnection, connect  # noqa: E402
from moneyd.wire import btp, ildcp, ilp  # noqa: E402
from moneyd.wire.address import is_valid_address  # noqa: E402
from moneyd.wire.oer import encode_length, encode_var_octets  # noqa: E402

ROUTER = "private.moneyd"
ROUTER_NOFILE = 1024  # the soft limit of a stock system: the router must raise it itself

# Done-when figures (issue 12).
MAX_LATENCY_S = 1.0
MAX_RSS_MB = 150.0
MAX_LOG_GROWTH = 1 << 20

# -- the router process ------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _limit_nofile() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(ROUTER_NOFILE, hard), hard))


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class MoneydProcess:
    """``python -m moneyd local`` on a free port with its own data dir; stderr goes to a file we measure."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.data_dir = workdir / "data"
        self.log_path = workdir / "moneyd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_start = 0

    def start(self, timeout: float = 30.0) -> None:
        env = dict(os.environ, MONEYD_DATA_DIR=str(self.data_dir), PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moneyd", "local", "--port", str(self.port)],
            cwd=self.workdir, env=env, stdout=subprocess.PIPE, stderr=self._log, preexec_fn=_limit_nofile,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        os.set_blocking(self.proc.stdout.fileno(), False)
        seen = b""
        while b"moneyd ready" not in seen:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"moneyd did not start: {seen!r} {self.log_path.read_bytes()[-2000:]!r}")
            chunk = self.proc.stdout.read(4096)
            seen += chunk or b""
            time.sleep(0.02)
        self.log_start = self.log_path.stat().st_size

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def status_kb(self, field_name: str) -> int:
        try:
            text = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return 0
        m = re.search(rf"^{field_name}:\s+(\d+) kB", text, re.M)
        return int(m.group(1)) if m else 0

    def log_growth(self) -> bytes:
        with open(self.log_path, "rb") as f:
            f.seek(self.log_start)
            return f.read()

    def bindings(self) -> int:
        """Rows in the account-binding table (read-only, beside the running router)."""
        db = sqlite3.connect(f"file:{self.data_dir / 'moneyd.sqlite'}?mode=ro", uri=True, timeout=5)
        try:
            return int(db.execute("SELECT COUNT(*) FROM account_tokens").fetchone()[0])
        finally:
            db.close()

    def stop(self) -> int | None:
        code = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(15)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            code = self.proc.returncode
            if self.proc.stdout is not None:
                self.proc.stdout.close()
        with contextlib.suppress(AttributeError):
            self._log.close()
        return code


# -- packets ------------------------------------------------------------------------------------------------------


def prepare_to(dest: str, amount: int = 1, seconds: float = 10.0, data: bytes = b"") -> tuple[ilp.Prepare, bytes]:
    f = os.urandom(32)
    return ilp.Prepare(amount, datetime.now(UTC) + timedelta(seconds=seconds), hashlib.sha256(f).digest(), dest, data), f


def prepare_of(frame: btp.Message | btp.Transfer) -> ilp.Prepare:
    entry = btp.find(frame.protocol_data, "ilp")
    assert entry is not None
    return ilp.decode_prepare(entry.data)


async def fulfiller(frame: btp.Message | btp.Transfer) -> list[btp.ProtocolData]:
    """Good apps' receivers: the fulfillment rides in the Prepare's data (as in tests/router/test_hostile.py)."""
    p = prepare_of(frame)
    return [btp.ProtocolData.octets("ilp", ilp.encode_fulfill(ilp.Fulfill(p.data[:32])))]


async def never_answers(frame: btp.Message | btp.Transfer) -> list[btp.ProtocolData]:
    await asyncio.sleep(3600)
    return []


def raw_reject(code: bytes, triggered_by: bytes, message: bytes = b"junk") -> bytes:
    """A Reject with whatever bytes an app puts in it (our encoder refuses such codes)."""
    body = code + encode_var_octets(triggered_by) + encode_var_octets(message) + encode_var_octets(b"")
    return bytes((ilp.TYPE_REJECT,)) + encode_length(len(body)) + body


def btp_url(port: int, user: str, token: str) -> str:
    return f"btp+ws://{user}:{token}@127.0.0.1:{port}"


async def app(port: int, user: str, token: str, handler: Any = None, timeout: float = 10.0) -> tuple[BtpConnection, str]:
    conn, _reader = await connect(btp_url(port, user, token), handler, timeout=timeout)
    info = await conn.send_prepare(ildcp.request(), timeout=timeout)
    assert isinstance(info, ilp.Fulfill), info
    return conn, ildcp.parse_fulfill(info).client_address


# -- a raw WebSocket client: handshakes and frames as a hostile app writes them -----------------------------------


def ws_frame(payload: bytes, opcode: int = 2) -> bytes:
    """A masked client frame (all-zero mask key: valid, and no per-byte work)."""
    n = len(payload)
    head = bytes((0x80 | opcode,))
    if n < 126:
        head += bytes((0x80 | n,))
    elif n < 1 << 16:
        head += bytes((0x80 | 126,)) + n.to_bytes(2, "big")
    else:
        head += bytes((0x80 | 127,)) + n.to_bytes(8, "big")
    return head + b"\0\0\0\0" + payload


def upgrade_request(port: int, extra: str = "", key: str | None = None) -> bytes:
    key = key or base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    ).encode()


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(await reader.readexactly(2), "big")
    elif n == 127:
        n = int.from_bytes(await reader.readexactly(8), "big")
    return b0 & 0x0F, await reader.readexactly(n)


async def open_raw(port: int, rcvbuf: int | None = None) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return await asyncio.open_connection(sock=sock)


async def raw_app(port: int, user: str, token: str, rcvbuf: int | None = None) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Handshake and BTP auth by hand; afterwards the caller may simply never read again."""
    reader, writer = await open_raw(port, rcvbuf)
    writer.write(upgrade_request(port))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"handshake refused: {head[:60]!r}")
    auth = btp.encode_frame(btp.Message(1, (
        btp.ProtocolData("auth", 0, b""), btp.ProtocolData.text("auth_username", user), btp.ProtocolData.text("auth_token", token),
    )))
    writer.write(ws_frame(auth))
    _op, payload = await asyncio.wait_for(read_frame(reader), 10)
    frame = btp.decode_frame(payload)
    if not isinstance(frame, btp.Response):
        raise RuntimeError(f"auth refused: {frame}")
    return reader, writer


# -- the good apps and the prober (in the harness process) -----------------------------------------------------


@dataclass
class GoodFigures:
    payments: int = 0
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    fresh_ok: int = 0
    fresh_failed: list[str] = field(default_factory=list)
    fresh_worst_s: float = 0.0


async def good_traffic(port: int, figures: GoodFigures, stop: asyncio.Event) -> None:
    a, addr_a = await app(port, "good-a", "good-a-token", fulfiller)
    b, addr_b = await app(port, "good-b", "good-b-token", fulfiller)

    async def pay(src: BtpConnection, dest: str) -> None:
        f = os.urandom(32)
        p = ilp.Prepare(1, datetime.now(UTC) + timedelta(seconds=10), hashlib.sha256(f).digest(), dest, f)
        t0 = time.monotonic()
        try:
            reply = await src.send_prepare(p)
        except Exception as e:
            figures.errors.append(f"{type(e).__name__}: {e}"[:200])
            return
        finally:
            figures.latencies.append(time.monotonic() - t0)
        figures.payments += 1
        if reply != ilp.Fulfill(f):
            figures.errors.append(repr(reply)[:200])

    async def loop(src: BtpConnection, dest: str) -> None:
        while not stop.is_set():
            await pay(src, dest)
            await asyncio.sleep(0.05)

    # Both are bound (and warm) before any attack starts.
    await pay(a, addr_b)
    await pay(b, addr_a)
    figures.latencies.clear()
    try:
        await asyncio.gather(loop(a, addr_b), loop(b, addr_a))
    finally:
        for c in (a, b):
            await c.close()


async def fresh_prober(port: int, figures: GoodFigures, stop: asyncio.Event) -> None:
    """A new app (fresh token) connects and asks ILDCP every half second."""
    i = 0
    while True:
        i += 1
        t0 = time.monotonic()
        try:
            conn, _ = await app(port, "", f"fresh-{os.getpid()}-{i}-{os.urandom(4).hex()}", timeout=5.0)
            await conn.close()
            figures.fresh_ok += 1
        except Exception as e:
            figures.fresh_failed.append(f"{type(e).__name__}: {e}"[:200])
        figures.fresh_worst_s = max(figures.fresh_worst_s, time.monotonic() - t0)
        if stop.is_set():
            return  # one last probe after the attack ended
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


# -- the attacks (each runs in its own process: ``python bench/attack.py --attacker NAME``) -----------------------

Attack = Callable[[int, float], Awaitable[dict[str, Any]]]


async def stuck_reader(port: int, scale: float) -> dict[str, Any]:
    """An app stops reading while another sends it 2,000 Prepares of 4 KB expiring in 10 s: every one must be
    answered by its expiry (issue 12, item 1)."""
    # 2,000 x 4 KB at full size; scaled down, fewer but bigger Prepares, so they still overflow the socket buffers.
    n, expiry = max(400, int(2000 * scale)), 10.0 if scale >= 0.5 else 5.0
    size = 4096 if scale >= 0.5 else 24_000
    _r, stuck_w = await raw_app(port, "stuck", "stuck-token", rcvbuf=4096)
    sender, _ = await app(port, "stuck-sender", "stuck-sender-token")
    dest = f"{ROUTER}.local.stuck"
    start = time.monotonic()
    late: list[float] = []

    async def one() -> str:
        p, _f = prepare_to(dest, seconds=expiry, data=os.urandom(size))
        try:
            reply = await sender.send_prepare(p, timeout=expiry + 3)
        except TimeoutError:
            return "unanswered"
        except Exception as e:
            return type(e).__name__
        t = time.monotonic() - start
        if t > expiry + 1.0:  # answered, but after the sender's expiry (1 s of slack for a busy machine)
            late.append(t)
            return "late"
        return reply.code if isinstance(reply, ilp.Reject) else "fulfilled"

    codes = Counter(await asyncio.gather(*(one() for _ in range(n))))
    # Did the router cut the stuck socket? Writes fail once it has.
    disconnected = False
    for _ in range(20):
        try:
            stuck_w.write(ws_frame(b"", opcode=9))
            await asyncio.wait_for(stuck_w.drain(), 0.5)
        except (OSError, TimeoutError):
            disconnected = True
            break
        await asyncio.sleep(0.25)
    stuck_w.transport.abort()
    await sender.close()
    unanswered = codes.get("unanswered", 0) + codes.get("late", 0)
    return {"prepares": n, "bytes_each": size, "expiry_s": expiry, "codes": dict(codes), "worst_late_s": max(late, default=0.0),
            "stuck_socket_closed": disconnected, "ok": unanswered == 0}


def malformed_btp(rng: random.Random) -> bytes:
    kind = rng.randrange(4)
    rid = rng.getrandbits(32).to_bytes(4, "big")
    if kind == 0:
        return b"\x06" + rid + b"\x05garbage"  # body shorter than its length
    if kind == 1:
        return bytes((rng.randrange(256),)) + rid + rng.randbytes(rng.randrange(0, 40))
    if kind == 2:
        return b"\x06" + rid + b"\x03\x01\x01"  # protocol data count, then nothing
    return b"\x06" + rid + b"\x84\xff\xff\xff\xff"  # a lying length prefix


async def frame_flood(port: int, scale: float) -> dict[str, Any]:
    """An app that never reads sends malformed frames as fast as it can (issue 12, item 2): the router must cut it
    off rather than queue a reply, a task and a log line for each. ("throttled": our writes stalled, which may only
    mean the router is too busy to read.)"""
    seconds = max(4.0, 30.0 * scale)
    rng = random.Random(12)
    _r, w = await raw_app(port, "flooder", "flooder-token", rcvbuf=4096)
    sent = 0
    disconnected = throttled = False
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        batch = b"".join(ws_frame(malformed_btp(rng)) for _ in range(200))
        try:
            w.write(batch)
            await asyncio.wait_for(w.drain(), 2.0)
        except TimeoutError:
            throttled = True  # the router stopped reading us: our buffer is full
            with contextlib.suppress(TimeoutError, OSError):
                await asyncio.wait_for(w.drain(), max(0.1, end - time.monotonic()))
            continue
        except OSError:
            disconnected = True
            break
        sent += 200
    w.transport.abort()
    return {"seconds": seconds, "frames_sent": sent, "disconnected": disconnected, "throttled": throttled,
            "ok": disconnected}


async def inflight_flood(port: int, scale: float) -> dict[str, Any]:
    """100,000 Prepares toward a sink that never answers (issue 12, item 3): beyond the per-app cap they are
    refused at once, and what is held is bounded."""
    n, expiry = max(2000, int(100_000 * scale)), 30.0 if scale >= 0.5 else 4.0
    sink, sink_addr = await app(port, "sink", "sink-token", never_answers)
    sender, _ = await app(port, "hog", "hog-token")
    window = asyncio.Semaphore(5000)
    t0 = time.monotonic()
    quick = 0

    async def one() -> str:
        nonlocal quick
        async with window:
            p, _f = prepare_to(sink_addr, seconds=expiry)
            s = time.monotonic()
            try:
                reply = await sender.send_prepare(p, timeout=expiry + 10)
            except Exception as e:
                return type(e).__name__
            if time.monotonic() - s < 1.0:
                quick += 1
            return reply.code if isinstance(reply, ilp.Reject) else "fulfilled"

    codes = Counter(await asyncio.gather(*(one() for _ in range(n))))
    for c in (sink, sender):
        await c.close()
    held = n - codes.get("T05", 0) - codes.get("T04", 0)
    return {"prepares": n, "expiry_s": expiry, "codes": dict(codes), "held_by_router": held, "answered_within_1s": quick,
            "seconds": round(time.monotonic() - t0, 1), "ok": codes.get("T05", 0) > 0 and set(codes) <= {"T05", "T04", "R00"}}


def bad_handshake(port: int, rng: random.Random) -> tuple[str, bytes]:
    kinds: list[tuple[str, Callable[[], bytes]]] = [
        ("garbage", lambda: rng.randbytes(rng.randrange(1, 400))),
        ("no upgrade", lambda: f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()),
        ("two origins", lambda: upgrade_request(port, "Origin: http://a.example\r\nOrigin: http://b.example\r\n")),
        ("bad key", lambda: upgrade_request(port, key="not base64!!")),
        ("bad version", lambda: upgrade_request(port).replace(b"Version: 13", b"Version: 99")),
        ("non-ascii header", lambda: upgrade_request(port, "X-Junk: \xff\xfe\u00e9\r\n").replace(b"\xc3", b"\xff")),
        ("huge header", lambda: upgrade_request(port, f"X-Big: {'a' * 20000}\r\n")),
        ("no host", lambda: upgrade_request(port).replace(f"Host: 127.0.0.1:{port}\r\n".encode(), b"")),
        ("post", lambda: upgrade_request(port).replace(b"GET", b"POST")),
        ("no colon", lambda: upgrade_request(port, "this header has no colon\r\n")),
        ("http/1.0", lambda: upgrade_request(port).replace(b"HTTP/1.1", b"HTTP/1.0")),
        ("bad origin", lambda: upgrade_request(port, "Origin: https://evil.example\r\n")),
        ("null bytes", lambda: upgrade_request(port, "X-Null: a\0b\r\n")),
        ("truncated", lambda: upgrade_request(port)[: rng.randrange(1, 60)]),
        ("connection keep-alive", lambda: upgrade_request(port).replace(b"Connection: Upgrade", b"Connection: keep-alive")),
    ]
    name, make = kinds[rng.randrange(len(kinds))]
    return name, make()


async def handshakes(port: int, scale: float) -> dict[str, Any]:
    """1,100 half-open connections held while 3,000 malformed handshakes arrive (issue 12, item 4): no 5xx, and
    fresh apps still connect (the harness probes) under a 1,024 open-files soft limit."""
    raise_nofile()
    n_bad, n_half, hold = max(200, int(3000 * scale)), 1100, 8.0 if scale >= 0.5 else 5.0
    rng = random.Random(4)
    statuses: Counter[str] = Counter()
    by_kind: dict[str, Counter[str]] = {}
    work = asyncio.Semaphore(50)

    async def one() -> None:
        name, data = bad_handshake(port, rng)
        async with work:
            try:
                r, w = await asyncio.wait_for(open_raw(port), 5)
            except (OSError, TimeoutError):
                statuses["connect failed"] += 1
                return
            try:
                w.write(data)
                if name == "truncated":
                    w.write_eof()
                line = await asyncio.wait_for(r.readline(), 3)
                status = line.split(b" ")[1].decode("ascii", "replace") if line.startswith(b"HTTP/") else ("closed" if not line else "junk")
            except TimeoutError:
                status = "timeout"
            except (OSError, IndexError, ValueError):
                status = "reset"
            finally:
                w.transport.abort()
            statuses[status] += 1
            by_kind.setdefault(name, Counter())[status] += 1

    # First the malformed handshakes (each must get a 4xx or a close, never a 5xx), then the half-open ones held
    # while the harness's prober keeps connecting fresh apps.
    await asyncio.gather(*(one() for _ in range(n_bad)))
    half: list[asyncio.StreamWriter] = []
    half_failed = 0
    for _ in range(n_half):
        try:
            _r, w = await asyncio.wait_for(open_raw(port), 5)
            w.write(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode())  # and never the rest
            half.append(w)
        except (OSError, TimeoutError):
            half_failed += 1
    await asyncio.sleep(hold)
    for w in half:
        w.transport.abort()
    five_xx = {k: dict(v) for k, v in by_kind.items() if any(s.startswith("5") for s in v)}
    return {"malformed": n_bad, "half_open": len(half), "half_open_failed": half_failed, "statuses": dict(statuses),
            "kinds_with_5xx": five_xx, "ok": not five_xx}


async def fresh_tokens(port: int, scale: float) -> dict[str, Any]:
    """3,000 apps with fresh tokens connect, ask ILDCP and leave (issue 12, item 5): none of them may cost a
    durable row."""
    n = max(100, int(3000 * scale))
    work = asyncio.Semaphore(20)
    results: Counter[str] = Counter()

    async def one(i: int) -> None:
        async with work:
            try:
                conn, _ = await app(port, "", f"attacker-{i}-{os.urandom(6).hex()}")
                await conn.close()
                results["connected"] += 1
            except Exception as e:
                results[type(e).__name__] += 1

    await asyncio.gather(*(one(i) for i in range(n)))
    return {"apps": n, "results": dict(results), "ok": True}


JUNK = [(b"\x0e99", b"private.moneyd.local.junk"), (b"F9\r", b"private.moneyd.local.junk"), (b"ZZZ", b"private.moneyd.local.junk"),
        (b"F02", b"not an address!"), (b"T00", b"\xff\xfe"), (b"\x00\x00\x00", b"")]
REJECT_CODE = re.compile(r"\A[FTR][0-9]{2}\Z")


async def junk_reject(port: int, scale: float) -> dict[str, Any]:
    """An app answers with Rejects whose code or triggeredBy is junk (issue 12, item 6): the sender must only
    ever see proper codes and addresses."""
    n = max(60, int(600 * scale))
    picks = iter(range(1 << 30))

    async def junk(frame: btp.Message | btp.Transfer) -> list[btp.ProtocolData]:
        code, by = JUNK[next(picks) % len(JUNK)]
        return [btp.ProtocolData.octets("ilp", raw_reject(code, by))]

    j, addr = await app(port, "junk", "junk-token", junk)
    sender, _ = await app(port, "junk-sender", "junk-sender-token")
    bad: Counter[str] = Counter()
    for _ in range(n):
        p, _f = prepare_to(addr)
        try:
            reply = await sender.send_prepare(p)
        except Exception as e:  # our own strict decoder refusing what the router passed on
            bad[f"undecodable: {str(e)[:60]}"] += 1
            continue
        if not isinstance(reply, ilp.Reject):
            bad["fulfilled?"] += 1
        elif not REJECT_CODE.match(reply.code) or not (reply.triggered_by == "" or is_valid_address(reply.triggered_by)):
            bad[repr((reply.code, reply.triggered_by))] += 1
    for c in (j, sender):
        await c.close()
    return {"rejects": n, "bad_seen_by_sender": dict(bad), "ok": not bad}


SCENARIOS: dict[str, Attack] = {
    "stuck_reader": stuck_reader,
    "frame_flood": frame_flood,
    "inflight_flood": inflight_flood,
    "handshakes": handshakes,
    "fresh_tokens": fresh_tokens,
    "junk_reject": junk_reject,
}


# -- one scenario end to end --------------------------------------------------------------------------------------


@dataclass
class Report:
    scenario: str
    scale: float
    good_payments: int
    good_errors: list[str]
    worst_latency_s: float
    p50_latency_ms: float
    fresh_ok: int
    fresh_failed: list[str]
    fresh_worst_s: float
    peak_rss_mb: float
    log_growth_bytes: int
    tracebacks_in_log: int
    router_alive: bool
    bindings: int
    attack: dict[str, Any]
    log_tail: str = ""

    def failures(self) -> list[str]:
        out = []
        if self.good_errors:
            out.append(f"good apps saw {len(self.good_errors)} errors")
        if self.worst_latency_s > MAX_LATENCY_S:
            out.append(f"good apps waited up to {self.worst_latency_s:.2f} s")
        if self.fresh_failed or self.fresh_ok == 0:
            out.append(f"{len(self.fresh_failed)} fresh apps could not connect")
        if self.peak_rss_mb > MAX_RSS_MB:
            out.append(f"peak RSS {self.peak_rss_mb:.0f} MB")
        if self.log_growth_bytes > MAX_LOG_GROWTH:
            out.append(f"log grew {self.log_growth_bytes / 1e6:.1f} MB")
        if self.tracebacks_in_log:
            out.append(f"{self.tracebacks_in_log} tracebacks in the log")
        if not self.router_alive:
            out.append("the router died")
        if not self.attack.get("ok", False):
            out.append("the attack's own check failed")
        return out


async def run_attacker(name: str, port: int, scale: float, timeout: float) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(Path(__file__).resolve()), "--attacker", name, "--port", str(port), "--scale", str(scale),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=str(ROOT),
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return {"ok": False, "error": f"the attacker did not finish in {timeout:.0f} s"}
    try:
        result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
        return result
    except (ValueError, IndexError):
        return {"ok": False, "error": f"attacker exited {proc.returncode}: {err.decode(errors='replace')[-1500:]}"}


async def run_scenario_async(name: str, scale: float, workdir: Path, attacker_timeout: float = 300.0) -> Report:
    router = MoneydProcess(workdir)
    await asyncio.to_thread(router.start)
    figures = GoodFigures()
    stop = asyncio.Event()
    try:
        good = asyncio.create_task(good_traffic(router.port, figures, stop))
        await asyncio.sleep(0.5)
        prober = asyncio.create_task(fresh_prober(router.port, figures, stop))
        attack = await run_attacker(name, router.port, scale, attacker_timeout)
        await asyncio.sleep(1.0)  # the good apps go on a little after the attack
        stop.set()
        for t in (good, prober):
            try:
                await asyncio.wait_for(t, 30)
            except Exception as e:
                figures.errors.append(f"{type(e).__name__}: {e}"[:200])
        grown = router.log_growth()
        lat = sorted(figures.latencies) or [0.0]
        return Report(
            scenario=name, scale=scale, good_payments=figures.payments, good_errors=figures.errors[:20],
            worst_latency_s=round(lat[-1], 3), p50_latency_ms=round(1000 * lat[len(lat) // 2], 2),
            fresh_ok=figures.fresh_ok, fresh_failed=figures.fresh_failed[:10], fresh_worst_s=round(figures.fresh_worst_s, 2),
            peak_rss_mb=round(router.status_kb("VmHWM") / 1024, 1), log_growth_bytes=len(grown),
            tracebacks_in_log=grown.count(b"Traceback (most recent call last)"), router_alive=router.alive(),
            bindings=router.bindings(), attack=attack, log_tail=grown[-1500:].decode("utf-8", "replace"),
        )
    finally:
        stop.set()
        await asyncio.to_thread(router.stop)


def run_scenario(name: str, scale: float, workdir: Path | None = None) -> Report:
    if workdir is not None:
        return asyncio.run(run_scenario_async(name, scale, workdir))
    with tempfile.TemporaryDirectory(prefix=f"moneyd-attack-{name}-") as d:
        return asyncio.run(run_scenario_async(name, scale, Path(d)))


def print_report(r: Report) -> None:
    fails = r.failures()
    print(f"== {r.scenario} (scale {r.scale}): {'PASS' if not fails else 'FAIL: ' + '; '.join(fails)}")
    print(f"   good apps: {r.good_payments} payments, {len(r.good_errors)} errors, worst {r.worst_latency_s:.3f} s, p50 {r.p50_latency_ms:.2f} ms")
    print(f"   fresh apps: {r.fresh_ok} connected, {len(r.fresh_failed)} failed, slowest {r.fresh_worst_s:.2f} s")
    print(f"   router: peak RSS {r.peak_rss_mb:.1f} MB, log +{r.log_growth_bytes:,} bytes, {r.tracebacks_in_log} tracebacks, "
          f"alive {r.router_alive}, {r.bindings} account rows")
    print(f"   attack: {json.dumps(r.attack)[:1500]}")
    for e in r.good_errors[:3] + r.fresh_failed[:3]:
        print(f"   e.g. {e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--only", nargs="*", choices=sorted(SCENARIOS))
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--attacker", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.attacker:
        result = asyncio.run(SCENARIOS[args.attacker](args.port, args.scale))
        print(json.dumps(result))
        return
    load = os.getloadavg()
    print(f"moneyd attack bench: {os.cpu_count()} cores, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    reports = []
    for name in args.only or list(SCENARIOS):
        r = run_scenario(name, args.scale)
        reports.append(r)
        if args.json:
            print(json.dumps(asdict(r)))
        else:
            print_report(r)
    bad = [r.scenario for r in reports if r.failures()]
    print(f"{len(reports) - len(bad)}/{len(reports)} scenarios pass" + (f"; failing: {', '.join(bad)}" if bad else ""))


if __name__ == "__main__":
    main()
