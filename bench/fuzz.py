"""Fuzz a real ``moneyd local`` with mutated input while a good app keeps pinging through it.

    flock /tmp/moneyd-bench.lock python3 bench/fuzz.py [--inputs 1000000] [--seed 1] [--json]

Input categories (share of the inputs): mutated BTP frames after auth (40%), valid BTP carrying mutated ILP
packets with lying length prefixes and odd fields (37%), odd request ids: unsolicited Responses/Errors, ids 0 and
2^32-1, repeats (10%), wrong or mutated fulfillments and junk Rejects from a receiving app (7%), mutated
WebSocket frames (2%), mutated HTTP upgrade requests (2%), mutated auth frames (2%). The fuzzer runs in its own
process; this one keeps two good apps paying each other every 50 ms (the health probe) and watches the router.

It prints: inputs sent per category, crashes (the router exited), hangs (a health payment failed or took over
5 s), tracebacks and error lines in the router's log, reconnects the router forced, peak RSS and log growth.
tests/attacks/test_fuzz.py runs a few thousand inputs; this script is for the full million.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import random
import re
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.attack import (  # noqa: E402
    REJECT_CODE,
    ROUTER,
    GoodFigures,
    MoneydProcess,
    app,
    bad_handshake,
    open_raw,
    raw_app,
    raw_reject,
    read_frame,
    upgrade_request,
    ws_frame,
)
from moneyd.wire import btp, ilp  # noqa: E402
from moneyd.wire.oer import encode_length  # noqa: E402

SHARES = [("btp", 40), ("ilp", 37), ("ids", 10), ("fulfill", 7), ("ws", 2), ("http", 2), ("auth", 2)]
HANG_S = 5.0
HELD = re.compile(r"\((\d+) more like this not logged\)")
INTERNAL = re.compile(r"internal error|Internal Server Error|Traceback|AssertionError|UnicodeEncodeError|handler failed")
SYNC_EVERY = 200
SYNC_ID_BASE = 0xFFFF0000

# -- mutations --------------------------------------------------------------------------------------------------


def mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 3, 8))):
        op = rng.randrange(7)
        pos = rng.randrange(len(b) + 1)
        if op == 0 and b:
            b[min(pos, len(b) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1 and b:
            b[min(pos, len(b) - 1)] = rng.choice((0, 1, 0x7F, 0x80, 0x81, 0x82, 0xFF, rng.randrange(256)))
        elif op == 2:
            b[pos:pos] = rng.randbytes(rng.randrange(1, 8))
        elif op == 3 and b:
            del b[pos : pos + rng.randrange(1, 8)]
        elif op == 4:
            del b[pos:]
        elif op == 5:
            b[pos:pos] = rng.choice((b"\x84\xff\xff\xff\xff", b"\x82\xff\xff", b"\x80", b"\x7f", b"\x88" + bytes(8)))
        else:
            b += rng.randbytes(rng.randrange(1, 64))
    return bytes(b)


def seed_prepare(rng: random.Random, dest: str) -> ilp.Prepare:
    f = rng.randbytes(32)
    return ilp.Prepare(rng.choice((0, 1, 10**6, 2**64 - 1)), datetime.now(UTC) + timedelta(seconds=rng.choice((-5, 0.5, 10, 3600))),
                       hashlib.sha256(f).digest(), dest, rng.randbytes(rng.choice((0, 8, 100))))


def ilp_input(rng: random.Random, dest: str) -> bytes:
    """An ILP packet as a hostile app writes it: mutated, lying, or odd in one field."""
    kind = rng.randrange(6)
    if kind == 0:
        return mutate(rng, ilp.encode_prepare(seed_prepare(rng, dest)))
    if kind == 1:  # a lying length prefix on the envelope
        body = ilp.encode_prepare(seed_prepare(rng, dest))[2:]
        return bytes((ilp.TYPE_PREPARE,)) + encode_length(max(0, len(body) + rng.choice((-3, -1, 1, 5, 1 << 20)))) + body
    if kind == 2:  # odd destinations
        d = rng.choice(("", ".", "g..x", "private.moneyd.local." + "a" * 1100, "peer.config", "private.moneyd.local.\xff",
                        f"{ROUTER}.local.good-a", f"{ROUTER}", "test.\x00", "self.x"))
        body = ilp.encode_prepare(seed_prepare(rng, "g.x"))
        return body.replace(b"\x03g.x", encode_length(len(d.encode("latin-1"))) + d.encode("latin-1"))
    if kind == 3:
        return mutate(rng, ilp.encode_fulfill(ilp.Fulfill(rng.randbytes(32), rng.randbytes(4))))
    if kind == 4:
        return raw_reject(rng.randbytes(3), rng.randbytes(rng.randrange(20)))
    return rng.randbytes(rng.randrange(0, 80))


def btp_frame(rng: random.Random, dest: str) -> bytes:
    rid = rng.getrandbits(32)
    k = rng.randrange(6)
    pd = (btp.ProtocolData.octets("ilp", ilp.encode_prepare(seed_prepare(rng, dest))),)
    frame: btp.Frame
    if k == 0:
        frame = btp.Message(rid, pd)
    elif k == 1:
        frame = btp.Transfer(rid, rng.choice((0, 1, 2**64 - 1)), pd)
    elif k == 2:
        frame = btp.Response(rid, pd)
    elif k == 3:
        frame = btp.Error(rid, "F00", "NotAcceptedError", datetime.now(UTC), b"x")
    elif k == 4:
        frame = btp.Message(rid, (btp.ProtocolData.text("auth", ""), btp.ProtocolData.text("auth_token", "x")))
    else:
        names = ("ilp", "", "a" * 300, "x\x7f")
        frame = btp.Message(rid, tuple(btp.ProtocolData(rng.choice(names), rng.randrange(3), rng.randbytes(9)) for _ in range(3)))
    return btp.encode_frame(frame)


def odd_ids(rng: random.Random, dest: str) -> bytes:
    rid = rng.choice((0, 1, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, rng.getrandbits(32)))
    kind = rng.randrange(4)
    if kind == 0:
        return btp.encode_frame(btp.Response(rid, ()))
    if kind == 1:
        return btp.encode_frame(btp.Error(rid, rng.choice(("F00", "T00", "F01")), "X", datetime.now(UTC), b""))
    if kind == 2:
        return btp.encode_frame(btp.Message(rid, (btp.ProtocolData.octets("ilp", ilp.encode_prepare(seed_prepare(rng, dest))),)))
    return btp.encode_frame(btp.Response(rid, (btp.ProtocolData.octets("ilp", ilp.encode_fulfill(ilp.Fulfill(bytes(32)))),)))


def ws_input(rng: random.Random) -> bytes:
    """A WebSocket frame broken at the framing level."""
    kind = rng.randrange(8)
    payload = rng.randbytes(rng.randrange(0, 40))
    if kind == 0:
        return bytes((0x80 | rng.choice((3, 4, 5, 6, 7, 11, 12, 13, 14, 15)), 0x80 | len(payload))) + b"\0\0\0\0" + payload
    if kind == 1:  # reserved bits
        return bytes((0x80 | 0x70 | 2, 0x80 | len(payload))) + b"\0\0\0\0" + payload
    if kind == 2:  # unmasked
        return bytes((0x82, len(payload))) + payload
    if kind == 3:  # control frame too long / fragmented ping
        return bytes((0x09, 0x80 | 126)) + (200).to_bytes(2, "big") + b"\0\0\0\0" + bytes(200)
    if kind == 4:  # text frame with invalid UTF-8
        return ws_frame(b"\xff\xfe\xfd" + payload, opcode=1)
    if kind == 5:  # lying 64-bit length
        return bytes((0x82, 0x80 | 127)) + (1 << 62).to_bytes(8, "big") + b"\0\0\0\0" + payload
    if kind == 6:  # a continuation with no start
        return bytes((0x80, 0x80 | len(payload))) + b"\0\0\0\0" + payload
    return mutate(rng, ws_frame(btp.encode_frame(btp.Message(1, ()))))


# -- the fuzzer (child process) -----------------------------------------------------------------------------------


class Session:
    """One authenticated raw connection: sends fuzz frames, drains the router's answers, and every SYNC_EVERY
    inputs waits for the answer to a valid request so the router is never handed unbounded work at once."""

    def __init__(self, port: int, name: str) -> None:
        self.port, self.name = port, name
        self.w: asyncio.StreamWriter | None = None
        self.reader_task: asyncio.Task[None] | None = None
        self.waiting: dict[int, asyncio.Future[None]] = {}
        self.next_sync = SYNC_ID_BASE
        self.reconnects = 0

    async def open(self) -> None:
        r, self.w = await raw_app(self.port, self.name, f"{self.name}-token")
        self.reader_task = asyncio.create_task(self._read(r))

    async def _read(self, r: asyncio.StreamReader) -> None:
        try:
            with contextlib.suppress(Exception):
                while True:
                    op, payload = await read_frame(r)
                    if op == 0x8:  # the router closes the session (say, past its malformed-frame budget)
                        break
                    if len(payload) >= 5:
                        fut = self.waiting.pop(int.from_bytes(payload[1:5], "big"), None)
                        if fut is not None and not fut.done():
                            fut.set_result(None)
        finally:
            # The router closed this session (say, past its malformed-frame budget): a sync waiting on it has its
            # answer now, not after its timeout.
            for fut in self.waiting.values():
                if not fut.done():
                    fut.set_exception(ConnectionResetError("the router closed the session"))

    async def send(self, payload: bytes) -> None:
        if self.w is None or self.w.is_closing() or (self.reader_task is not None and self.reader_task.done()):
            await self.reopen()
        assert self.w is not None
        self.w.write(ws_frame(payload))

    async def reopen(self) -> None:
        await self.close()
        self.reconnects += 1
        await self.open()

    async def sync(self) -> bool:
        """False when the answer did not come in time (the router dropped us, or stalled)."""
        self.next_sync = SYNC_ID_BASE + (self.next_sync + 1 - SYNC_ID_BASE) % 0xFFFF
        rid = self.next_sync
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting[rid] = fut
        try:
            await self.send(btp.encode_frame(btp.Message(rid, (btp.ProtocolData.octets("ilp", ilp.encode_prepare(
                ilp.Prepare(0, datetime.now(UTC) + timedelta(seconds=30), bytes(32), f"{ROUTER}.local.nobody"))),))))
            assert self.w is not None
            await asyncio.wait_for(self.w.drain(), 30)
            await asyncio.wait_for(fut, 30)
            return True
        except (TimeoutError, OSError):
            await self.reopen()
            return False
        finally:
            self.waiting.pop(rid, None)

    async def close(self) -> None:
        if self.w is not None:
            self.w.transport.abort()
        if self.reader_task is not None:
            self.reader_task.cancel()


async def fresh_connection_input(port: int, rng: random.Random, category: str) -> str:
    """http / ws / auth inputs: each on a connection of its own; returns what the router did."""
    try:
        r, w = await asyncio.wait_for(open_raw(port), 5)
    except (OSError, TimeoutError):
        return "connect failed"
    try:
        if category == "http":
            _name, data = bad_handshake(port, rng)
            w.write(mutate(rng, data) if rng.random() < 0.5 else data)
        else:
            w.write(upgrade_request(port))
            await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
            if category == "auth":
                auth = btp.encode_frame(btp.Message(rng.getrandbits(32), (
                    btp.ProtocolData("auth", 0, b""), btp.ProtocolData.text("auth_username", rng.choice(("", "u", "fz"))),
                    btp.ProtocolData.text("auth_token", rng.randbytes(8).hex()),
                )))
                w.write(ws_frame(mutate(rng, auth)))
            else:
                w.write(ws_frame(btp.encode_frame(btp.Message(1, (
                    btp.ProtocolData("auth", 0, b""), btp.ProtocolData.text("auth_username", ""),
                    btp.ProtocolData.text("auth_token", f"ws-fuzz-{rng.randrange(50)}"))))))
                w.write(ws_input(rng))
        data = await asyncio.wait_for(r.read(4096), 3)
        return "answered" if data else "closed"
    except TimeoutError:
        return "no answer"
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return "reset"
    finally:
        w.transport.abort()


async def fuzz(port: int, inputs: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    plan = [name for name, share in SHARES for _ in range(share)]
    counts: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    stalls = 0
    sessions = [Session(port, f"fz{i}") for i in range(4)]
    for s in sessions:
        await s.open()
    dest = f"{ROUTER}.local.fzrecv"

    # The receiving side of the wrong-fulfillment inputs.
    async def liar(frame: btp.Message | btp.Transfer) -> list[btp.ProtocolData]:
        entry = btp.find(frame.protocol_data, "ilp")
        assert entry is not None
        k = rng.randrange(4)
        if k == 0:
            reply = ilp.encode_fulfill(ilp.Fulfill(rng.randbytes(32)))
        elif k == 1:
            reply = mutate(rng, ilp.encode_fulfill(ilp.Fulfill(rng.randbytes(32))))
        elif k == 2:
            reply = raw_reject(rng.randbytes(3), rng.randbytes(rng.randrange(12)))
        else:
            reply = mutate(rng, entry.data)  # the Prepare itself, mangled, as an answer
        return [btp.ProtocolData.octets("ilp", reply)]

    recv, _ = await app(port, "fzrecv", "fzrecv-token", liar)
    sender, _ = await app(port, "fzsend", "fzsend-token")
    in_flight: set[asyncio.Task[Any]] = set()
    side = asyncio.Semaphore(20)
    t0 = time.monotonic()

    async def one_side(category: str) -> None:
        async with side:
            if category == "fulfill":
                f = rng.randbytes(32)
                p = ilp.Prepare(1, datetime.now(UTC) + timedelta(seconds=10), hashlib.sha256(f).digest(), dest, b"")
                try:
                    reply = await sender.send_prepare(p)
                    if not isinstance(reply, ilp.Reject):
                        outcomes["fulfill:FULFILLED?!"] += 1
                    else:
                        outcomes["fulfill:" + (reply.code if REJECT_CODE.match(reply.code) else "junk Reject code passed on")] += 1
                except Exception as e:
                    outcomes[f"fulfill:{type(e).__name__}"] += 1
            else:
                outcomes[f"{category}:{await fresh_connection_input(port, rng, category)}"] += 1

    for i in range(inputs):
        category = plan[rng.randrange(len(plan))]
        counts[category] += 1
        if category in ("fulfill", "ws", "http", "auth"):
            task = asyncio.create_task(one_side(category))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            if len(in_flight) >= 40:
                await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
            continue
        s = sessions[i % len(sessions)]
        payload = btp_frame(rng, dest) if category == "btp" else odd_ids(rng, dest)
        if category == "btp":
            payload = mutate(rng, payload)
        elif category == "ilp":
            payload = btp.encode_frame(btp.Message(rng.getrandbits(32), (btp.ProtocolData.octets("ilp", ilp_input(rng, dest)),)))
        try:
            await s.send(payload)
        except (OSError, RuntimeError, TimeoutError):
            outcomes["session:send failed"] += 1
        if i % SYNC_EVERY == SYNC_EVERY - 1 and not await s.sync():
            stalls += 1
    await asyncio.gather(*in_flight, return_exceptions=True)
    reconnects = sum(s.reconnects for s in sessions)
    for s in sessions:
        await s.close()
    for c in (recv, sender):
        await c.close()
    seconds = time.monotonic() - t0
    return {"inputs": inputs, "seconds": round(seconds, 1), "inputs_per_s": round(inputs / seconds), "categories": dict(counts),
            "outcomes": dict(outcomes), "sync_stalls": stalls, "reconnects": reconnects,
            "fulfilled_wrongly": outcomes.get("fulfill:FULFILLED?!", 0),
            "junk_reject_codes_passed_on": outcomes.get("fulfill:junk Reject code passed on", 0)}


# -- the harness ------------------------------------------------------------------------------------------------


async def health(port: int, figures: GoodFigures, stop: asyncio.Event) -> None:
    from bench.attack import good_traffic

    await good_traffic(port, figures, stop)


async def run_async(inputs: int, seed: int, workdir: Path) -> dict[str, Any]:
    router = MoneydProcess(workdir)
    await asyncio.to_thread(router.start)
    figures = GoodFigures()
    stop = asyncio.Event()
    try:
        probe = asyncio.create_task(health(router.port, figures, stop))
        await asyncio.sleep(0.3)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(Path(__file__).resolve()), "--fuzzer", "--port", str(router.port), "--inputs", str(inputs), "--seed", str(seed),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=str(ROOT),
        )
        out, err = await proc.communicate()
        try:
            result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            result = {"error": f"fuzzer exited {proc.returncode}: {err.decode(errors='replace')[-2000:]}"}
        await asyncio.sleep(0.5)
        stop.set()
        try:
            await asyncio.wait_for(probe, 30)
        except Exception as e:
            figures.errors.append(f"{type(e).__name__}: {e}")
        grown = router.log_growth()
        lines = grown.decode("utf-8", "replace").splitlines()
        result.update(
            crashes=0 if router.alive() else 1,
            hangs=len(figures.errors) + sum(1 for t in figures.latencies if t > HANG_S),
            health_payments=figures.payments,
            health_worst_s=round(max(figures.latencies, default=0.0), 3),
            health_errors=figures.errors[:5],
            tracebacks=grown.count(b"Traceback (most recent call last)"),
            # Tracebacks are cut to one line by moneyd.loglimit, so count what they were about too.
            internal_errors=sum(1 + sum(int(n) for n in HELD.findall(ln)) for ln in lines if INTERNAL.search(ln)),
            error_lines=[ln[:200] for ln in lines if INTERNAL.search(ln)][:10],
            log_growth_bytes=len(grown),
            peak_rss_mb=round(router.status_kb("VmHWM") / 1024, 1),
            account_rows=router.bindings(),
        )
        return result
    finally:
        stop.set()
        await asyncio.to_thread(router.stop)


def run(inputs: int, seed: int = 1) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="moneyd-fuzz-") as d:
        return asyncio.run(run_async(inputs, seed, Path(d)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--inputs", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--fuzzer", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.fuzzer:
        print(json.dumps(asyncio.run(fuzz(args.port, args.inputs, args.seed))))
        return
    load = os.getloadavg()
    print(f"moneyd fuzz: {args.inputs:,} inputs, seed {args.seed}; {os.cpu_count()} cores, load average {load[0]:.1f}", flush=True)
    r = run(args.inputs, args.seed)
    if args.json:
        print(json.dumps(r))
        return
    for k in ("inputs", "seconds", "inputs_per_s", "crashes", "hangs", "tracebacks", "internal_errors", "health_payments", "health_worst_s",
              "sync_stalls", "reconnects", "fulfilled_wrongly", "junk_reject_codes_passed_on", "peak_rss_mb", "log_growth_bytes", "account_rows"):
        print(f"{k:>18}: {r.get(k)}")
    for k in ("categories", "outcomes", "health_errors", "error_lines", "error"):
        if r.get(k):
            print(f"{k:>18}: {json.dumps(r[k])}")


if __name__ == "__main__":
    main()
