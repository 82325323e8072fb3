"""The XRP uplink: moneyd as the client of a parent running ilp-plugin-xrp-asym-server, settling over XRP
payment channels.

The protocol decisions live in the pure ClaimBook (book.py) and the message codecs (messages.py); this module
only moves bytes and ledger transactions around them. The BTP link itself (reconnect with backoff, T01 while
down, ILDCP) is the plain BTP uplink's; on every (re)connect the asym handshake runs first:

  info → our channel (find or create, then prove it ours; proved again when the ledger shows more in it than the
  parent was last told, e.g. a top-up that completed while moneyd was down) → last_claim and the parent's credit
  (``reconcile``) → the parent's channel to us (fund_channel)

Money state is durable before it is acknowledged: an incoming claim is committed to the Store before the
Transfer is answered and before it pays for anything (claims that arrive together share one commit, written in a
thread: the asym server sends one after every Fulfill), and a claim we sign is committed before it is sent. An
incoming Prepare that finds the balance limit full waits briefly for the claims on their way rather than a T04. Our prepaid credit is never carried
over a connection: at every (re)connection, with our Prepares held back (T01), it is set from what the parent
holds (its last_claim, and its prepared balance learned by credit probes, uplinks/btp/credit.py), so a crash, a
lost claim or a Prepare whose fate went with the process cannot make the two books drift apart. A claim the
parent refuses is not counted as paid: the link is dropped and the reconnection reconciles.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from xrpl.wallet import Wallet

from moneyd.btp import ilplink
from moneyd.btp.connection import BtpPeerError, ConnectionClosed, RequestRefused
from moneyd.btp.parent import parent_url
from moneyd.claimbook import StateSlot
from moneyd.store import Store
from moneyd.uplink import SettlementFacts, UplinkBalance
from moneyd.wire import btp, ildcp
from moneyd.wire.btp import ProtocolData
from moneyd.wire.ilp import (
    AmountTooLargeData,
    ErrorCode,
    Prepare,
    Reject,
    Reply,
    encode_amount_too_large,
)
from uplinks.btp import credit as credit_probe
from uplinks.btp.uplink import BtpUplink

from . import messages
from .book import DEFAULT_FUND_DROPS, ClaimBook, Settlement, XrpState
from .claims import MIN_SETTLE_DELAY, Claim, PayChannel, from_drops, to_drops
from .errors import (
    BalanceExceeded,
    ClaimRejected,
    InsufficientCapacity,
    MoneydError,
    ProtocolError,
    XrpUplinkError,
)
from .keys import ChannelKey
from .ledger import LedgerError, LedgerUnreachable, XrpLedger

log = logging.getLogger("moneyd.uplink.xrp")

STORE_NAMESPACE = "xrp"
# An incoming Prepare past the balance limit waits this long at most (and never past half its expiry) for the
# parent's claims to make room, before it is refused with T04; at most this many wait at once.
ROOM_WAIT = 1.0
ROOM_WAITERS = 256


@dataclass(frozen=True)
class XrpSettings:
    """What an XRP uplink is configured with: the parent, our account name there, our secret (family seed), the
    XRP server, the channel amount, then tunables. The book's balance limits are its own (``BalanceSettings``)."""

    parent: str  # host[:port] (btp+wss), or btp+ws(s)://host[:port] to choose the scheme
    name: str
    secret: str = field(repr=False)
    xrp_server: str
    channel_drops: int = DEFAULT_FUND_DROPS
    scale: int = 9
    claim_interval: float = 60.0  # how often to consider submitting the parent's best claim
    watch_interval: float = 30.0  # how often to reload both channels from the ledger
    save_interval: float = 1.0  # the balance is saved at least this often while it changes


class XrpUplink(BtpUplink):
    def __init__(self, settings: XrpSettings, store: Store, **btp_options: Any) -> None:
        try:
            self.wallet = Wallet.from_seed(settings.secret)
        except Exception:
            raise XrpUplinkError("the configured XRP secret is not a valid family seed") from None
        super().__init__(parent_url(settings.parent, settings.name, settings.secret), **btp_options)
        self.settings = settings
        self.store = store
        self.slot = StateSlot(store, STORE_NAMESPACE, f"{self.wallet.address}>{settings.parent}/{settings.name}",
                              XrpState.from_json)
        self.ledger: XrpLedger | None = None
        self.book: ClaimBook | None = None
        self.account = ""  # our ILP address at the parent, as its info reply says
        self._housekeeper: asyncio.Task[None] | None = None
        self._dirty = False
        self._claim_in_flight: asyncio.Task[Any] | None = None
        self._stopping = asyncio.Event()
        self._reconciling = True  # our Prepares wait (T01) until the handshake has set the credit
        self._epoch = 0  # one per connection: a Prepare charged on an older one is never sent on a newer one
        self.announced_drops: int | None = None  # our channel's amount as the parent was last told it
        # Saves are numbered as they are taken, and one never overwrites a later one: a group commit writes in a
        # thread while the loop may save synchronously (see _durable).
        self._version = 0  # of the last state taken
        self._written = 0  # of the last state on disk
        self._write_lock = threading.Lock()
        self._next_commit: asyncio.Future[None] | None = None  # what claims taken since the last commit wait for
        self._committer: asyncio.Task[None] | None = None
        # Prepares waiting for room under the balance limit, in order; each future says whether it was admitted.
        self._room_waiters: deque[tuple[int, asyncio.Future[bool]]] = deque()

    # -- connecting ----------------------------------------------------------------------------------------

    async def connect(self) -> None:
        server = self.settings.xrp_server
        try:
            # The ledger first (the handshake reads both channels there), waiting for it as for the parent.
            self.ledger = await self.keep_trying("the XRPL server", lambda: XrpLedger.connect(server), LedgerUnreachable)
        except LedgerError as e:
            raise ConnectionError(str(e)) from None
        try:
            await super().connect()
        except BaseException:
            await self.ledger.close()
            raise
        self._housekeeper = asyncio.create_task(self._housekeeping())

    async def _open(self) -> None:
        self._reconciling = True
        self._epoch += 1
        self._refuse_waiters()  # they came on the old link: the new one starts its count afresh
        await super()._open()

    async def _fetch_info(self) -> ildcp.IldcpResponse:
        # The asym server answers ILDCP only once both channels are in place: handshake first.
        await self._handshake()
        info = await super()._fetch_info()
        self._reconciling = False
        self._maybe_settle()  # prepay up to settle_to
        return info

    async def _handshake(self) -> None:
        conn, ledger = self.conn, self._ledger()
        assert conn is not None
        info = messages.parse_info(await conn.request(messages.info_request()), self.settings.scale)
        book = self.book
        if book is None:
            book = ClaimBook(
                scale=self.settings.scale,
                key=ChannelKey.derive(self.settings.secret, info.address),
                our_address=self.wallet.address,
                server_address=info.address,
                fund_drops=self.settings.channel_drops,
            )
        elif info.address != book.server_address:
            raise ProtocolError(f"the parent's XRP address changed from {book.server_address} to {info.address}")
        self.account = info.account
        saved = self._load()
        if self.announced_drops is None:
            self.announced_drops = saved.announced_drops

        channel = info.channel
        if channel is None:
            channel = await self._our_unregistered_channel(book, saved)
            log.info("registering our payment channel %s with the parent", channel)
            await conn.request(messages.channel_proof(book.key, channel, info.account))
            registered = True
        else:
            registered = False
        paychan = await ledger.paychan(channel)
        if paychan is None:
            raise ProtocolError(
                f"our payment channel {channel} is gone from the ledger; the parent still expects it "
                "(configure a new account name with xrp:configure --force)")
        book.set_outgoing(paychan)
        if paychan.expiration is not None:
            log.warning("our payment channel %s is closing (expiration %d); top-ups will fail", channel, paychan.expiration)
        if registered:
            self.announced_drops = paychan.amount
        elif self.announced_drops != paychan.amount:
            # A top-up the parent never heard of (it completed while we were down, or its proof was lost): the
            # parent refuses every claim above the amount it knows until it rereads the channel.
            log.info("our payment channel holds %d drops, the parent was last told %s; telling it",
                     paychan.amount, self.announced_drops if self.announced_drops is not None else "nothing")
            await conn.request(messages.channel_proof(book.key, channel, info.account))
            self.announced_drops = paychan.amount
            stored = self._load()
            stored.announced_drops = paychan.amount
            self.slot.save(stored)

        client = info.client_channel
        if client is None:
            log.info("asking the parent to open its payment channel to us")
            client = messages.parse_fund_channel_reply(
                await conn.request(messages.fund_channel_request(self.wallet.address), timeout=120))
        incoming = await ledger.paychan(client)
        if incoming is None:
            raise ProtocolError(f"the parent's channel {client} to us is not on the ledger")
        book.set_incoming(incoming)
        # Only now: the parent takes Prepares from us (and so answers credit probes) once both channels exist.
        await self._reconcile(conn, book, saved)
        if self.book is None:
            self._restore(book, saved)
            self.book = book
        self._save()
        assert book.sent is not None
        log.info(
            "XRP channels: ours %s (%s of %s drops promised), the parent's %s (%s drops, best claim %s drops)",
            book.outgoing.channel_id if book.outgoing else "-", to_drops(book.sent.amount, book.scale),
            paychan.amount, incoming.channel_id, incoming.amount, to_drops(book.best.amount, book.scale))

    async def _reconcile(self, conn: Any, book: ClaimBook, saved: XrpState) -> None:
        """Take our side of the books from the parent: its last claim from us, and the credit it holds (probed)."""
        last = messages.parse_last_claim(await conn.request(messages.last_claim_request()))
        book.load_last_claim(last)  # refuses a last claim we never signed
        guess = book.credit if self.book is not None else saved.credit
        destination = credit_probe.probe_destination(self.account)

        async def ask(amount: int) -> credit_probe.Answer | None:
            return await credit_probe.ask_parent(conn, amount, destination, _read_asym_refusal)

        # The first question goes just past our last claim: the asym server can never let that through, and its
        # refusal says the credit exactly (a parent that does not would still be searched, from the top).
        credit = await credit_probe.find_credit(ask, last.amount, upper=last.amount)
        if credit is None:
            log.warning("the parent did not say how much of our credit it holds; keeping our count (%d)", guess)
            credit = guess
        elif credit != guess:
            log.info("the parent holds %d of our prepaid credit, we counted %d: taking the parent's figure", credit, guess)
        book.reconcile(last, credit)

    async def _our_unregistered_channel(self, book: ClaimBook, saved: XrpState) -> str:
        """A channel of ours the parent does not know yet: one we created before a crash, else a new one."""
        ledger = self._ledger()
        for c in await ledger.channels(self.wallet.address, book.server_address):
            if c.public_key == book.key.ledger_public_key and c.expiration is None and c.cancel_after is None:
                log.info("reusing our unregistered payment channel %s (%d drops)", c.channel_id, c.amount)
                return c.channel_id
        drops = self.settings.channel_drops
        log.info("creating a payment channel of %d drops to %s; waiting for validation", drops, book.server_address)
        channel = await ledger.create_channel(self.wallet, book.server_address, drops, MIN_SETTLE_DELAY,
                                              book.key.ledger_public_key)
        saved.outgoing_channel = channel
        self.slot.save(saved)
        return channel

    def _ledger(self) -> XrpLedger:
        if self.ledger is None:
            raise ConnectionError("not connected to the XRP ledger")
        return self.ledger

    # -- durable state -------------------------------------------------------------------------------------

    def _load(self) -> XrpState:
        """The stored state (a fresh one when there is none, or it is damaged: the parent's records are what
        count for our side, and the ledger for its channel)."""
        try:
            return self.slot.load() or XrpState()
        except ProtocolError as e:
            log.error("ignoring the saved XRP uplink state: %s", e)
            return XrpState()

    def _save(self) -> None:
        """Commit the book's state; returns once it is on disk."""
        book = self.book
        if book is None:
            return
        self._write(*self._snapshot(book))
        self._dirty = False

    def _snapshot(self, book: ClaimBook) -> tuple[int, XrpState]:
        self._version += 1
        return self._version, XrpState.of(book, self.announced_drops)

    def _write(self, version: int, state: XrpState) -> None:
        with self._write_lock:
            if version > self._written:  # else a later state, holding all of this one's claims, is on disk already
                self.slot.save(state)
                self._written = version

    async def _durable(self) -> None:
        """Return once the book's state as of now is on disk. The asym server sends a claim after every Fulfill:
        a commit (an fsync, milliseconds) each, on the event loop, held every Prepare, Fulfill and claim behind it.
        So claims taken while a commit is under way share the next one, and it is written in a thread while the
        loop goes on forwarding packets."""
        future = self._next_commit
        if future is None:
            future = self._next_commit = asyncio.get_running_loop().create_future()
            if self._committer is None:
                self._committer = self._spawn(self._group_commits())
        await asyncio.shield(future)

    async def _group_commits(self) -> None:
        try:
            while (future := self._next_commit) is not None:
                self._next_commit = None
                book = self.book
                assert book is not None  # claims are only taken once the book exists
                try:
                    await asyncio.to_thread(self._write, *self._snapshot(book))
                except Exception as e:  # the claims waiting on it are refused with it
                    future.set_exception(e)
                else:
                    future.set_result(None)
        finally:
            self._committer = None

    def _restore(self, book: ClaimBook, saved: XrpState) -> None:
        if book.incoming is None or saved.incoming_channel != book.incoming.channel_id:
            return
        if saved.unreadable:
            log.error("ignoring unreadable saved XRP uplink state: %s", saved.unreadable)
            return
        best = saved.best
        book.restore(saved)
        if best.signature is not None and book.best != best and best.amount > book.best.amount:
            log.error("the saved best claim (%d units) does not verify against channel %s", best.amount, book.incoming.channel_id)
        # What the parent owed us for Prepares before the restart is not restored: its next claims pay it, and
        # the book takes a claim beyond what it counts as paying exactly that (ClaimBook.money_received).
        log.info("restored: best incoming claim %d units, prepaid credit %d (from the parent)", book.best.amount, book.credit)

    # -- packets and claims --------------------------------------------------------------------------------

    async def send_prepare(self, prepare: Prepare) -> Reply:
        book, conn = self.book, self.conn
        if prepare.amount > 0 and (book is None or conn is None or self._reconciling):
            return Reject(ErrorCode.T01_PEER_UNREACHABLE, self._address, "moneyd is settling up with the parent; try again")
        if book is None or conn is None or prepare.amount == 0:
            return await super().send_prepare(prepare)
        epoch = self._epoch
        try:
            settlement = book.prepare(prepare.amount)
        except InsufficientCapacity as e:
            self._start_topup()
            return Reject(ErrorCode.T04_INSUFFICIENT_LIQUIDITY, self._address, f"waiting for a channel top-up: {e}")
        except BalanceExceeded as e:
            return Reject(ErrorCode.T04_INSUFFICIENT_LIQUIDITY, self._address, str(e))
        self._dirty = True
        if settlement is not None:
            self._send_settlement(conn, settlement)
        pending = self._claim_in_flight
        if pending is not None and not pending.done():
            # The parent must hold the claim before it sees the Prepare it pays for.
            await asyncio.shield(pending)
        if epoch != self._epoch or self._reconciling:
            # The claim did not go through, or the link was renewed and the credit taken from the parent again:
            # either way the next handshake sets the credit, and this charge goes with the old figure.
            return Reject(ErrorCode.T01_PEER_UNREACHABLE, self._address, "the connection to the parent was renewed; try again")
        reply = await super().send_prepare(prepare)
        if isinstance(reply, Reject) and epoch == self._epoch:
            book.rejected(prepare.amount)
        return reply

    async def _on_request(self, frame: btp.Message | btp.Transfer) -> Sequence[ProtocolData]:
        if isinstance(frame, btp.Transfer):
            await self._on_claim(frame.protocol_data)
            return ()
        try:
            refreshed = messages.parse_channel_refresh(frame.protocol_data)
        except ProtocolError as e:
            raise RequestRefused("F01", "InvalidFieldsError", str(e)) from None
        if refreshed is not None:
            await self._refresh_incoming(refreshed)
            return ()
        prepare = ilplink.unwrap_prepare(frame.protocol_data)
        return ilplink.wrap_reply(await self._incoming_prepare(prepare), self._address)

    async def _incoming_prepare(self, prepare: Prepare) -> Reply:
        """A Prepare from the parent, on either path: within the balance limit, or refused."""
        book = self.book
        if book is None:
            reply: Reply = Reject(ErrorCode.T01_PEER_UNREACHABLE, self._address, "moneyd is not ready yet")
        elif prepare.amount > book.settings.maximum:
            # It could never fit under the balance limit: F08 makes a STREAM sender split it (T04 would not).
            reply = Reject(
                ErrorCode.F08_AMOUNT_TOO_LARGE, self._address,
                f"packet size too large. maxAmount={book.settings.maximum} actualAmount={prepare.amount}",
                encode_amount_too_large(AmountTooLargeData(prepare.amount, book.settings.maximum)))
        else:
            try:
                book.prepare_incoming(prepare.amount)
            except BalanceExceeded as e:
                admitted = await self._wait_for_room(prepare)
                refused = None if admitted else str(e)
            else:
                refused = None
            if refused is not None:
                reply = Reject(ErrorCode.T04_INSUFFICIENT_LIQUIDITY, self._address, refused)
            else:
                self._dirty = True
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("incoming Prepare of %d, unpaid now %d", prepare.amount, book.owed)
                reply = await self.handle_incoming(prepare)
                if isinstance(reply, Reject):
                    book.incoming_rejected(prepare.amount)
                    self._make_room()
        if log.isEnabledFor(logging.DEBUG):
            log.debug("answering an incoming Prepare of %d: %s", prepare.amount,
                      "Fulfill" if not isinstance(reply, Reject) else f"{reply.code} {reply.message}")
        return reply

    async def _wait_for_room(self, prepare: Prepare) -> bool:
        """Hold a Prepare the balance limit has no room for yet; True once it is admitted (charged to ``owed``).

        The asym server pays with a claim after every Fulfill, so the limit is mostly taken by Prepares in flight
        and Fulfills whose claim is on its way: room comes within milliseconds. A T04 instead makes a STREAM sender
        back off (for many T04s at once, moneyd's own sender for up to 10 s). The limit itself is never passed:
        a held Prepare counts only once admitted (``_make_room``), and is refused if no room comes in time."""
        if len(self._room_waiters) >= ROOM_WAITERS:
            return False
        left = (prepare.expires_at - datetime.now(UTC)).total_seconds()
        wait = min(ROOM_WAIT, left / 2)
        if wait <= 0:
            return False
        if log.isEnabledFor(logging.DEBUG):
            log.debug("holding an incoming Prepare of %d for room (unpaid %d)", prepare.amount, self.book.owed if self.book else 0)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        entry = (prepare.amount, future)
        self._room_waiters.append(entry)
        try:
            await asyncio.wait((future,), timeout=wait)
        except BaseException:  # cancelled (the link went away): whatever it was charged goes back
            if future.done() and future.result() and self.book is not None:
                self.book.incoming_rejected(prepare.amount)
                self._make_room()
            raise
        finally:
            if not future.done():
                self._room_waiters.remove(entry)
                future.set_result(False)
        return future.result()

    def _make_room(self) -> None:
        """``owed`` went down: admit the Prepares held for room, first come first served."""
        book, waiters = self.book, self._room_waiters
        while book is not None and waiters:
            amount, future = waiters[0]
            try:
                book.prepare_incoming(amount)
            except BalanceExceeded:
                return
            waiters.popleft()
            future.set_result(True)

    def _refuse_waiters(self) -> None:
        while self._room_waiters:
            self._room_waiters.popleft()[1].set_result(False)

    async def _on_claim(self, protocol_data: Sequence[ProtocolData]) -> None:
        book = self.book
        if book is None:
            raise RequestRefused("T00", "UnreachableError", "not ready for claims yet")
        try:
            claim = messages.parse_claim(protocol_data)
            assert claim.signature is not None
            try:
                added = book.take_claim(claim)
            except ClaimRejected as e:
                if e.reason != "too_large" or book.incoming is None:
                    raise
                # The parent may have topped its channel up before telling us: look, then judge again.
                await self._refresh_incoming(book.incoming.channel_id)
                added = book.take_claim(claim)
        except (ClaimRejected, ProtocolError) as e:
            log.warning("refused a claim from the parent: %s", e)
            raise RequestRefused("F00", "NotAcceptedError", f"claim refused: {e}") from None
        if added:
            # Durable before the Transfer is answered, and before it pays for anything: no incoming Prepare is let
            # in on the strength of a claim that is not on disk yet.
            await self._durable()
            book.money_received(added)
            self._make_room()
        if log.isEnabledFor(logging.DEBUG):
            log.debug("claim from the parent for %d units: adds %d, unpaid now %d", claim.amount, added, book.owed)

    async def _refresh_incoming(self, channel: str) -> None:
        """Reload the parent's channel (a ``channel`` message, a watch round, a claim above what we knew)."""
        reason = await self._reload_incoming(channel)
        if reason is not None:
            log.error("%s", reason)
            await self._parent_closing(reason)

    async def _reload_incoming(self, channel: str) -> str | None:
        """Reload the parent's channel from the ledger; the reason to stop when it is no longer safe."""
        book = self.book
        if book is None:
            return None
        try:
            paychan = await self._ledger().paychan(channel)
        except LedgerError as e:
            log.warning("cannot reload the parent's channel %s: %s", channel, e)
            return None
        if paychan is None:
            return f"the parent's channel {channel} is gone from the ledger"
        try:
            book.set_incoming(paychan)
        except MoneydError as e:
            book.claimed = max(book.claimed, from_drops(paychan.balance, book.scale))
            return str(e)
        return None

    def _maybe_settle(self) -> None:
        """Prepay the parent up to ``settle_to`` (at start, after a reconnect or a top-up)."""
        book, conn = self.book, self.conn
        if book is None or conn is None or self._reconciling:
            return  # no claim may be in flight while the handshake reads the credit from the parent
        try:
            settlement = book.settle()
        except InsufficientCapacity as e:
            log.info("%s", e)
            self._start_topup()
            return
        if settlement is not None:
            self._send_settlement(conn, settlement)
        elif book.needs_topup():
            self._start_topup()

    def _send_settlement(self, conn: Any, settlement: Settlement) -> None:
        """Commit the signed claim, then send it (the task is kept so Prepares can wait for it)."""
        self._save()
        self._claim_in_flight = self._spawn(self._send_claim(conn, settlement.amount, settlement.claim))
        assert self.book is not None
        if self.book.needs_topup():
            self._start_topup()

    async def _send_claim(self, conn: Any, amount: int, claim: Claim) -> None:
        try:
            await conn.transfer(amount, messages.claim_data(claim), timeout=30)
        except (BtpPeerError, ConnectionClosed, TimeoutError) as e:
            # Not paid: we counted it, the parent does not hold it. A new connection takes the credit from the
            # parent again (claims are cumulative, so nothing else is lost).
            log.warning("the parent did not take our claim for %d units: %s; reconnecting to settle up",
                        claim.amount, e or type(e).__name__)
            if not isinstance(e, ConnectionClosed):
                self._reconciling = True  # no Prepare on the strength of that claim
                await conn.close()

    def _start_topup(self) -> None:
        book = self.book
        if book is None or book.funding or book.outgoing is None:
            return
        book.topup_started()
        self._spawn(self._topup(book, book.outgoing.channel_id))

    async def _topup(self, book: ClaimBook, channel: str) -> None:
        paychan: PayChannel | None = None
        try:
            log.info("adding %d drops to our payment channel %s", book.fund_drops, channel)
            await self._ledger().fund_channel(self.wallet, channel, book.fund_drops)
            paychan = await self._ledger().paychan(channel)
        except (LedgerError, ConnectionError) as e:
            log.error("topping up our payment channel failed: %s", e)
        finally:
            book.topup_finished(paychan)
        if paychan is not None and self.conn is not None:
            try:
                await self.conn.request(messages.channel_proof(book.key, channel, self.account))
            except (BtpPeerError, ConnectionClosed, TimeoutError) as e:
                log.warning("the parent did not take our channel refresh: %s", e or type(e).__name__)
            else:
                self.announced_drops = paychan.amount
                self._save()
            log.info("our payment channel now holds %d drops", paychan.amount)
            self._maybe_settle()

    # -- the ledger side: submitting claims, watching channels ---------------------------------------------

    async def submit_best_claim(self, *, closing: bool = False) -> bool:
        """Cash the parent's best claim on the ledger when worth it (always when ``closing``, if it gains more
        than the fee). True when a claim was submitted and validated."""
        book, ledger = self.book, self.ledger
        if book is None or ledger is None or book.incoming is None:
            return False
        # What the ledger already paid out (a submission cut short by a crash may have gone through).
        await self._reload_incoming(book.incoming.channel_id)
        fee = await ledger.fee()
        claim = book.claimable()
        if claim is None or claim.signature is None or not book.should_claim(fee, force=closing):
            return False
        if closing and from_drops(fee, book.scale) >= claim.amount - book.claimed:
            return False
        drops = to_drops(claim.amount, book.scale)
        log.info("claiming %d drops from the parent's channel %s", drops, book.incoming.channel_id)
        await ledger.claim_channel(self.wallet, book.incoming.channel_id, balance=drops, amount=drops,
                                   signature=claim.signature_hex, public_key=book.incoming.public_key)
        book.mark_submitted(claim)
        self._save()
        return True

    async def _housekeeping(self) -> None:
        s = self.settings
        next_claim = time.monotonic() + s.claim_interval
        next_watch = time.monotonic() + s.watch_interval
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), s.save_interval)
            if self._dirty:
                self._save()
            now = time.monotonic()
            try:
                if now >= next_watch:
                    next_watch = now + s.watch_interval
                    await self._watch()
                if now >= next_claim:
                    next_claim = now + s.claim_interval
                    await self.submit_best_claim()
            except (LedgerError, ConnectionError, MoneydError, BtpPeerError, ConnectionClosed, TimeoutError) as e:
                log.warning("ledger housekeeping: %s", e or type(e).__name__)

    async def _watch(self) -> None:
        book = self.book
        if book is None or book.incoming is None:
            return
        await self._refresh_incoming(book.incoming.channel_id)
        if book.outgoing is not None and not book.funding:
            known = book.outgoing
            ours = await self._ledger().paychan(known.channel_id)
            if ours is None:
                await self._parent_closing(f"our payment channel {known.channel_id} was closed")
                return
            if ours.expiration is not None and known.expiration is None:
                log.warning("our payment channel %s is closing (expiration %d)", ours.channel_id, ours.expiration)
            book.set_outgoing(ours)
            if ours.amount > known.amount and self.conn is not None:
                # Funded from outside (xrp:topup): the parent only rereads our channel when told.
                log.info("our payment channel grew to %d drops; telling the parent", ours.amount)
                await self.conn.request(messages.channel_proof(book.key, ours.channel_id, self.account))
                self.announced_drops = ours.amount
                self._save()

    async def _parent_closing(self, why: str) -> None:
        """The parent is taking its channel away (or ours is gone): cash what we hold and stop the uplink."""
        log.error("stopping the XRP uplink: %s", why)
        with contextlib.suppress(LedgerError, ConnectionError, MoneydError):
            await self.submit_best_claim(closing=True)
        self.fail(why)

    # -- status ----------------------------------------------------------------------------------------------

    def balance(self) -> UplinkBalance | None:
        """The book's balance (what the parent owes us; see ClaimBook.uplink_balance) and its limits."""
        return self.book.uplink_balance() if self.book is not None else None

    def settlement(self) -> SettlementFacts | None:
        book = self.book
        if book is None:
            return SettlementFacts("xrp", None)
        ours, theirs = book.channels()
        return SettlementFacts("xrp", self.settings.xrp_server, ours, theirs)

    # -- stopping ------------------------------------------------------------------------------------------

    async def close(self) -> None:
        if self._closing:
            return
        if self._housekeeper is not None:
            # Let it finish a claim it is submitting: cut short, the claim could go through unrecorded.
            self._stopping.set()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._housekeeper, 60)
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(task), 30)
        try:
            await self.submit_best_claim(closing=True)
        except (LedgerError, ConnectionError, MoneydError) as e:
            log.warning("could not claim the parent's channel on the way out: %s", e)
        self._save()
        await super().close()
        if self.ledger is not None:
            await self.ledger.close()


_BANDWIDTH = re.compile(r"Insufficient bandwidth, used: (-?[0-9]+) max: ([0-9]+)")


def _read_asym_refusal(reject: Reject, amount: int) -> credit_probe.Answer | None:
    """The asym server's refusal says how far past our last claim (plus its bandwidth, 0 for us) the Prepare
    would have gone: ``used`` = prepared + amount - last claim, so the credit is amount - used."""
    answer = credit_probe.read_t04(reject, amount)
    if answer is not None and answer.refused:
        m = _BANDWIDTH.match(reject.message)
        if m is not None and m.group(2) == "0":
            return credit_probe.Answer(True, amount - int(m.group(1)))
    return answer
