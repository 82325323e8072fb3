"""The ETH uplink: BTP to a parent running ilp-plugin-ethereum 3.0.0-beta.20 (role server), settled over our
Machinomy Unidirectional channel (us -> parent) and the parent's (parent -> us).

On every (re)connection: ILDCP, ``info`` both ways, our channel checked on chain (opened if there is none, with
the configured amount), and our latest claim sent again (the value-0 claim links a new channel). The server keeps
a maximum balance of 0 for us, so each outgoing Prepare is paid for before it is sent: ``ClaimBook.reserve``
accounts for it, the Prepares of one turn of the event loop share one commit and one claim (cumulative, it pays for
them all), which goes to the parent as a ``machinomy`` BTP Message (the way the JS plugin sends claims; its server
refuses BTP Transfers), and the Prepares follow once the parent has answered it. Claims from the parent are checked
against the channel as the chain reports it (a read serves the next claims for a few seconds: ``ChannelFacts``),
stored durably, and only then acknowledged; bad ones are refused with a BTP error and one log line. The state
(``UplinkState``: ``ClaimBook.to_json()`` plus what is needed to finish a channel opening) is in the Store under
namespace ``eth``, written before any claim leaves and before any claim is acknowledged.

After a crash the Prepares that were in flight are charged in our book whatever became of them, so the prepaid
credit is never carried over a connection: the handshake, before any Prepare of ours is sent, takes it from the
parent (credit probes, uplinks/btp/credit.py). It also tells the parent about a deposit it was never told of
(``channelDeposit``: made by eth:topup, or before a crash). A claim the parent does not take drops the link, so the
next handshake settles up again.
"""

from __future__ import annotations

# isort: off
from . import _ecc  # noqa: F401  (first: eth-account must be imported through it)
# isort: on

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from eth_account.signers.local import LocalAccount

from moneyd.btp import ilplink
from moneyd.btp.connection import BtpConnection, BtpPeerError, ConnectionClosed, RequestRefused
from moneyd.claimbook import StateSlot
from moneyd.store import Store
from moneyd.uplink import SettlementFacts, UplinkBalance
from moneyd.wire import btp, ildcp, ilp
from moneyd.wire.btp import ProtocolData
from moneyd.wire.ilp import ErrorCode, Prepare, Reject, Reply
from uplinks.btp import credit as credit_probe
from uplinks.btp.uplink import BtpUplink

from . import messages
from .book import ClaimBook
from .chain import DEFAULT_DISPUTE_PERIOD, EthChain, TxResult
from .claims import (
    MIN_DISPUTE_PERIOD,
    WEI_PER_UNIT,
    ChannelFacts,
    ChannelState,
    Claim,
    as_account,
    channel_id_hex,
    parse_channel_id,
    same_address,
)
from .errors import (
    ChainError,
    ClaimRejected,
    ConfigError,
    InsufficientCapacity,
    MoneydError,
    ProtocolError,
)

log = logging.getLogger("moneyd.uplink.eth")

NAMESPACE: Final = "eth"
ACCOUNTING_SCALE: Final = 9  # ilp-plugin-ethereum's accounting scale: one base unit is one gwei
DEFAULT_CHANNEL_WEI: Final = 5 * 10**16  # 0.05 ETH, the JS plugin's default outgoing channel amount
TOPUP_RETRY_SECONDS: Final = 60
# How long a chain read of the parent's channel checks its next claims (claims.ChannelFacts says why that is
# safe): under one Ethereum block (12 s), and it spares a JSON-RPC call per claim.
CHANNEL_FACTS_MAX_AGE: Final = 5.0


def eth(wei: int) -> str:
    """Wei as ETH for people: ``0.05 ETH``."""
    return f"{Decimal(wei).scaleb(-18).normalize():f} ETH"


def state_key(chain_id: int, contract: str, address: str) -> str:
    """Where the uplink's state for this key, contract and chain lives in the Store (namespace ``eth``)."""
    return f"{chain_id}:{contract.lower()}:{address.lower()}"


@dataclass
class UplinkState:
    """What the Store keeps: the claim book, the parent's Ethereum address, a channel being opened (its id is
    written before the transaction goes out, so a crash cannot lose it) and our older channels still to settle."""

    book: ClaimBook
    parent_address: str | None = None
    pending_open: dict[str, str] | None = None
    retired: list[str] = field(default_factory=list)
    announced: int | None = None  # our channel's value (wei) as the parent was last told it

    def to_json(self) -> dict[str, Any]:
        return {
            "book": self.book.to_json(),
            "parentAddress": self.parent_address,
            "pendingOpen": self.pending_open,
            "retired": list(self.retired),
            "announced": None if self.announced is None else str(self.announced),
        }

    @classmethod
    def from_json(
        cls, data: dict[str, Any], account: LocalAccount, contract: str, min_incoming_dispute_period: int = MIN_DISPUTE_PERIOD,
        key: str = "",
    ) -> UplinkState:
        """The state ``to_json`` wrote. A damaged record raises ProtocolError."""
        if not isinstance(data.get("book"), dict):
            raise ProtocolError(f"the stored ETH uplink state {key!r} is damaged (no claim book)")
        book = ClaimBook.from_json(account, data["book"], min_incoming_dispute_period=min_incoming_dispute_period)
        if not same_address(book.contract, contract):
            raise ProtocolError(f"the stored ETH uplink state {key!r} is for contract {book.contract}, not {contract}")
        pending = data.get("pendingOpen")
        retired = data.get("retired") or []
        parent = data.get("parentAddress")
        if (pending is not None and not isinstance(pending, dict)) or not isinstance(retired, list):
            raise ProtocolError(f"the stored ETH uplink state {key!r} is damaged")
        announced = data.get("announced")
        return cls(book, parent if isinstance(parent, str) else None, pending, [str(r) for r in retired],
                   int(announced) if isinstance(announced, str) and announced.isdigit() else None)

    @staticmethod
    def slot(
        store: Store, key: str, account: LocalAccount, contract: str, min_incoming_dispute_period: int = MIN_DISPUTE_PERIOD
    ) -> StateSlot[UplinkState]:
        """Where the state for ``key`` (``state_key``) lives in the Store."""
        return StateSlot(store, NAMESPACE, key,
                         lambda data: UplinkState.from_json(data, account, contract, min_incoming_dispute_period, key))

    @classmethod
    def load(
        cls, store: Store, key: str, account: LocalAccount, contract: str, min_incoming_dispute_period: int = MIN_DISPUTE_PERIOD
    ) -> UplinkState:
        """The stored state, or a fresh one. A damaged record raises ProtocolError (nothing is overwritten)."""
        stored = cls.slot(store, key, account, contract, min_incoming_dispute_period).load()
        if stored is not None:
            return stored
        return cls(ClaimBook(account, contract, min_incoming_dispute_period=min_incoming_dispute_period))

    def save(self, store: Store, key: str) -> None:
        """Commit ``to_json()`` under ``key`` (as ``slot(...).save``); returns once it is on disk."""
        store.put(NAMESPACE, key, self.to_json())


@dataclass(frozen=True)
class EthSettings:
    """What an ETH uplink is configured with: the parent (a BTP URL), the Ethereum node, our key, the contract
    (None: the one known for the chain) and the channel amount, then tunables with the JS plugin's defaults."""

    parent_url: str
    provider_url: str
    key: LocalAccount | str | bytes = field(repr=False)
    contract: str | None = None
    channel_amount: int = DEFAULT_CHANNEL_WEI  # wei, for each channel we open and each top-up
    topup_below: int | None = None  # wei left unpromised in our channel that starts a top-up (None: half the amount)
    auto_topup: bool = True
    dispute_period: int = DEFAULT_DISPUTE_PERIOD  # blocks, for the channels we open
    min_incoming_dispute_period: int = MIN_DISPUTE_PERIOD  # blocks, refused below for the parent's channel
    claim_on_close: bool = False  # claim the parent's channel when moneyd stops
    watch_interval: float = 60.0
    claim_attempts: int = 20
    claim_retry_delay: float = 0.25
    receipt_timeout: float = 120.0
    channel_facts_max_age: float = CHANNEL_FACTS_MAX_AGE
    connect_timeout: float = 10.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    startup_wait: float | None = 0.0  # seconds to wait for a node or parent that does not answer at start

    def __post_init__(self) -> None:
        if self.channel_amount <= 0:
            raise ConfigError(f"channel amount {self.channel_amount} wei must be positive")


@dataclass(slots=True)
class _Batch:
    """Prepares whose book changes share one commit (and one claim, when they need one)."""

    committed: asyncio.Future[None]
    claim: Claim | None = None
    sent: asyncio.Task[tuple[ProtocolData, ...]] | None = None


class EthUplink(BtpUplink):
    """moneyd's uplink to a parent running ilp-plugin-ethereum (server role)."""

    def __init__(self, settings: EthSettings, store: Store) -> None:
        s = settings
        super().__init__(s.parent_url, connect_timeout=s.connect_timeout, backoff_initial=s.backoff_initial,
                         backoff_max=s.backoff_max, startup_wait=s.startup_wait)
        self.settings = settings
        self.provider_url = s.provider_url
        self.account = as_account(s.key)
        self.address: str = self.account.address
        self.store = store
        self.contract_hint = s.contract
        self.channel_amount = s.channel_amount
        self.topup_below = s.channel_amount // 2 if s.topup_below is None else s.topup_below
        self.auto_topup = s.auto_topup
        self.dispute_period = s.dispute_period
        self.min_incoming_dispute_period = s.min_incoming_dispute_period
        self.claim_on_close = s.claim_on_close
        self.watch_interval = s.watch_interval
        self.claim_attempts = max(1, s.claim_attempts)
        self.claim_retry_delay = s.claim_retry_delay
        self.receipt_timeout = s.receipt_timeout
        self.chain: EthChain | None = None
        self.state: UplinkState | None = None
        self.slot: StateSlot[UplinkState] | None = None
        self.key = ""
        self.ready = asyncio.Event()  # set once the handshake on the current connection is done
        self._channel_lock = asyncio.Lock()
        self._incoming_lock = asyncio.Lock()
        self._incoming_facts = ChannelFacts(s.channel_facts_max_age)
        # The last chain read of the parent's channel, whatever it was read for: status pages show its value
        # (a deposit shows at the next read: a claim, or the watcher's round).
        self._incoming_read: ChannelState | None = None
        self._batch: _Batch | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._topup_task: asyncio.Task[None] | None = None
        self._topup_retry_at = 0.0

    # -- state ------------------------------------------------------------------------------------------------

    @property
    def book(self) -> ClaimBook:
        assert self.state is not None, "connect() first"
        return self.state.book

    def _persist(self) -> None:
        assert self.state is not None and self.slot is not None
        self.slot.save(self.state)

    async def _persist_batched(self) -> _Batch:
        """``_persist`` shared by every Prepare that changed the book in this turn of the event loop: returns once
        a commit made after the caller's change is durable, so many packets in flight cost one fsync, not one each.
        The commit signs first one claim for all the batch's reserves (claims are cumulative), so they cost one
        signature and one claim message too. The commit is the same synchronous write as ``_persist``, so writes
        stay in order (never an older state over a newer one)."""
        batch = self._batch
        if batch is None:
            loop = asyncio.get_running_loop()
            batch = self._batch = _Batch(loop.create_future())
            loop.call_soon(self._commit_batch)  # after the callbacks already scheduled in this turn
        await asyncio.shield(batch.committed)  # one waiter cancelled (its Prepare expired) must not cancel the rest
        return batch

    def _commit_batch(self) -> None:
        batch, self._batch = self._batch, None
        assert batch is not None
        try:
            batch.claim = self.book.sign_promised()
            self._persist()
        except Exception as e:  # every waiter gets the failure (nothing of theirs leaves)
            batch.committed.set_exception(e)
            batch.committed.exception()  # retrieved: no "never retrieved" warning when all waiters are gone
        else:
            batch.committed.set_result(None)

    async def _send_batch_claim(self, conn: BtpConnection, batch: _Batch, timeout: float) -> None:
        """The batch's claim at the parent (sent once, for every Prepare of the batch that needs it)."""
        claim = batch.claim
        if claim is None:  # our channel closed or changed before the batch was signed
            raise ConnectionClosed("our channel to the parent closed")
        sent = batch.sent
        if sent is None:
            sent = batch.sent = asyncio.create_task(conn.request([messages.machinomy(claim)], timeout=min(timeout, 30.0)))
            sent.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved, whoever still waits
        await asyncio.shield(sent)

    # -- connecting -------------------------------------------------------------------------------------------

    async def connect(self) -> None:
        try:
            # The node first (the handshake reads the channels there), waiting for it as for the parent; a node that
            # answers wrongly (no contract, unknown chain) ends the start at once.
            self.chain = await self.keep_trying("the Ethereum node", lambda: EthChain.connect(
                self.provider_url, self.account, self.contract_hint, receipt_timeout=self.receipt_timeout
            ), ChainError)
        except MoneydError as e:
            raise ConnectionError(str(e)) from None
        self.key = state_key(self.chain.chain_id, self.chain.contract_address, self.address)
        self.slot = UplinkState.slot(self.store, self.key, self.account, self.chain.contract_address,
                                     self.min_incoming_dispute_period)
        try:
            self.state = self.slot.load() or UplinkState(
                ClaimBook(self.account, self.chain.contract_address,
                          min_incoming_dispute_period=self.min_incoming_dispute_period))
        except ProtocolError as e:
            await self.chain.close()
            raise ConnectionError(str(e)) from None
        log.info("ETH account %s on chain %d, contract %s", self.address, self.chain.chain_id, self.chain.contract_address)
        try:
            await super().connect()
        except BaseException:
            await self._drop_connection()
            await self.chain.close()
            raise
        self._watcher = asyncio.create_task(self._watch())

    async def _drop_connection(self) -> None:
        self.ready.clear()
        if self.conn is not None:
            await self.conn.close()
            self.conn = None
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader

    async def _open(self) -> None:
        self.ready.clear()
        await super()._open()

    async def _fetch_info(self) -> ildcp.IldcpResponse:
        """ILDCP, then the ETH handshake; BtpUplink runs this on every (re)connection."""
        info = await super()._fetch_info()
        if info.asset_scale != ACCOUNTING_SCALE:
            raise ConnectionError(
                f"the parent settles {info.asset_code} at scale {info.asset_scale}; ilp-plugin-ethereum accounts in "
                f"gwei (scale {ACCOUNTING_SCALE}), so amounts would be off by a power of ten"
            )
        conn = self.conn
        assert conn is not None
        await self._handshake(conn, info.client_address)
        return info

    async def _handshake(self, conn: BtpConnection, address: str = "") -> None:
        assert self.state is not None
        try:
            reply = await conn.request([messages.info(self.address)])
        except BtpPeerError as e:
            raise ConnectionError(f"the parent refused our Ethereum address: {e}") from None
        try:
            parent = messages.parse_info(reply)
        except ProtocolError as e:
            raise ConnectionError(f"the parent's answer to our info is invalid: {e}") from None
        if parent is None:
            raise ConnectionError("the parent did not answer with its Ethereum address (is it running ilp-plugin-ethereum?)")
        if self.state.parent_address is not None and not same_address(self.state.parent_address, parent):
            log.warning("the parent's Ethereum address is now %s (was %s)", parent, self.state.parent_address)
        if self.state.parent_address != parent:
            self.state.parent_address = parent
            self._persist()
        await self._ensure_channel(parent)
        claim = self.book.last_sent
        if claim is not None:  # links a new channel; after a restart, makes sure the parent has our latest claim
            try:
                await conn.request([messages.machinomy(claim)])
            except BtpPeerError as e:
                log.warning("the parent refused our claim for %s on channel %s: %s", eth(claim.value), channel_id_hex(claim.channel_id), e)
        out = self.book.outgoing
        if out is not None and claim is not None and self.state.announced != out.value:
            # A deposit the parent never heard of (it completed while we were down): it reads the chain again.
            if self.state.announced is not None:
                log.info("our channel holds %s, the parent was last told %s: telling it", eth(out.value), eth(self.state.announced))
                with contextlib.suppress(BtpPeerError):
                    await conn.request([messages.channel_deposit()])
            self.state.announced = out.value
            self._persist()
        if address:
            await self._reconcile(conn, address)
        self.ready.set()

    async def _reconcile(self, conn: BtpConnection, address: str) -> None:
        """Take the prepaid credit from the parent: what it holds is what counts (see the module doc)."""
        guess = self.book.credit()
        destination = credit_probe.probe_destination(address)

        async def ask(amount: int) -> credit_probe.Answer | None:
            return await credit_probe.ask_parent(conn, amount, destination, credit_probe.read_t04)

        # It cannot hold more than our claims ever paid it.
        credit = await credit_probe.find_credit(ask, guess, upper=self.book.paid)
        if credit is None:
            log.warning("the parent did not say how much of our credit it holds; keeping our count (%d)", guess)
            return
        if credit != guess:
            log.info("the parent holds %d of our prepaid credit, we counted %d: taking the parent's figure", credit, guess)
            self.book.charged = self.book.paid - credit
            self._persist()

    async def _ensure_channel(self, parent: str) -> None:
        """Our channel to ``parent`` exists on chain and is in the book; open one when there is none."""
        assert self.chain is not None and self.state is not None
        chain, st = self.chain, self.state
        async with self._channel_lock:
            if st.pending_open is not None:
                cid = parse_channel_id(st.pending_open["channelId"])
                ch = await chain.channel(cid)
                if ch.exists and same_address(ch.sender, self.address) and self.book.outgoing is None:
                    log.info("found our channel %s (opened before a restart), %s", channel_id_hex(cid), eth(ch.value))
                    self.book.open_outgoing(cid, ch.receiver, ch.value)
                elif not ch.exists:
                    # Never mined, or not yet: eth:cleanup looks at it again, should it appear after all.
                    st.retired.append(channel_id_hex(cid))
                st.pending_open = None
                self._persist()
            out = self.book.outgoing
            if out is not None:
                ch = await chain.channel(out.channel_id)
                cid_hex = channel_id_hex(out.channel_id)
                if not ch.exists:
                    log.info("our channel %s is closed (claimed by the parent or settled)", cid_hex)
                    self.book.outgoing_closed()
                    self._persist()
                elif ch.is_settling or not same_address(ch.receiver, parent):
                    why = "is settling" if ch.is_settling else f"pays {ch.receiver}, not the parent's {parent}"
                    log.warning("our channel %s %s: opening a new one (eth:cleanup settles the old one)", cid_hex, why)
                    st.retired.append(cid_hex)
                    self.book.outgoing_closed()
                    self._persist()
                elif ch.value > out.value:
                    self.book.deposited(ch.value)
                    self._persist()
            if self.book.outgoing is None:
                balance = await chain.balance()
                if balance <= self.channel_amount:
                    raise ConnectionError(
                        f"cannot open our payment channel to the parent: the account {self.address} holds "
                        f"{eth(balance)}, a channel of {eth(self.channel_amount)} needs that and the fee"
                    )
                cid = secrets.token_bytes(32)
                st.pending_open = {"channelId": channel_id_hex(cid), "receiver": parent, "value": str(self.channel_amount)}
                self._persist()
                log.info("opening a channel of %s to the parent %s …", eth(self.channel_amount), parent)
                try:
                    _, tx = await chain.open_channel(parent, self.channel_amount, self.dispute_period, channel_id=cid)
                except ChainError as e:
                    if "not confirmed" not in str(e):  # refused or reverted: nothing of it is on chain
                        st.pending_open = None
                        self._persist()
                    raise ConnectionError(f"cannot open our payment channel to the parent: {e}") from None
                self.book.open_outgoing(cid, parent, self.channel_amount)
                st.pending_open = None
                self._persist()
                log.info("opened channel %s (fee %s)", channel_id_hex(cid), eth(tx.fee))

    # -- sending ----------------------------------------------------------------------------------------------

    async def send_prepare(self, prepare: Prepare) -> Reply:
        conn = self.conn
        if conn is None or conn.closed.is_set() or not self.ready.is_set() or self.state is None:
            return Reject(ErrorCode.T01_PEER_UNREACHABLE, self._address, "the parent is unreachable; moneyd is reconnecting")
        amount = prepare.amount
        try:
            needs_claim = self.book.reserve(amount)
        except InsufficientCapacity:
            await self._refresh_outgoing()
            try:
                needs_claim = self.book.reserve(amount)
            except InsufficientCapacity as e:
                self._maybe_topup()
                return self._too_large(amount, str(e))
        timeout = max(0.0, (prepare.expires_at - datetime.now(UTC)).total_seconds())
        if amount > 0 or needs_claim:
            # Durable before the claim or the Prepare leaves: after a crash we never sign below what the parent
            # holds, nor count on credit it has already charged (what is in flight counts as charged).
            batch = await self._persist_batched()
        if needs_claim:
            try:
                await self._send_batch_claim(conn, batch, timeout)
            except (ConnectionClosed, BtpPeerError, TimeoutError) as e:
                self.book.rejected(amount)
                await self._persist_batched()
                if not isinstance(e, ConnectionClosed):
                    # Not taken, or not known to be: drop the link, the next handshake takes the credit from the parent.
                    self.ready.clear()
                    await conn.close()
                return Reject(ErrorCode.T01_PEER_UNREACHABLE, self._address, f"the parent did not take our claim: {e or type(e).__name__}")
            self._maybe_topup()
        try:
            reply = await ilplink.request_prepare(conn, prepare, self._address, timeout, peer="the parent")
        except ilplink.LinkFailure as e:
            return e.reject(self._address)  # still charged: the parent may have the Prepare (a timeout, too)
        if isinstance(reply, Reject):
            # The server credits a rejected Prepare back; so do we.
            self.book.rejected(amount)
            await self._persist_batched()
            if reply.code == ErrorCode.T04_INSUFFICIENT_LIQUIDITY and self.book.last_sent is not None:
                self._spawn(self._resend_last_claim())  # as the JS plugin does: the parent may have missed one
        return reply

    def _too_large(self, amount: int, why: str) -> Reject:
        """F08 with the largest amount our channel can pay now (so STREAM senders adapt), or T04 when it is spent."""
        out = self.book.outgoing
        maximum = max(0, self.book.credit()) + (out.remaining // WEI_PER_UNIT if out is not None else 0)
        if maximum > 0:
            return Reject(
                ErrorCode.F08_AMOUNT_TOO_LARGE,
                self._address,
                f"our payment channel to the parent can pay at most {maximum} now: {why}",
                ilp.encode_amount_too_large(ilp.AmountTooLargeData(amount, maximum)),
            )
        return Reject(ErrorCode.T04_INSUFFICIENT_LIQUIDITY, self._address, f"our payment channel to the parent is spent: {why}")

    async def _resend_last_claim(self) -> None:
        """After a T04 from the parent: check our channel is still there, and send our latest claim again."""
        await self._refresh_outgoing()
        if self.book.outgoing is None:
            self._maybe_topup()  # the parent closed it: open a new one
            return
        conn, claim = self.conn, self.book.last_sent
        if conn is None or claim is None:
            return
        with contextlib.suppress(ConnectionClosed, BtpPeerError, TimeoutError):
            await conn.request([messages.machinomy(claim)])

    async def _refresh_outgoing(self) -> None:
        """Read our channel from chain: a deposit made by eth:topup while we run, or the parent closed it."""
        out = self.book.outgoing
        if out is None or self.chain is None:
            return
        try:
            ch = await self.chain.channel(out.channel_id)
        except ChainError as e:
            log.warning("cannot read our channel: %s", e)
            return
        if self.book.outgoing is None or self.book.outgoing.channel_id != out.channel_id:
            return
        if not ch.exists:
            log.warning("our channel %s is closed (the parent claimed it)", channel_id_hex(out.channel_id))
            self.book.outgoing_closed()
            self._persist()
        elif ch.value > out.value:
            self.book.deposited(ch.value)
            self._persist()

    def _maybe_topup(self) -> None:
        """Deposit the channel amount when our channel runs low, or open a new channel when it is gone (the parent
        claimed it); in the background, and not again for a minute after a failure."""
        if not self.auto_topup or self._closing:
            return
        if self.book.outgoing is not None and not self.book.needs_topup(self.topup_below):
            return
        if self._topup_task is not None and not self._topup_task.done():
            return
        if asyncio.get_running_loop().time() < self._topup_retry_at:
            return
        self._topup_task = asyncio.create_task(self._auto_topup())

    async def _auto_topup(self) -> None:
        try:
            if self.book.outgoing is None:
                parent = self.state.parent_address if self.state is not None else None
                conn = self.conn
                if parent is None or conn is None:
                    return
                await self._ensure_channel(parent)
                claim = self.book.last_sent
                if claim is not None:
                    await conn.request([messages.machinomy(claim)])
            else:
                await self.topup(self.channel_amount)
        except (MoneydError, ConnectionError, BtpPeerError, TimeoutError) as e:
            self._topup_retry_at = asyncio.get_running_loop().time() + TOPUP_RETRY_SECONDS
            log.error("cannot fund our channel to the parent (next try in %d s): %s", TOPUP_RETRY_SECONDS, e)

    async def topup(self, value: int) -> TxResult:
        """Deposit ``value`` wei more into our channel, then tell the parent (``channelDeposit``)."""
        assert self.chain is not None
        async with self._channel_lock:
            out = self.book.outgoing
            if out is None:
                raise ConnectionError("no channel to the parent is open yet")
            log.info("depositing %s into our channel %s …", eth(value), channel_id_hex(out.channel_id))
            tx = await self.chain.deposit(out.channel_id, value)
            ch = await self.chain.channel(out.channel_id)
            if self.book.outgoing is not None and self.book.outgoing.channel_id == out.channel_id:
                self.book.deposited(max(ch.value, out.value + value))
                self._persist()
            log.info("our channel now holds %s (fee %s)", eth(ch.value), eth(tx.fee))
        conn = self.conn
        if conn is not None:
            try:
                await conn.request([messages.channel_deposit()])
            except (ConnectionClosed, BtpPeerError, TimeoutError) as e:
                log.warning("could not tell the parent about the deposit: %s", e)
            else:
                if self.state is not None and self.book.outgoing is not None:
                    self.state.announced = self.book.outgoing.value
                    self._persist()
        return tx

    async def request_close(self, wait: float = 10.0) -> bool:
        """Ask the parent to claim our channel now (``requestClose``); True once it is gone from chain."""
        conn, out = self.conn, self.book.outgoing
        if conn is None or out is None or self.chain is None:
            return False
        await conn.request([messages.request_close()], timeout=max(wait, 30.0))
        deadline = asyncio.get_running_loop().time() + wait
        while True:
            ch = await self.chain.channel(out.channel_id)
            if not ch.exists:
                async with self._channel_lock:
                    if self.book.outgoing is not None and self.book.outgoing.channel_id == out.channel_id:
                        self.book.outgoing_closed()
                        self._persist()
                log.info("the parent claimed our channel %s", channel_id_hex(out.channel_id))
                return True
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(0.25)

    # -- receiving --------------------------------------------------------------------------------------------

    async def _on_request(self, frame: btp.Message | btp.Transfer) -> Sequence[ProtocolData]:
        if isinstance(frame, btp.Transfer):
            raise RequestRefused("F00", "NotAcceptedError", "ilp-plugin-ethereum sends claims as machinomy messages, not BTP transfers")
        kind = messages.kind(frame.protocol_data)
        if kind == messages.INFO:
            try:
                parent = messages.parse_info(frame.protocol_data)
            except ProtocolError as e:
                log.warning("refused the parent's info: %s", e)
                raise RequestRefused("F01", "InvalidFieldsError", str(e)) from None
            known = self.state.parent_address if self.state is not None else None
            if parent is not None and known is not None and not same_address(parent, known):
                log.warning("the parent says its Ethereum address is %s, we know %s", parent, known)
            return (messages.info(self.address),)
        if kind == messages.CHANNEL_DEPOSIT:
            self._incoming_facts.forget()  # every claim is checked against the channel as the chain reports it
            return ()
        if kind == messages.REQUEST_CLOSE:
            log.info("the parent asks us to claim its channel")
            try:
                await self.claim_incoming(force=True)
            except MoneydError as e:
                log.error("cannot claim the parent's channel: %s", e)
                raise RequestRefused("T00", "UnreachableError", f"cannot claim: {e}") from None
            return ()
        if kind == messages.MACHINOMY:
            await self._receive_claim(frame.protocol_data)
            return ()
        if kind == messages.ILP:
            return await ilplink.answer(frame.protocol_data, self._incoming_prepare, self._address)
        names = ", ".join(p.protocol_name for p in frame.protocol_data) or "nothing"
        raise RequestRefused("F00", "NotAcceptedError", f"unexpected message from the parent (carries {names})")

    async def _receive_claim(self, protocol_data: Sequence[ProtocolData]) -> None:
        try:
            claim = messages.parse_machinomy(protocol_data)
        except ClaimRejected as e:
            log.warning("refused a claim from the parent (%s): %s", e.reason, e)
            raise RequestRefused("F01", "InvalidFieldsError", f"claim refused ({e.reason}): {e}") from None
        assert claim is not None and self.chain is not None
        async with self._incoming_lock:
            attempt = 0
            while True:
                attempt += 1
                try:
                    now = asyncio.get_running_loop().time()
                    state = self._incoming_facts.fresh_for(claim, now) if attempt == 1 else None
                    if state is None:
                        state = await self.chain.channel(claim.channel_id)
                        self._incoming_facts.remember(state, now)
                        self._incoming_read = state
                    try:
                        credited = self.book.receive(claim, state)
                    except ClaimRejected as e:
                        if e.reason == "channel" and await self._linked_channel_gone():
                            continue
                        if e.reason in ("no_channel", "above_value") and attempt < self.claim_attempts:
                            await asyncio.sleep(self.claim_retry_delay)  # the parent's transaction may not show yet
                            continue
                        log.warning("refused a claim from the parent on channel %s (%s): %s", channel_id_hex(claim.channel_id), e.reason, e)
                        raise RequestRefused("F00", "NotAcceptedError", f"claim refused ({e.reason}): {e}") from None
                except ChainError as e:
                    log.warning("cannot check a claim from the parent: %s", e)
                    raise RequestRefused("T00", "UnreachableError", f"cannot check the claim on chain: {e}") from None
                break
            self._persist()  # durable before the parent hears back
        if credited:
            log.info("claim from the parent accepted: +%d gwei (channel %s now promises %s)", credited, channel_id_hex(claim.channel_id), eth(claim.value))
        else:
            log.info("the parent linked its channel %s (%s)", channel_id_hex(claim.channel_id), eth(state.value))

    async def _linked_channel_gone(self) -> bool:
        """The channel linked to the parent closed (we claimed it, or it settled): forget it, so the parent's
        new channel can be linked."""
        linked = self.book.incoming_channel
        if linked is None or self.chain is None:
            return False
        self._incoming_facts.forget()
        ch = await self.chain.channel(linked)
        self._incoming_read = ch
        if ch.exists:
            return False
        log.info("the parent's old channel %s is closed; its next channel can be linked", channel_id_hex(linked))
        self.book.incoming_claimed()
        self._persist()
        return True

    async def claim_incoming(self, force: bool = True) -> TxResult | None:
        """Claim the parent's best claim on chain, when it gains more than the fee (``force``) or the parent
        started settling (always). Returns the transaction, or None when nothing was claimed."""
        assert self.chain is not None
        async with self._incoming_lock:
            self._incoming_facts.forget()  # the channel is about to be read, and maybe closed
            best = self.book.claimable()
            if best is None:
                return None
            ch = await self.chain.channel(best.channel_id)
            self._incoming_read = ch
            if not ch.exists:
                self.book.incoming_claimed()
                self._persist()
                return None
            if not force and not ch.is_settling:
                return None
            fee = await self.chain.claim_fee(best)
            if not self.book.should_claim(fee, ch, force=force):
                return None
            tx = await self.chain.claim(best)
            self.book.incoming_claimed()
            self._persist()
        log.info("claimed %s from the parent's channel %s (fee %s)", eth(min(best.value, ch.value)), channel_id_hex(best.channel_id), eth(tx.fee))
        return tx

    async def _watch(self) -> None:
        """Claim before the parent's dispute period ends, should it start settling its channel to us."""
        while not self._closing:
            await asyncio.sleep(self.watch_interval)
            if self.state is None or self.book.incoming_channel is None:
                continue
            try:
                await self.claim_incoming(force=False)
            except MoneydError as e:
                log.warning("channel watcher: %s", e)

    # -- closing ----------------------------------------------------------------------------------------------

    def balance(self) -> UplinkBalance | None:
        """The book's prepaid credit and its limits (ClaimBook.uplink_balance)."""
        return self.book.uplink_balance() if self.state is not None else None

    def settlement(self) -> SettlementFacts | None:
        if self.state is None:
            return SettlementFacts("eth", self.provider_url)
        ours, theirs = self.book.channels(self._incoming_read)
        return SettlementFacts("eth", self.provider_url, ours, theirs)

    async def close(self) -> None:
        if self._closing and self.chain is None:
            return
        self._closing = True
        for task in (self._watcher, self._topup_task, *self._tasks):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self.chain is not None and self.state is not None:
            try:
                await self.claim_incoming(force=self.claim_on_close)
            except (TimeoutError, MoneydError) as e:
                log.error("could not claim the parent's channel on the way out: %s", e)
        await super().close()
        if self.chain is not None:
            await self.chain.close()
            self.chain = None


__all__ = ["DEFAULT_CHANNEL_WEI", "NAMESPACE", "WEI_PER_UNIT", "EthSettings", "EthUplink", "UplinkState", "eth", "state_key"]
