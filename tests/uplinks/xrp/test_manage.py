"""`moneyd xrp:topup` and `moneyd xrp:cleanup` as real CLI processes against the XRPL emulator.

Every money figure is checked on the emulator's validated ledger, to the drop (the emulator's fee is 10 drops).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer
from xrpl.wallet import Wallet

from tests.support.xrpl_emulator import XrplEmulator
from uplinks.xrp.claims import sign_claim
from uplinks.xrp.keys import ChannelKey
from uplinks.xrp.ledger import XrpLedger
from uplinks.xrp.manage import describe, parse_topup

XRP = 1_000_000
FEE = 10


def cli(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    inherited = {k: v for k, v in os.environ.items() if k != "MONEYD_XRP_SECRET"}
    full = {**inherited, "MONEYD_DATA_DIR": str(home / "data"), "MONEYD_NO_KEYRING": "1",
            "MONEYD_PASSPHRASE": "test passphrase", "COLUMNS": "200", **(env or {})}
    return subprocess.run([sys.executable, "-m", "moneyd", "-c", str(home / "moneyd.json"), *args],
                          capture_output=True, text=True, env=full, timeout=120, stdin=subprocess.DEVNULL)


@dataclass
class Setup:
    emu: XrplEmulator
    home: Path
    wallet: Wallet
    parent: Wallet

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        r = cli(self.home, *args, env=env)
        assert "Traceback" not in r.stderr, r.stderr
        return r

    def open_channel(self, drops: int, key: str | None = None, settle_delay: int = 3600) -> str:
        """A channel from our account to the parent, with moneyd's derived key unless another is given."""
        public_key = key or ChannelKey.derive(self.wallet.seed, self.parent.address).ledger_public_key

        async def go() -> str:
            async with await XrpLedger.connect(self.emu.url) as ledger:
                return await ledger.create_channel(self.wallet, self.parent.address, drops, settle_delay, public_key)

        return asyncio.run(go())

    def parent_claims(self, channel: str, drops: int) -> None:
        """The parent submits our signed claim for ``drops``, as the asym server does."""
        key = ChannelKey.derive(self.wallet.seed, self.parent.address)
        signature = sign_claim(key, channel, drops).hex().upper()

        async def go() -> None:
            async with await XrpLedger.connect(self.emu.url) as ledger:
                await ledger.claim_channel(self.parent, channel, balance=drops, amount=drops, signature=signature,
                                           public_key=key.ledger_public_key)

        asyncio.run(go())

    def channel(self, cid: str) -> tuple[int, int, int | None] | None:
        """(amount, balance, expiration) of the channel in the last validated ledger, or None once deleted."""
        c = self.emu.call(lambda: self.emu.ledger.channel(cid, self.emu.ledger.validated))
        return None if c is None else (c.amount, c.balance, c.expiration)

    def account(self) -> tuple[int, int, int]:
        """(balance, sequence, owner count) of our account in the last validated ledger."""
        a = self.emu.call(lambda: self.emu.ledger.account(self.wallet.address, self.emu.ledger.validated))
        assert a is not None
        return a.balance, a.sequence, a.owner_count

    def ledger_time(self) -> int:
        return int(self.emu.call(lambda: self.emu.ledger.validated.close_time))


@pytest.fixture
def setup(xrpl_emulator: XrplEmulator, tmp_path: Path) -> Setup:
    wallet, parent = Wallet.create(), Wallet.create()
    xrpl_emulator.fund(wallet.address, 100 * XRP)
    xrpl_emulator.fund(parent.address, 50 * XRP)
    r = cli(tmp_path, "xrp:configure", "--parent", "p.example", "--xrp-server", xrpl_emulator.url,
            env={"MONEYD_XRP_SECRET": wallet.seed})
    assert r.returncode == 0, r.stderr
    return Setup(xrpl_emulator, tmp_path, wallet, parent)


# --- amounts ------------------------------------------------------------------------------------------------


def test_amount_units() -> None:
    assert parse_topup("5XRP") == (5 * XRP, "XRP")
    assert parse_topup("5 XRP") == (5 * XRP, "XRP")
    assert parse_topup(" 0.5xrp ") == (500_000, "XRP")
    assert parse_topup("1.000001 XRP") == (1_000_001, "XRP")
    assert parse_topup("5000000") == (5 * XRP, "drops")
    assert parse_topup("7 drops") == (7, "drops")
    assert parse_topup("1drop") == (1, "drops")
    assert describe(5 * XRP, "XRP") == "5 XRP (5,000,000 drops)"
    assert describe(1_234_567, "drops") == "1,234,567 drops (1.234567 XRP; a plain number is read as drops)"
    for bad, why in (("5ETH", "the amount is in ETH"), ("1.0000001XRP", "more decimals"), ("0", "more than 0"),
                     ("0XRP", "more than 0"), ("-5", "more than 0"), ("1.5", "not an amount"),
                     ("lots", "not an amount"), ("1.5 drops", "drops are whole numbers"),
                     ("100000000001XRP", "more XRP than exists")):
        with pytest.raises(typer.BadParameter, match=why):
            parse_topup(bad)


# --- topup --------------------------------------------------------------------------------------------------


def test_topup_adds_exactly_the_drops(setup: Setup) -> None:
    cid = setup.open_channel(10 * XRP)
    balance, seq, _ = setup.account()

    r = setup.run("xrp:topup", "--amount", "5XRP", "--yes")
    assert r.returncode == 0, r.stderr
    assert f"adding 5 XRP (5,000,000 drops) to channel {cid}" in r.stdout
    assert "validated in" in r.stderr
    assert f"channel {cid} now holds 15 XRP (15,000,000 drops)" in r.stdout
    assert setup.channel(cid) == (15 * XRP, 0, None)
    assert setup.account()[:2] == (balance - 5 * XRP - FEE, seq + 1)

    r = setup.run("xrp:topup", "--amount", "1234567", "--yes", "--json")
    assert r.returncode == 0, r.stderr
    assert "adding 1,234,567 drops (1.234567 XRP; a plain number is read as drops)" in r.stderr
    out = json.loads(r.stdout)
    assert out == {"channel": cid, "destination": setup.parent.address, "added": 1_234_567,
                   "amount_before": 15 * XRP, "amount": 16_234_567, "balance": 0, "remaining": 16_234_567,
                   "account_balance": balance - 5 * XRP - 1_234_567 - 2 * FEE}
    assert setup.channel(cid) == (16_234_567, 0, None)

    r = setup.run("xrp:topup", "--amount", "2 xrp", "--yes", "--channel", cid.lower())
    assert r.returncode == 0, r.stderr
    assert "adding 2 XRP (2,000,000 drops)" in r.stdout
    assert setup.channel(cid) == (18_234_567, 0, None)


def test_topup_refuses_more_than_is_available_and_submits_nothing(setup: Setup) -> None:
    cid = setup.open_channel(10 * XRP)
    balance, seq, owners = setup.account()
    assert owners == 1
    available = balance - (10 * XRP + 2 * XRP) - FEE  # base reserve + one owned object, and the fee

    r = setup.run("xrp:topup", "--amount", str(available + 1), "--yes")
    assert r.returncode == 1
    assert f"{available:,} drops) is available; nothing was submitted" in r.stderr, r.stderr
    assert "of which 12 XRP is reserve and 0.00001 XRP the fee" in r.stderr
    r = setup.run("xrp:topup", "--amount", "1000XRP", "--yes")
    assert r.returncode == 1 and "cannot add 1000 XRP (1,000,000,000 drops)" in r.stderr
    assert setup.account() == (balance, seq, 1) and setup.channel(cid) == (10 * XRP, 0, None)

    # Exactly what is available goes through: the check is the ledger's own, to the drop.
    r = setup.run("xrp:topup", "--amount", str(available), "--yes")
    assert r.returncode == 0, r.stderr
    assert setup.channel(cid) == (10 * XRP + available, 0, None)
    assert setup.account() == (12 * XRP, seq + 1, 1)


def test_topup_chooses_the_channel(setup: Setup) -> None:
    none = setup.run("xrp:topup", "--amount", "1XRP", "--yes")
    assert none.returncode == 1 and f"{setup.wallet.address} has no open payment channel" in none.stderr

    ours = setup.open_channel(10 * XRP)
    foreign = setup.open_channel(3 * XRP, key=Wallet.create().public_key)  # not moneyd's key
    # moneyd's own channel (its key derived from the secret and the destination) is preferred.
    r = setup.run("xrp:topup", "--amount", "1XRP", "--yes")
    assert r.returncode == 0, r.stderr
    assert setup.channel(ours) == (11 * XRP, 0, None) and setup.channel(foreign) == (3 * XRP, 0, None)

    second = setup.open_channel(4 * XRP)
    several = setup.run("xrp:topup", "--amount", "1XRP", "--yes")
    assert several.returncode == 1 and "has 2 open channels; choose one with --channel" in several.stderr
    assert ours in several.stderr and second in several.stderr
    r = setup.run("xrp:topup", "--amount", "1XRP", "--yes", "--channel", foreign)
    assert r.returncode == 0, r.stderr
    assert setup.channel(foreign) == (4 * XRP, 0, None)

    bad = setup.run("xrp:topup", "--amount", "1XRP", "--yes", "--channel", "xyz")
    assert bad.returncode == 2 and "invalid payment channel id 'xyz'" in bad.stderr
    unknown = setup.run("xrp:topup", "--amount", "1XRP", "--yes", "--channel", "AB" * 32)
    assert unknown.returncode == 1 and f"channel {'AB' * 32} is not a payment channel from" in unknown.stderr
    bad_amount = setup.run("xrp:topup", "--amount", "5ETH", "--yes")
    assert bad_amount.returncode == 2 and "the amount is in ETH" in bad_amount.stderr

    seq = setup.account()[1]
    no_tty = setup.run("xrp:topup", "--amount", "1XRP", "--channel", ours)
    assert no_tty.returncode == 2 and "give --yes" in no_tty.stderr
    assert setup.account()[1] == seq

    r = setup.run("xrp:cleanup", "--channel", second, "--yes")
    assert r.returncode == 0, r.stderr
    closing = setup.run("xrp:topup", "--amount", "1XRP", "--yes", "--channel", second)
    assert closing.returncode == 1 and "is closing, expires" in closing.stderr


def test_commands_need_a_configured_account(tmp_path: Path) -> None:
    for args in (("xrp:topup", "--amount", "1XRP", "--yes"), ("xrp:cleanup", "--all", "--yes")):
        r = cli(tmp_path, *args)
        assert r.returncode == 1 and f"run `moneyd -c {tmp_path / 'moneyd.json'} xrp:configure` first" in r.stderr


# --- cleanup ------------------------------------------------------------------------------------------------


def test_cleanup_closes_then_deletes_after_expiry_in_one_run(setup: Setup) -> None:
    cid = setup.open_channel(10 * XRP)
    setup.parent_claims(cid, 2_500_000)  # the parent has been paid 2.5 XRP through it
    balance, seq, owners = setup.account()
    assert owners == 1

    r = setup.run("xrp:cleanup", "--all", "--yes", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    [entry] = out["channels"]
    now = setup.ledger_time()
    assert entry["outcome"] == "closing" and out["returned"] == 0
    # The ledger set Expiration = parent close time + SettleDelay.
    amount, claimed, expiration = setup.channel(cid) or (0, 0, None)
    assert (amount, claimed) == (10 * XRP, 2_500_000)
    assert expiration is not None and now <= expiration <= now + 3600 and entry["expiration"] == expiration
    assert setup.account() == (balance - FEE, seq + 1, 1)

    # Before the expiry there is nothing to do: nothing is submitted, and it says when to come back.
    r = setup.run("xrp:cleanup", "--all", "--yes")
    assert r.returncode == 0, r.stderr
    assert "already closing" in r.stdout and "run cleanup again then" in r.stdout
    assert setup.account() == (balance - FEE, seq + 1, 1)

    setup.emu.advance_time(3601)
    r = setup.run("xrp:cleanup", "--all", "--yes", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    returned = 10 * XRP - 2_500_000
    assert out["returned"] == returned
    [entry] = out["channels"]
    assert entry["outcome"] == "deleted" and entry["returned"] == returned and entry["fee"] == FEE
    assert setup.channel(cid) is None
    assert setup.account() == (balance - FEE + returned - FEE, seq + 2, 0)
    assert entry["account_balance"] == balance - 2 * FEE + returned

    r = setup.run("xrp:cleanup", "--all", "--yes")
    assert r.returncode == 0 and "nothing to clean up" in r.stdout


def test_cleanup_a_channel_closed_elsewhere_is_finished_in_the_same_run(setup: Setup) -> None:
    """A channel already closing (e.g. by the JS moneyd) and past its expiry is deleted at once, XRP returned."""
    cid = setup.open_channel(6 * XRP)
    full = setup.open_channel(1 * XRP)
    setup.parent_claims(full, 1 * XRP)  # spent to the last drop: the source can delete it right away

    async def close() -> None:
        async with await XrpLedger.connect(setup.emu.url) as ledger:
            await ledger.claim_channel(setup.wallet, cid, close=True)

    asyncio.run(close())
    setup.emu.advance_time(4000)
    balance, seq, owners = setup.account()
    assert owners == 2

    r = setup.run("xrp:cleanup", "--all", "--yes")
    assert r.returncode == 0, r.stderr
    assert f"{cid}: deleted; 6 XRP returned" in r.stdout
    assert f"{full}: deleted; 0 XRP returned" in r.stdout
    assert "returned 6 XRP in all" in r.stdout
    assert setup.channel(cid) is None and setup.channel(full) is None
    assert setup.account() == (balance + 6 * XRP - 2 * FEE, seq + 2, 0)


def test_cleanup_selection_and_refusals(setup: Setup) -> None:
    none = setup.run("xrp:cleanup", "--all", "--yes", "--json")
    assert none.returncode == 0 and json.loads(none.stdout) == {"address": setup.wallet.address, "channels": []}
    assert "nothing to clean up" in none.stderr

    a = setup.open_channel(5 * XRP)
    b = setup.open_channel(5 * XRP)
    balance, seq, _ = setup.account()
    for args, code, message in (
        (("--all",), 2, "no terminal to confirm on: give --yes"),
        ((), 2, "give --all or --channel ID"),
        (("--yes",), 2, "--yes needs --all or --channel ID"),
        (("--all", "--channel", a, "--yes"), 2, "either --all or --channel"),
        (("--channel", "not-hex", "--yes"), 2, "invalid payment channel id"),
        (("--channel", "CD" * 32, "--yes"), 1, f"channel {'CD' * 32} is not a payment channel from"),
    ):
        r = setup.run("xrp:cleanup", *args)
        assert r.returncode == code and message in r.stderr, (args, r.stderr)
    assert setup.account() == (balance, seq, 2)  # nothing submitted
    # The listing comes before the question, with amount, claimed and expiry.
    r = setup.run("xrp:cleanup", "--all")
    assert f"{a} to {setup.parent.address}" in r.stdout and "amount 5 XRP, claimed 0 XRP, open" in r.stdout

    r = setup.run("xrp:cleanup", "--channel", b.lower(), "--yes")
    assert r.returncode == 0, r.stderr
    assert f"{b}: closing; it expires" in r.stdout
    assert setup.channel(a) == (5 * XRP, 0, None)
    assert setup.channel(b) is not None and (setup.channel(b) or (0, 0, None))[2] is not None
    assert setup.account() == (balance - FEE, seq + 1, 2)
