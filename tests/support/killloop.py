"""Kill loops: `moneyd xrp:start` / `eth:start` under their JS parents, killed with SIGKILL at random moments while
money flows both ways (during payments, during a top-up, during startup), restarted each time; then the parent's
books and ours are compared claim by claim and unit by unit. Used by bench/killloop.py (20 kills) and
tests/attacks/test_killloop.py (a few kills).

XRP: ilp-connector + ilp-plugin-xrp-asym-server 1.8.1 on the XRPL emulator (tests/js/xrp-parent-connector.js).
ETH: ilp-connector + ilp-plugin-ethereum 3.0.0-beta.20 on ganache (tests/js/eth-parent-connector.js).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.jsnode import JS_DIR, NodeProcess, NodeRunner, free_port

XRP_DROPS = 1_000_000
GWEI = 10**9


@dataclass
class Report:
    uplink: str
    kills: list[str] = field(default_factory=list)  # the phase each kill hit
    resumed: int = 0  # restarts after which a payment went through each way at the first try
    restarts: int = 0  # restarts that got that far (not themselves killed during startup)
    acked_claims: int = 0  # claims the parent sent us and we acknowledged
    lost_claims: int = 0  # acknowledged claims above what we had stored after the kill
    our_claims_checked: int = 0  # claims of ours the parent took
    unstored_our_claims: int = 0  # claims of ours the parent took that were above what we had stored
    topups_announced: int = 0  # top-ups done while moneyd was down, then announced at its start
    reconciled: int = 0  # starts at which the parent's credit differed from our count (log lines)
    final: dict[str, Any] = field(default_factory=dict)
    disagreement: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def ok(self) -> bool:
        return (not self.errors and self.lost_claims == 0 and self.unstored_our_claims == 0
                and all(v == 0 for v in self.disagreement.values()) and self.resumed == self.restarts > 0)

    def lines(self) -> list[str]:
        phases = {p: self.kills.count(p) for p in dict.fromkeys(self.kills)}
        return [
            f"{self.uplink}: {len(self.kills)} kills ({', '.join(f'{n} {p}' for p, n in phases.items())}) in {self.seconds:.0f} s",
            f"  payments resumed both ways, at the first try, after {self.resumed}/{self.restarts} restarts "
            "(the others were killed again during startup)",
            f"  claims from the parent acknowledged: {self.acked_claims}, lost: {self.lost_claims}",
            f"  claims of ours the parent took: {self.our_claims_checked or 'not reported by this parent'}, above what we had stored: {self.unstored_our_claims}",
            f"  top-ups made while down and announced at start: {self.topups_announced}",
            f"  starts where the parent's credit differed from our count (reconciled): {self.reconciled}",
            f"  final books: {json.dumps(self.final, sort_keys=True)}",
            f"  disagreement (units): {json.dumps(self.disagreement, sort_keys=True)}",
            *(f"  error: {e}" for e in self.errors),
        ]


class Moneyd:
    """One `moneyd NAME:start` process; stderr is kept."""

    def __init__(self, args: list[str], env: dict[str, str], port: int) -> None:
        self.port = port
        self.proc = subprocess.Popen([sys.executable, "-m", "moneyd", *args, "--port", str(port)], env=env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.err: list[str] = []
        self.out: list[str] = []
        self._threads = [asyncio.get_running_loop().run_in_executor(None, self._pump, self.proc.stderr, self.err),
                         asyncio.get_running_loop().run_in_executor(None, self._pump, self.proc.stdout, self.out)]

    @staticmethod
    def _pump(stream: Any, sink: list[str]) -> None:
        for line in iter(stream.readline, ""):
            sink.append(line.rstrip("\n"))

    async def ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while not any(line.startswith("moneyd ready") for line in self.out):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("moneyd did not start:\n" + "\n".join(self.err[-30:]))
            await asyncio.sleep(0.02)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    async def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        code = await asyncio.to_thread(self.proc.wait, 90)
        await asyncio.gather(*self._threads)
        return code


class Loop:
    """What differs between the uplinks; the loop itself is ``run``."""

    name = ""
    account = ""  # our account name at the parent

    def __init__(self, tmp: Path, node: NodeRunner, rng: random.Random) -> None:
        self.tmp, self.node, self.rng = tmp, node, rng
        self.parent: NodeProcess | None = None
        self.apps_port = 0

    async def setup(self) -> None: ...
    def stored_best(self) -> int: raise NotImplementedError  # our best incoming claim, as the parent's events count it
    def stored_sent(self) -> int: raise NotImplementedError  # our latest claim, as the parent's events count it
    def acked(self) -> list[int]: raise NotImplementedError
    def taken(self) -> list[int]: raise NotImplementedError
    async def parent_holds(self) -> int: raise NotImplementedError  # our latest claim, as the parent holds it
    async def channel_value(self) -> int: raise NotImplementedError
    async def topup_while_down(self) -> bool: return False
    async def announced(self, m: Moneyd) -> bool: raise NotImplementedError
    async def compare_live(self, m: Moneyd) -> tuple[dict[str, Any], dict[str, int]]: raise NotImplementedError
    async def settled(self) -> bool: raise NotImplementedError  # the last claims both ways have arrived and are stored
    out_amount = 0
    out_packet = 0
    back_amount = 0
    back_packet = 0
    ping = 1000

    env: dict[str, str]  # set by setup: the data directory and the uplink's secret

    def start_moneyd(self) -> Moneyd:
        return Moneyd(["-c", str(self.tmp / "moneyd.json"), f"{self.name}:start"], self.env, free_port())

    async def cli(self, *args: str) -> bool:
        """``moneyd -c moneyd.json ARGS`` run to its end (a top-up while moneyd is down); whether it succeeded."""
        r = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "moneyd", "-c", str(self.tmp / "moneyd.json"), *args],
                                    env=self.env, capture_output=True, text=True, timeout=120)
        return r.returncode == 0

    def stored(self) -> dict[str, Any]:
        """The uplink's state as moneyd stored it (its row in the store's kv table); {} before there is one."""
        path = self.tmp / "data" / "moneyd.sqlite"
        if not path.exists():
            return {}
        db = sqlite3.connect(path)
        try:
            rows = db.execute("SELECT value FROM kv WHERE namespace=?", (self.name,)).fetchall()
        except sqlite3.OperationalError:  # killed before the schema was written
            return {}
        finally:
            db.close()
        return json.loads(rows[0][0]) if rows else {}

    async def pair(self, sender: str, receiver: str) -> NodeProcess:
        p = self.node.start("app-pair.js", sender, receiver)
        await p.event("ready", timeout=30)
        return p

    def here(self, m: Moneyd, who: str) -> str:
        return f"btp+ws://:{who}@127.0.0.1:{m.port}"

    def there(self, who: str) -> str:
        return f"btp+ws://{who}:{who}@127.0.0.1:{self.apps_port}"


async def _ping(p: NodeProcess, amount: int, failures: list[str] | None = None) -> bool:
    p.send({"cmd": "ping", "amount": amount})
    e = await p.event("ping", timeout=30)
    if not e.get("ok") and failures is not None:
        failures.append(json.dumps(e))
    return bool(e.get("ok"))


async def run(loop: Loop, kills: int, report: Report, log: Callable[[str], None] = lambda _: None) -> Report:
    """``kills`` rounds, each ending in a SIGKILL: a few during startup, a few right after our channel grew on the
    ledger (a top-up), the rest at random moments of payments both ways; once, a top-up made while moneyd is down.
    Every start after a kill must pay both ways at the first try. Then a last start, and the books compared."""
    t0 = time.monotonic()
    await loop.setup()
    rng = loop.rng
    plan = ["payments"] * kills
    slots = list(range(kills))
    rng.shuffle(slots)
    n_start, n_topup = max(1, kills // 5), max(1, kills // 5)
    for i in slots[:n_start]:
        plan[i] = "startup"
    for i in slots[n_start:n_start + n_topup]:
        plan[i] = "topup"
    down_topup = next((i for i in slots[n_start + n_topup:] if i < kills - 1), kills - 1)
    pending_announce = False
    try:
        for k in range(kills + 1):
            phase = plan[k] if k < kills else "final"
            m = loop.start_moneyd()
            if phase == "startup":
                await asyncio.sleep(rng.uniform(0.2, 2.0))
                started = any(line.startswith("moneyd ready") for line in m.out)
                m.kill()
                report.kills.append("startup (just after ready)" if started else "startup")
                log(f"kill {k + 1}: {report.kills[-1]}")
                await _check_claims(loop, report)
                continue
            await m.ready()
            report.reconciled += sum("taking the parent's figure" in line for line in m.err)
            if pending_announce:
                if await loop.announced(m):
                    report.topups_announced += 1
                else:
                    report.errors.append(f"start {k + 1}: the top-up made while moneyd was down was not announced")
                pending_announce = False
            out = await loop.pair(loop.here(m, f"a{k}"), loop.there(f"b{k}"))
            back = await loop.pair(loop.there(f"c{k}"), loop.here(m, f"d{k}"))
            failed: list[str] = []
            report.restarts += 1 if k > 0 else 0
            if await _ping(out, loop.ping, failed) and await _ping(back, loop.ping, failed):
                report.resumed += 1 if k > 0 else 0
            else:
                report.errors.append(f"start {k + 1}: a payment failed after the restart: {failed}\n" + "\n".join(m.err[-8:]))
            if phase == "final":
                # Traffic settles: the last claims both ways arrive and are stored. Waited on, not slept: if it
                # never settles, the comparison below shows where the books part.
                deadline = time.monotonic() + 30
                while not await loop.settled() and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                out.stop()
                back.stop()
                report.final, report.disagreement = await loop.compare_live(m)
                code = await m.stop()
                if code != 0:
                    report.errors.append(f"moneyd exited with {code}:\n" + "\n".join(m.err[-20:]))
                await _check_claims(loop, report)
                break
            out.send({"cmd": "stream", "amount": loop.out_amount, "maxPacket": loop.out_packet})
            back.send({"cmd": "stream", "amount": loop.back_amount, "maxPacket": loop.back_packet})
            if phase == "topup":
                value = await loop.channel_value()
                deadline = time.monotonic() + 30
                paid = asyncio.ensure_future(out.event("stream", timeout=30))
                more: list[NodeProcess] = []
                # Pay on (a fresh pair of apps: one pair streams once) until our channel needed a top-up and the
                # ledger applied it; one round may not use enough of the channel, and waiting out the deadline
                # instead would kill after no top-up at all.
                while await loop.channel_value() == value and time.monotonic() < deadline:
                    if paid.done():
                        more.append(await loop.pair(loop.here(m, f"t{k}-{len(more)}"), loop.there(f"u{k}-{len(more)}")))
                        paid = asyncio.ensure_future(more[-1].event("stream", timeout=30))
                        more[-1].send({"cmd": "stream", "amount": loop.out_amount, "maxPacket": loop.out_packet})
                    await asyncio.sleep(0.005)
                paid.cancel()
                with contextlib.suppress(asyncio.CancelledError, AssertionError):
                    await paid
                for p in more:
                    p.stop()
                grew = await loop.channel_value() != value
                m.kill()
                report.kills.append("topup (just after the ledger applied it)" if grew else "payments (no top-up came)")
            else:
                await asyncio.sleep(rng.uniform(0.2, 3.0))
                m.kill()
                report.kills.append("payments")
            log(f"kill {k + 1}: {report.kills[-1]}")
            out.stop()
            back.stop()
            await _check_claims(loop, report)
            if k == down_topup:
                pending_announce = await loop.topup_while_down()
                log(f"  topped up while down: {pending_announce}")
    finally:
        report.seconds = time.monotonic() - t0
    return report


async def _check_claims(loop: Loop, report: Report) -> None:
    """After a kill: every claim we acknowledged is at or below our stored best (claims are cumulative), and every
    claim of ours the parent took is at or below the latest one we stored before sending it."""
    await asyncio.sleep(0.3)  # the parent notices the closed link
    best, sent = loop.stored_best(), loop.stored_sent()
    acked, taken = loop.acked(), loop.taken()
    report.acked_claims, report.our_claims_checked = len(acked), len(taken)
    report.lost_claims = sum(1 for a in acked if a > best)
    report.unstored_our_claims = sum(1 for t in taken if t > sent)
    if await loop.parent_holds() > sent:
        report.errors.append(f"the parent holds a claim of ours above the latest we stored ({sent})")


# -- XRP --------------------------------------------------------------------------------------------------------


class XrpLoop(Loop):
    name = "xrp"
    account = "alice"
    out_amount = 3_000_000_000  # 3 XRP a round in packets of 0.02: our 10 XRP channel is topped up every few rounds
    out_packet = 20_000_000
    back_amount = 300_000_000
    back_packet = 10_000_000

    async def setup(self) -> None:
        from xrpl.wallet import Wallet

        from tests.support.xrpl_emulator import XrplEmulator

        self.emu = XrplEmulator(close_interval=0.2).start()
        server = Wallet.create()
        self.emu.fund(server.address, 100_000 * XRP_DROPS)
        asym, self.apps_port = free_port(), free_port()
        assert server.seed is not None
        self.parent = self.node.start("xrp-parent-connector.js", str(asym), str(self.apps_port), self.emu.url,
                                      server.seed, server.address, "1000")
        await self.parent.event("ready", timeout=60)
        self.server = server
        self.client = Wallet.create()
        self.emu.fund(self.client.address, 10_000 * XRP_DROPS)
        assert self.client.seed is not None
        self.env = {**os.environ, "MONEYD_DATA_DIR": str(self.tmp / "data"), "MONEYD_NO_KEYRING": "1",
                    "MONEYD_PASSPHRASE": "test passphrase", "MONEYD_XRP_SECRET": self.client.seed}
        code = subprocess.run([sys.executable, "-m", "moneyd", "-c", str(self.tmp / "moneyd.json"), "xrp:configure",
                               "--parent", f"btp+ws://127.0.0.1:{asym}", "--xrp-server", self.emu.url, "--name", "alice"],
                              env=self.env, capture_output=True, text=True, timeout=120)
        assert code.returncode == 0, code.stderr
        cfg = json.loads((self.tmp / "moneyd.json").read_text())
        cfg["xrp"].update(claim_interval=2.0, watch_interval=2.0)
        (self.tmp / "moneyd.json").write_text(json.dumps(cfg))

    def stored_best(self) -> int:
        return int(self.stored().get("best_amount", 0))

    def stored_sent(self) -> int:
        return int(self.stored().get("sent_amount", 0))

    def acked(self) -> list[int]:
        assert self.parent is not None
        return [int(e["amount"]) for e in self.parent.all_events("claim-acked", account="alice")]

    def taken(self) -> list[int]:
        assert self.parent is not None
        return [int(e["amount"]) for e in self.parent.all_events("claim-taken", account="alice")]

    def our_channel(self) -> Any:
        chans = [c for c in self.emu.call(lambda: self.emu.ledger.channels_of(self.client.address))
                 if c.destination == self.server.address]
        return chans[0] if chans else None

    async def channel_value(self) -> int:
        c = self.our_channel()
        return int(c.amount) if c is not None else 0

    async def topup_while_down(self) -> bool:
        if self.our_channel() is None:
            return False
        return await self.cli("xrp:topup", "--amount", "10XRP", "--yes")

    async def parent_state(self) -> dict[str, Any]:
        assert self.parent is not None
        self.parent.send({"cmd": "state", "account": "alice"})
        return await self.parent.event("state", timeout=20)

    async def parent_holds(self) -> int:
        st = await self.parent_state()
        if not st["known"]:  # killed before it connected: the parent has no account for us, so no claim of ours
            return 0
        return int(st["lastClaim"]["amount"])  # a known account always has one (amount "0" before any claim)

    async def settled(self) -> bool:
        st, ours = await self.parent_state(), self.stored()
        return (int(st["outgoingBalance"]) == int(ours.get("best_amount", 0))
                and int(st["lastClaim"]["amount"]) == int(ours.get("sent_amount", 0)))

    async def announced(self, m: Moneyd) -> bool:
        st = await self.parent_state()
        return int(st["channelDrops"]) == await self.channel_value()

    async def compare_live(self, m: Moneyd) -> tuple[dict[str, Any], dict[str, int]]:
        st = await self.parent_state()
        await asyncio.sleep(1.5)  # our housekeeping saves the book at least once a second
        ours = self.stored()
        last = int(st["lastClaim"]["amount"])
        parent_credit = last - int(st["prepared"])
        final = {"parent": {k: st[k] for k in ("prepared", "lastClaim", "outgoingBalance", "owed", "channelDrops")},
                 "ours": {k: ours.get(k) for k in ("sent_amount", "best_amount", "credit", "owed", "announced_drops")}}
        dis = {
            "our last claim (parent last_claim - stored sent)": last - int(ours["sent_amount"]),
            "parent's claims to us (parent outgoing - stored best)": int(st["outgoingBalance"]) - int(ours["best_amount"]),
            "prepaid credit (parent last_claim - prepared - stored credit)": parent_credit - int(ours["credit"]),
            "owed to us (parent owed - stored owed)": int(st["owed"]) - int(ours["owed"]),
            "channel (ledger drops - drops the parent knows)": await self.channel_value() - int(st["channelDrops"]),
        }
        return final, dis

    def close(self) -> None:
        self.emu.stop()


# -- ETH --------------------------------------------------------------------------------------------------------


class EthLoop(Loop):
    name = "eth"
    account = "dave"
    out_amount = 600_000  # gwei a round; our channel of 0.001 ETH (1,000,000 gwei) is topped up every other round
    out_packet = 20_000
    back_amount = 200_000
    back_packet = 20_000
    channel = 10**6 * GWEI

    async def setup(self) -> None:
        from tests.support.ethfixture import _start

        self.ganache_runner, self.ganache = await asyncio.to_thread(_start)
        g = self.ganache
        eport, self.apps_port = free_port(), free_port()
        self.parent = self.node.start("eth-parent-connector.js", str(eport), str(self.apps_port), "test.parent",
                                      env={"ETH_URL": g.url, "ETH_CONTRACT": g.contract_address, "ETH_KEY": g.keys[4],
                                           "ETH_OUT_GWEI": str(5 * 10**7)}, stream_fix=False)
        await self.parent.event("ready", timeout=60)
        (self.tmp / "moneyd.json").write_text(json.dumps({"version": 1, "eth": {
            "parent": f"btp+ws://127.0.0.1:{eport}", "provider": g.url, "contract": g.contract_address,
            "chain_id": 1337, "name": "dave", "address": g.addresses[3], "channel_amount": self.channel}}))
        self.env = {**os.environ, "MONEYD_DATA_DIR": str(self.tmp / "data"), "MONEYD_ETH_PRIVATE_KEY": g.keys[3],
                    "MONEYD_NO_KEYRING": "1"}

    def there(self, who: str) -> str:
        return f"btp+ws://:{who}@127.0.0.1:{self.apps_port}"

    def stored_best(self) -> int:
        b = (self.stored().get("book") or {}).get("bestIncoming")
        return int(b["value"]) if b else 0

    def stored_sent(self) -> int:
        out = (self.stored().get("book") or {}).get("outgoing")
        return int(out["spent"]) if out else 0

    def acked(self) -> list[int]:
        assert self.parent is not None
        return [int(e["value"]) for e in self.parent.all_events("claim-acked", account="dave")]

    def taken(self) -> list[int]:
        return []  # the ETH parent takes claims silently: parent_holds compares the one it holds

    async def parent_holds(self) -> int:
        st = await self.parent_state()
        return int(st["incoming"]["spent"]) if st.get("incoming") else 0

    async def parent_state(self) -> dict[str, Any]:
        assert self.parent is not None
        self.parent.send({"cmd": "state"})
        st = await self.parent.event("state", timeout=20)
        account: dict[str, Any] = st["accounts"].get("dave", {})
        return account

    async def channel_value(self) -> int:
        out = (self.stored().get("book") or {}).get("outgoing")
        if not out:
            return 0
        from uplinks.eth.chain import EthChain
        from uplinks.eth.claims import parse_channel_id

        if getattr(self, "chain", None) is None:
            self.chain = await EthChain.connect(self.ganache.url, self.ganache.keys[3], self.ganache.contract_address)
        return int((await self.chain.channel(parse_channel_id(out["channelId"]))).value)

    async def topup_while_down(self) -> bool:
        return await self.cli("eth:topup", "--amount", "0.001ETH")

    async def announced(self, m: Moneyd) -> bool:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            st = await self.parent_state()
            if st.get("incoming") and int(st["incoming"]["value"]) == await self.channel_value():
                return True
            await asyncio.sleep(0.25)
        return False

    async def settled(self) -> bool:
        st = await self.parent_state()
        if not st.get("incoming") or not st.get("outgoing"):
            return False
        return (int(st["payableBalance"]) <= 0 and int(st["outgoing"]["spent"]) == self.stored_best()
                and int(st["incoming"]["spent"]) == self.stored_sent())

    async def compare_live(self, m: Moneyd) -> tuple[dict[str, Any], dict[str, int]]:
        st = await self.parent_state()
        book = self.stored()["book"]
        final = {"parent": {k: st.get(k) for k in ("receivableBalance", "payableBalance")}
                 | {"incoming.spent": st["incoming"]["spent"], "outgoing.spent": st["outgoing"]["spent"]},
                 "ours": {"paid": book["paid"], "charged": book["charged"], "outgoing.spent": book["outgoing"]["spent"],
                          "bestIncoming": book["bestIncoming"]["value"] if book["bestIncoming"] else "0"}}
        dis = {
            "our last claim (parent incoming.spent - stored spent), gwei": (int(st["incoming"]["spent"]) - int(book["outgoing"]["spent"])) // GWEI,
            "parent's claims to us (parent outgoing.spent - stored best), gwei": (int(st["outgoing"]["spent"]) - self.stored_best()) // GWEI,
            "prepaid credit (-receivable - stored paid + charged)": -int(st["receivableBalance"]) - (int(book["paid"]) - int(book["charged"])),
            # What the parent still owes us for Prepares we fulfilled. A negative payable is not a debt of either
            # side: it is what the parent paid ahead. ilp-plugin-ethereum beta.20 does that by itself: each fulfill
            # adds max(0, payable) to its payout budget, so when a second fulfill lands before the claim queued for
            # the first one runs, that claim pays the first packet twice; its later fulfills absorb the surplus.
            # Our side of it is checked above: we hold (stored best) exactly the claims it sent.
            "owed to us (parent payable, when above 0)": max(0, int(st["payableBalance"])),
            "channel (chain value - value the parent knows), gwei": (await self.channel_value() - int(st["incoming"]["value"])) // GWEI,
        }
        return final, dis

    def close(self) -> None:
        from tests.support.ethfixture import stop

        stop(self.ganache_runner)


async def run_uplink(uplink: str, kills: int, seed: int, tmp: Path, log: Callable[[str], None] = lambda _: None) -> Report:
    node = NodeRunner()
    cls: type[XrpLoop | EthLoop] = XrpLoop if uplink == "xrp" else EthLoop
    loop = cls(tmp, node, random.Random(seed))
    report = Report(uplink)
    try:
        await run(loop, kills, report, log)
    except Exception as e:  # the figures so far are still worth printing
        report.errors.append(f"{type(e).__name__}: {e}")
    finally:
        node.stop_all()
        chain = getattr(loop, "chain", None)
        if chain is not None:
            await chain.close()
        with contextlib.suppress(Exception):
            loop.close()
    return report


__all__ = ["JS_DIR", "EthLoop", "Report", "XrpLoop", "run_uplink"]
