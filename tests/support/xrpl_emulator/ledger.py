"""The ledger state engine of the emulator: accounts, payment channels, transactions, closed ledgers.

Pure (no sockets, no timers): ``submit(tx_blob)`` applies a signed transaction to the open ledger the way rippled's
transactors do (the rules follow rippled's Transactor.cpp, Payment.cpp and PayChan.cpp), and ``close()`` closes the
open ledger, which this single-node emulator treats as validated at once. Every signature is verified with xrpl-py.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from xrpl.core.addresscodec import decode_classic_address, is_valid_classic_address
from xrpl.core.binarycodec import decode, encode, encode_for_signing
from xrpl.core.keypairs import derive_classic_address, derive_keypair, is_valid_message, sign

RIPPLE_EPOCH = 946_684_800  # 2000-01-01T00:00:00Z in Unix seconds
GENESIS_ADDRESS = "rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh"
GENESIS_SECRET = "snoPBrXtMeMyMHUVTgbuqAfg1SUTb"
TOTAL_DROPS = 100_000_000_000 * 1_000_000
MAX_DROPS = TOTAL_DROPS

TF_RENEW = 0x00010000
TF_CLOSE = 0x00020000
TF_FULLY_CANONICAL_SIG = 0x80000000
TF_PARTIAL_PAYMENT = 0x00020000

# Result codes and their numbers, exactly as rippled names them (xrpl-py ships rippled's definitions.json).
_DEFINITIONS = json.loads(
    resources.files("xrpl.core.binarycodec.definitions").joinpath("definitions.json").read_text()
)
RESULT_CODES: dict[str, int] = dict(_DEFINITIONS["TRANSACTION_RESULTS"])

RESULT_MESSAGES = {
    "tesSUCCESS": "The transaction was applied. Only final in a validated ledger.",
    "tefPAST_SEQ": "This sequence number has already passed.",
    "tefMAX_LEDGER": "Ledger sequence too high.",
    "tefBAD_AUTH": "Transaction's public key is not authorized.",
    "tefALREADY": "The exact transaction was already in this ledger.",
    "terPRE_SEQ": "Missing/inapplicable prior transaction.",
    "terNO_ACCOUNT": "The source account does not exist.",
    "terINSUF_FEE_B": "Account balance can't pay fee.",
    "telINSUF_FEE_P": "Fee insufficient.",
    "temBAD_AMOUNT": "Can only send positive amounts.",
    "temBAD_FEE": "Invalid fee, negative or not XRP.",
    "temBAD_SIGNATURE": "The signature is invalid.",
    "temBAD_SIGNER": "Malformed: No signer may duplicate account or other signers.",
    "temBAD_EXPIRATION": "Malformed: Bad expiration.",
    "temDST_IS_SRC": "Destination may not be source.",
    "temREDUNDANT": "The transaction is redundant.",
    "temMALFORMED": "Malformed transaction.",
    "temINVALID_FLAG": "The transaction has an invalid flag.",
    "temUNKNOWN": "The transaction requires logic that is not implemented yet.",
    "tecUNFUNDED": "Not enough XRP to satisfy the reserve requirement.",
    "tecUNFUNDED_PAYMENT": "Insufficient XRP balance to send.",
    "tecINSUFFICIENT_RESERVE": "Insufficient reserve to complete requested operation.",
    "tecNO_DST": "Destination does not exist. Send XRP to create it.",
    "tecNO_DST_INSUF_XRP": "Destination does not exist. Too little XRP sent to create it.",
    "tecNO_PERMISSION": "No permission to perform requested operation.",
    "tecNO_ENTRY": "No matching entry found.",
    "tecNO_TARGET": "Target account does not exist.",
    "tecEXPIRED": "Expiration time is passed.",
    "tecDST_TAG_NEEDED": "A destination tag is required.",
    "tecPATH_DRY": "Path could not send partial amount.",
}

SUPPORTED = ("Payment", "PaymentChannelCreate", "PaymentChannelFund", "PaymentChannelClaim")


class InvalidTransaction(Exception):
    """The blob fails rippled's local checks (undecodable, unsigned, bad signature): submit answers an RPC error."""


def sha512_half(data: bytes) -> bytes:
    return hashlib.sha512(data).digest()[:32]


def account_id(address: str) -> bytes:
    return bytes(decode_classic_address(address))


def channel_id(source: str, destination: str, sequence: int) -> str:
    """keylet::payChan: SHA-512Half(0x0078 ‖ AccountID src ‖ AccountID dst ‖ u32 sequence)."""
    data = b"\x00\x78" + account_id(source) + account_id(destination) + sequence.to_bytes(4, "big")
    return sha512_half(data).hex().upper()


def account_root_index(address: str) -> str:
    return sha512_half(b"\x00\x61" + account_id(address)).hex().upper()


def transaction_hash(blob: bytes) -> str:
    return sha512_half(b"TXN\x00" + blob).hex().upper()


def claim_message(channel: str, drops: int) -> bytes:
    """What a channel claim signs: "CLM\\0" ‖ channel id ‖ u64 drops (serializePayChanAuthorization)."""
    return b"CLM\x00" + bytes.fromhex(channel) + drops.to_bytes(8, "big")


def is_result(code: str, cls: str) -> bool:
    return code.startswith(cls)


class Clock:
    """Ripple-epoch seconds: real time plus an offset tests advance instead of waiting out a SettleDelay."""

    def __init__(self, offset: int = 0) -> None:
        self.offset = offset

    def now(self) -> int:
        return int(time.time()) - RIPPLE_EPOCH + self.offset

    def advance(self, seconds: int) -> None:
        self.offset += seconds


@dataclass
class AccountRoot:
    account: str
    balance: int
    sequence: int
    owner_count: int = 0
    flags: int = 0
    previous_txn_id: str = "0" * 64
    previous_txn_lgr_seq: int = 0

    def fields(self) -> dict[str, Any]:
        return {
            "Account": self.account,
            "Balance": str(self.balance),
            "Flags": self.flags,
            "OwnerCount": self.owner_count,
            "PreviousTxnID": self.previous_txn_id,
            "PreviousTxnLgrSeq": self.previous_txn_lgr_seq,
            "Sequence": self.sequence,
        }

    def to_json(self) -> dict[str, Any]:
        return {**self.fields(), "LedgerEntryType": "AccountRoot", "index": account_root_index(self.account)}


@dataclass
class PayChannel:
    channel_id: str
    account: str
    destination: str
    amount: int
    balance: int
    settle_delay: int
    public_key: str
    expiration: int | None = None
    cancel_after: int | None = None
    source_tag: int | None = None
    destination_tag: int | None = None
    flags: int = 0
    previous_txn_id: str = "0" * 64
    previous_txn_lgr_seq: int = 0

    def fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "Account": self.account,
            "Amount": str(self.amount),
            "Balance": str(self.balance),
            "Destination": self.destination,
            "DestinationNode": "0",
            "Flags": self.flags,
            "OwnerNode": "0",
            "PreviousTxnID": self.previous_txn_id,
            "PreviousTxnLgrSeq": self.previous_txn_lgr_seq,
            "PublicKey": self.public_key,
            "SettleDelay": self.settle_delay,
        }
        for key, value in (
            ("Expiration", self.expiration),
            ("CancelAfter", self.cancel_after),
            ("SourceTag", self.source_tag),
            ("DestinationTag", self.destination_tag),
        ):
            if value is not None:
                out[key] = value
        return out

    def to_json(self) -> dict[str, Any]:
        return {**self.fields(), "LedgerEntryType": "PayChannel", "index": self.channel_id}


@dataclass
class State:
    accounts: dict[str, AccountRoot] = field(default_factory=dict)
    channels: dict[str, PayChannel] = field(default_factory=dict)

    def snapshot(self) -> State:
        return copy.deepcopy(self)


@dataclass
class TxRecord:
    hash: str
    blob: str
    tx_json: dict[str, Any]
    result: str
    ledger_index: int
    meta: dict[str, Any]
    validated: bool = False
    ledger_hash: str | None = None
    close_time: int | None = None


@dataclass
class ClosedLedger:
    index: int
    hash: str
    parent_hash: str
    close_time: int
    parent_close_time: int
    tx_hashes: list[str]
    state: State


@dataclass
class SubmitOutcome:
    engine_result: str
    hash: str
    tx_json: dict[str, Any]
    applied: bool

    @property
    def engine_result_code(self) -> int:
        return RESULT_CODES.get(self.engine_result, -399)

    @property
    def engine_result_message(self) -> str:
        return RESULT_MESSAGES.get(self.engine_result, self.engine_result)


@dataclass
class _Context:
    tx: dict[str, Any]
    account: str
    sequence: int
    prior_balance: int
    parent_close_time: int
    open_index: int


def _drops(value: Any) -> int | None:
    """An XRP amount in drops, or None when it is not one (an IOU object, garbage, out of range)."""
    if not isinstance(value, str) or not value.isdigit() or len(value) > 18:
        return None
    n = int(value)
    return n if n <= MAX_DROPS else None


class Ledger:
    """The whole ledger: history of closed (= validated) ledgers plus the open one transactions apply to."""

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        base_fee: int = 10,
        reserve_base: int = 10_000_000,
        reserve_increment: int = 2_000_000,
    ) -> None:
        self.clock = clock or Clock()
        self.base_fee = base_fee
        self.reserve_base = reserve_base
        self.reserve_increment = reserve_increment
        self.state = State({GENESIS_ADDRESS: AccountRoot(GENESIS_ADDRESS, TOTAL_DROPS, 1)})
        self.transactions: dict[str, TxRecord] = {}
        self.open_txs: list[str] = []
        genesis = ClosedLedger(1, sha512_half(b"genesis").hex().upper(), "0" * 64, self.clock.now(), 0, [],
                               self.state.snapshot())
        self.closed: list[ClosedLedger] = [genesis]
        public, private = derive_keypair(GENESIS_SECRET)
        self._genesis_keys = (public, private)

    # -- ledger indexes and fees ------------------------------------------------------------------------

    @property
    def validated(self) -> ClosedLedger:
        return self.closed[-1]

    @property
    def open_index(self) -> int:
        return self.validated.index + 1

    def reserve(self, owner_count: int) -> int:
        return self.reserve_base + owner_count * self.reserve_increment

    def ledger_at(self, index: int) -> ClosedLedger | None:
        first = self.closed[0].index
        if first <= index <= self.validated.index:
            return self.closed[index - first]
        return None

    # -- reads (open ledger unless a closed one is given) ------------------------------------------------

    def account(self, address: str, at: ClosedLedger | None = None) -> AccountRoot | None:
        return (at.state if at else self.state).accounts.get(address)

    def balance(self, address: str) -> int:
        acct = self.state.accounts.get(address)
        return acct.balance if acct else 0

    def channel(self, channel: str, at: ClosedLedger | None = None) -> PayChannel | None:
        return (at.state if at else self.state).channels.get(channel.upper())

    def channels_of(self, address: str, at: ClosedLedger | None = None) -> list[PayChannel]:
        return [c for c in (at.state if at else self.state).channels.values() if c.account == address]

    # -- closing ------------------------------------------------------------------------------------------

    def close(self) -> tuple[ClosedLedger, list[TxRecord]]:
        parent = self.validated
        index = self.open_index
        close_time = max(self.clock.now(), parent.close_time)
        hashes = list(self.open_txs)
        self.open_txs.clear()
        digest = sha512_half(
            b"LWR\x00" + index.to_bytes(4, "big") + bytes.fromhex(parent.hash) + close_time.to_bytes(8, "big")
            + b"".join(bytes.fromhex(h) for h in hashes)
        ).hex().upper()
        state = self.state.snapshot() if hashes else parent.state
        ledger = ClosedLedger(index, digest, parent.hash, close_time, parent.close_time, hashes, state)
        self.closed.append(ledger)
        records = []
        for h in hashes:
            rec = self.transactions[h]
            rec.validated = True
            rec.ledger_hash = digest
            rec.close_time = close_time
            records.append(rec)
        return ledger, records

    # -- funding (a real Payment signed by the genesis account) --------------------------------------------

    def fund(self, address: str, drops: int) -> str:
        genesis = self.state.accounts[GENESIS_ADDRESS]
        tx = {
            "TransactionType": "Payment",
            "Account": GENESIS_ADDRESS,
            "Destination": address,
            "Amount": str(drops),
            "Fee": str(self.base_fee),
            "Flags": TF_FULLY_CANONICAL_SIG,
            "Sequence": genesis.sequence,
            "SigningPubKey": self._genesis_keys[0],
        }
        tx["TxnSignature"] = sign(bytes.fromhex(encode_for_signing(tx)), self._genesis_keys[1])
        outcome = self.submit(encode(tx))
        if outcome.engine_result != "tesSUCCESS":
            raise AssertionError(f"funding {address} with {drops} drops failed: {outcome.engine_result}")
        return outcome.hash

    # -- submission ---------------------------------------------------------------------------------------

    def submit(self, tx_blob: str) -> SubmitOutcome:
        """Check and apply one signed transaction to the open ledger, as rippled's submit does."""
        try:
            blob = bytes.fromhex(tx_blob)
            tx = decode(tx_blob)
        except Exception as exc:  # xrpl-py raises a variety of errors on garbage
            raise InvalidTransaction(f"fails local checks: cannot decode: {exc}") from exc
        txid = transaction_hash(blob)
        tx_json = {**tx, "hash": txid}
        if txid in self.transactions:
            return SubmitOutcome("tefALREADY", txid, tx_json, False)
        self._check_signature(tx)

        result = self._preflight(tx)
        if result == "tesSUCCESS":
            result = self._preclaim(tx)
        if result != "tesSUCCESS" and not is_result(result, "tec"):
            return SubmitOutcome(result, txid, tx_json, False)

        before = self.state.snapshot()
        account = self.state.accounts[tx["Account"]]
        fee = int(tx["Fee"])
        ctx = _Context(tx, tx["Account"], tx["Sequence"], account.balance, self.validated.close_time, self.open_index)
        account.balance -= fee
        account.sequence += 1
        if result == "tesSUCCESS":
            result = self._do_apply(ctx)
        if result != "tesSUCCESS":
            if not is_result(result, "tec"):
                self.state = before
                return SubmitOutcome(result, txid, tx_json, False)
            # A tec claims the fee and the sequence and nothing else.
            self.state = before.snapshot()
            account = self.state.accounts[tx["Account"]]
            account.balance -= fee
            account.sequence += 1
        meta = self._metadata(before, self.state, txid, result, tx)
        self.transactions[txid] = TxRecord(txid, tx_blob.upper(), tx_json, result, self.open_index, meta)
        self.open_txs.append(txid)
        return SubmitOutcome(result, txid, tx_json, True)

    def _check_signature(self, tx: dict[str, Any]) -> None:
        public_key = tx.get("SigningPubKey")
        signature = tx.get("TxnSignature")
        if not isinstance(public_key, str) or not public_key or not isinstance(signature, str):
            raise InvalidTransaction("fails local checks: Transaction is not signed (no multi-signing here).")
        try:
            ok = is_valid_message(bytes.fromhex(encode_for_signing(tx)), bytes.fromhex(signature), public_key)
        except Exception:
            ok = False
        if not ok:
            raise InvalidTransaction("fails local checks: Invalid signature.")

    def _preflight(self, tx: dict[str, Any]) -> str:
        kind = tx.get("TransactionType")
        if kind not in SUPPORTED:
            return "temUNKNOWN"
        fee = _drops(tx.get("Fee"))
        if fee is None:
            return "temBAD_FEE"
        if not isinstance(tx.get("Sequence"), int) or not is_valid_classic_address(tx.get("Account", "")):
            return "temMALFORMED"
        flags = int(tx.get("Flags", 0))
        if kind == "Payment":
            if not is_valid_classic_address(tx.get("Destination", "")):
                return "temMALFORMED"
            if isinstance(tx.get("Amount"), str):
                amount = _drops(tx["Amount"])
                if amount is None or amount <= 0:
                    return "temBAD_AMOUNT"
            elif not isinstance(tx.get("Amount"), dict):
                return "temBAD_AMOUNT"
            if tx["Destination"] == tx["Account"]:
                return "temREDUNDANT"
        elif kind == "PaymentChannelCreate":
            if flags & ~TF_FULLY_CANONICAL_SIG:
                return "temINVALID_FLAG"
            amount = _drops(tx.get("Amount"))
            if amount is None or amount <= 0:
                return "temBAD_AMOUNT"
            if not is_valid_classic_address(tx.get("Destination", "")):
                return "temMALFORMED"
            if tx["Destination"] == tx["Account"]:
                return "temDST_IS_SRC"
            if not _is_public_key(tx.get("PublicKey")) or not isinstance(tx.get("SettleDelay"), int):
                return "temMALFORMED"
        elif kind == "PaymentChannelFund":
            if flags & ~TF_FULLY_CANONICAL_SIG:
                return "temINVALID_FLAG"
            amount = _drops(tx.get("Amount"))
            if amount is None or amount <= 0:
                return "temBAD_AMOUNT"
            if not _is_hash256(tx.get("Channel")):
                return "temMALFORMED"
        elif kind == "PaymentChannelClaim":
            return self._preflight_claim(tx, flags)
        return "tesSUCCESS"

    def _preflight_claim(self, tx: dict[str, Any], flags: int) -> str:
        if not _is_hash256(tx.get("Channel")):
            return "temMALFORMED"
        bal = amt = None
        if "Balance" in tx:
            bal = _drops(tx["Balance"])
            if bal is None or bal <= 0:
                return "temBAD_AMOUNT"
        if "Amount" in tx:
            amt = _drops(tx["Amount"])
            if amt is None or amt <= 0:
                return "temBAD_AMOUNT"
        if bal is not None and amt is not None and bal > amt:
            return "temBAD_AMOUNT"
        if flags & ~(TF_FULLY_CANONICAL_SIG | TF_RENEW | TF_CLOSE):
            return "temINVALID_FLAG"
        if flags & TF_CLOSE and flags & TF_RENEW:
            return "temMALFORMED"
        signature = tx.get("Signature")
        if signature is not None:
            public_key = tx.get("PublicKey")
            if bal is None or not isinstance(public_key, str) or not _is_public_key(public_key):
                return "temMALFORMED"
            authorized = amt if amt is not None else bal
            try:
                ok = is_valid_message(claim_message(tx["Channel"], authorized), bytes.fromhex(signature), public_key)
            except Exception:
                ok = False
            if not ok:
                return "temBAD_SIGNATURE"
        return "tesSUCCESS"

    def _preclaim(self, tx: dict[str, Any]) -> str:
        account = self.state.accounts.get(tx["Account"])
        if account is None:
            return "terNO_ACCOUNT"
        if tx["Sequence"] < account.sequence:
            return "tefPAST_SEQ"
        if tx["Sequence"] > account.sequence:
            return "terPRE_SEQ"
        last = tx.get("LastLedgerSequence")
        if last is not None and last < self.open_index:
            return "tefMAX_LEDGER"
        fee = int(tx["Fee"])
        if fee < self.base_fee:
            return "telINSUF_FEE_P"
        if fee > account.balance:
            return "terINSUF_FEE_B"
        # No regular keys or multi-signing: the signing key must be the account's master key.
        if derive_classic_address(tx["SigningPubKey"]) != tx["Account"]:
            return "tefBAD_AUTH"
        if tx["TransactionType"] == "PaymentChannelCreate":
            reserve = self.reserve(account.owner_count + 1)
            if account.balance < reserve:
                return "tecINSUFFICIENT_RESERVE"
            if account.balance < reserve + int(tx["Amount"]):
                return "tecUNFUNDED"
            if tx["Destination"] not in self.state.accounts:
                return "tecNO_DST"
        return "tesSUCCESS"

    # -- transactors --------------------------------------------------------------------------------------

    def _do_apply(self, ctx: _Context) -> str:
        kind = ctx.tx["TransactionType"]
        if kind == "Payment":
            return self._payment(ctx)
        if kind == "PaymentChannelCreate":
            return self._channel_create(ctx)
        if kind == "PaymentChannelFund":
            return self._channel_fund(ctx)
        return self._channel_claim(ctx)

    def _payment(self, ctx: _Context) -> str:
        tx = ctx.tx
        if not isinstance(tx["Amount"], str):
            return "tecPATH_DRY"  # issued currencies: no trust lines exist in this emulator
        amount = int(tx["Amount"])
        src = self.state.accounts[ctx.account]
        dst = self.state.accounts.get(tx["Destination"])
        if dst is None:
            if amount < self.reserve_base:
                return "tecNO_DST_INSUF_XRP"
            # DeletableAccounts: a new account starts at the sequence of the ledger that creates it.
            dst = AccountRoot(tx["Destination"], 0, ctx.open_index)
            self.state.accounts[dst.account] = dst
        if ctx.prior_balance < amount + max(self.reserve(src.owner_count), int(tx["Fee"])):
            return "tecUNFUNDED_PAYMENT"
        src.balance -= amount
        dst.balance += amount
        return "tesSUCCESS"

    def _channel_create(self, ctx: _Context) -> str:
        tx = ctx.tx
        cancel_after = tx.get("CancelAfter")
        if cancel_after is not None and ctx.parent_close_time >= cancel_after:
            return "tecEXPIRED"
        src = self.state.accounts[ctx.account]
        amount = int(tx["Amount"])
        cid = channel_id(ctx.account, tx["Destination"], ctx.sequence)
        self.state.channels[cid] = PayChannel(
            channel_id=cid,
            account=ctx.account,
            destination=tx["Destination"],
            amount=amount,
            balance=0,
            settle_delay=tx["SettleDelay"],
            public_key=tx["PublicKey"].upper(),
            cancel_after=cancel_after,
            source_tag=tx.get("SourceTag"),
            destination_tag=tx.get("DestinationTag"),
        )
        src.balance -= amount
        src.owner_count += 1
        return "tesSUCCESS"

    def _close_channel(self, chan: PayChannel) -> str:
        src = self.state.accounts[chan.account]
        src.balance += chan.amount - chan.balance
        src.owner_count -= 1
        del self.state.channels[chan.channel_id]
        return "tesSUCCESS"

    def _is_past(self, chan: PayChannel, close_time: int) -> bool:
        return (chan.cancel_after is not None and close_time >= chan.cancel_after) or (
            chan.expiration is not None and close_time >= chan.expiration
        )

    def _channel_fund(self, ctx: _Context) -> str:
        tx = ctx.tx
        chan = self.state.channels.get(tx["Channel"].upper())
        if chan is None:
            return "tecNO_ENTRY"
        if self._is_past(chan, ctx.parent_close_time):
            return self._close_channel(chan)
        if chan.account != ctx.account:
            return "tecNO_PERMISSION"
        extend = tx.get("Expiration")
        if extend is not None:
            minimum = ctx.parent_close_time + chan.settle_delay
            if chan.expiration is not None and chan.expiration < minimum:
                minimum = chan.expiration
            if extend < minimum:
                return "temBAD_EXPIRATION"
            chan.expiration = extend
        src = self.state.accounts[ctx.account]
        amount = int(tx["Amount"])
        reserve = self.reserve(src.owner_count)
        if src.balance < reserve:
            return "tecINSUFFICIENT_RESERVE"
        if src.balance < reserve + amount:
            return "tecUNFUNDED"
        if chan.destination not in self.state.accounts:
            return "tecNO_DST"
        chan.amount += amount
        src.balance -= amount
        return "tesSUCCESS"

    def _channel_claim(self, ctx: _Context) -> str:
        tx = ctx.tx
        chan = self.state.channels.get(tx["Channel"].upper())
        if chan is None:
            return "tecNO_TARGET"
        if self._is_past(chan, ctx.parent_close_time):
            return self._close_channel(chan)
        src, dst, who = chan.account, chan.destination, ctx.account
        if who not in (src, dst):
            return "tecNO_PERMISSION"
        if "Balance" in tx:
            requested = int(tx["Balance"])
            if who == dst and "Signature" not in tx:
                return "temBAD_SIGNATURE"
            if "Signature" in tx and str(tx["PublicKey"]).upper() != chan.public_key:
                return "temBAD_SIGNER"
            if requested > chan.amount or requested <= chan.balance:
                return "tecUNFUNDED_PAYMENT"
            receiver = self.state.accounts.get(dst)
            if receiver is None:
                return "tecNO_DST"
            receiver.balance += requested - chan.balance
            chan.balance = requested
        flags = int(tx.get("Flags", 0))
        if flags & TF_RENEW:
            if who != src:
                return "tecNO_PERMISSION"
            chan.expiration = None
        if flags & TF_CLOSE:
            if who == dst or chan.balance == chan.amount:
                return self._close_channel(chan)
            settle = ctx.parent_close_time + chan.settle_delay
            if chan.expiration is None or chan.expiration > settle:
                chan.expiration = settle
        return "tesSUCCESS"

    # -- metadata -----------------------------------------------------------------------------------------

    def _metadata(self, before: State, after: State, txid: str, result: str, tx: dict[str, Any]) -> dict[str, Any]:
        nodes: list[dict[str, Any]] = []
        lgr = self.open_index
        entries: list[tuple[str, str, Any, Any]] = []
        for address in sorted(set(before.accounts) | set(after.accounts)):
            entries.append(("AccountRoot", account_root_index(address),
                            before.accounts.get(address), after.accounts.get(address)))
        for cid in sorted(set(before.channels) | set(after.channels)):
            entries.append(("PayChannel", cid, before.channels.get(cid), after.channels.get(cid)))
        for kind, index, old, new in entries:
            if old is not None and new is not None and old == new:
                continue
            if new is not None:
                new.previous_txn_id = txid
                new.previous_txn_lgr_seq = lgr
            if old is None:
                fresh = {k: v for k, v in new.fields().items() if k not in ("PreviousTxnID", "PreviousTxnLgrSeq")}
                nodes.append({"CreatedNode": {"LedgerEntryType": kind, "LedgerIndex": index, "NewFields": fresh}})
            elif new is None:
                nodes.append({"DeletedNode": {"LedgerEntryType": kind, "LedgerIndex": index,
                                              "FinalFields": old.fields()}})
            else:
                old_fields, new_fields = old.fields(), new.fields()
                previous = {k: v for k, v in old_fields.items()
                            if new_fields.get(k) != v and k not in ("PreviousTxnID", "PreviousTxnLgrSeq")}
                final = {k: v for k, v in new_fields.items() if k not in ("PreviousTxnID", "PreviousTxnLgrSeq")}
                node: dict[str, Any] = {"LedgerEntryType": kind, "LedgerIndex": index, "FinalFields": final,
                                        "PreviousTxnID": old.previous_txn_id,
                                        "PreviousTxnLgrSeq": old.previous_txn_lgr_seq}
                if previous:
                    node["PreviousFields"] = previous
                nodes.append({"ModifiedNode": node})
        meta: dict[str, Any] = {
            "AffectedNodes": nodes,
            "TransactionIndex": len(self.open_txs),
            "TransactionResult": result,
        }
        if tx.get("TransactionType") == "Payment":
            meta["delivered_amount"] = tx["Amount"] if result == "tesSUCCESS" else "unavailable"
        return meta


def _is_public_key(value: Any) -> bool:
    if not isinstance(value, str) or len(value) != 66:
        return False
    try:
        bytes.fromhex(value)
    except ValueError:
        return False
    return value[:2].upper() in ("ED", "02", "03")


def _is_hash256(value: Any) -> bool:
    if not isinstance(value, str) or len(value) != 64:
        return False
    try:
        bytes.fromhex(value)
    except ValueError:
        return False
    return True
