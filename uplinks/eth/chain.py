"""The Unidirectional contract over JSON-RPC: a thin async layer on web3.py (AsyncWeb3 + AsyncHTTPProvider).

Transactions are signed locally with our key (the node never holds it) and sent one at a time, each waited
for until its receipt, as the JS plugin's transaction pipeline does: nonces never race and a failure is
reported for the transaction that caused it.
"""

from __future__ import annotations

# isort: off
from . import _ecc  # noqa: F401  (first: eth-account must be imported through it)
# isort: on

import asyncio
import secrets
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
from eth_account.signers.local import LocalAccount
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.exceptions import ContractLogicError, TimeExhausted, Web3Exception
from web3.logs import DISCARD
from web3.providers.rpc.utils import ExceptionRetryConfiguration

from .abi import KNOWN_CONTRACTS, MAINNET_CHAIN_ID, unidirectional_abi
from .claims import ChannelState, Claim, as_account, channel_id_hex, parse_address
from .errors import ChainError, ConfigError

# The JS client's OUTGOING_DISPUTE_PERIOD_BLOCKS: 6 days of 15 s blocks. The JS server refuses channels
# below 3 days (claims.MIN_DISPUTE_PERIOD); twice that leaves room to notice a dispute.
DEFAULT_DISPUTE_PERIOD: Final = 6 * 24 * 60 * 60 // 15
DEFAULT_RECEIPT_TIMEOUT: Final = 120.0
DEFAULT_REQUEST_TIMEOUT: Final = 30.0
UINT32_MAX: Final = 2**32 - 1

_NODE_ERRORS = (Web3Exception, aiohttp.ClientError, OSError, asyncio.TimeoutError, ValueError)


def resolve_contract(chain_id: int, explicit: str | None) -> str:
    """The Unidirectional contract to use on ``chain_id``: the JS plugin's own deployment on the chains it
    knows (it ignores any other address there, so a different one could never settle with it), else
    ``explicit``."""
    known = KNOWN_CONTRACTS.get(chain_id)
    if known is not None:
        ours = parse_address(known)
        if explicit is not None and parse_address(explicit, "contract") != ours:
            raise ConfigError(
                f"chain {chain_id} has the Unidirectional contract at {ours}, which ilp-plugin-ethereum always uses; "
                f"--contract {explicit} could never settle with it"
            )
        return ours
    if explicit is None:
        raise ConfigError(
            f"ilp-plugin-ethereum knows no Unidirectional contract on chain {chain_id}: pass --contract ADDRESS"
        )
    return parse_address(explicit, "contract")


@dataclass(frozen=True, slots=True)
class TxResult:
    """A confirmed transaction: its hash, receipt and the fee it cost in wei (gasUsed × effectiveGasPrice)."""

    tx_hash: str
    receipt: Any
    fee: int
    block_number: int


class EthChain:
    """Our account and the Unidirectional contract on one chain. Build it with ``await EthChain.connect(...)``."""

    def __init__(
        self,
        w3: AsyncWeb3[Any],
        account: LocalAccount,
        chain_id: int,
        contract_address: str,
        receipt_timeout: float = DEFAULT_RECEIPT_TIMEOUT,
    ) -> None:
        self.w3 = w3
        self.account = account
        self.address: str = account.address
        self.chain_id = chain_id
        self.contract_address = contract_address
        self.contract = w3.eth.contract(address=contract_address, abi=unidirectional_abi(chain_id))  # type: ignore[call-overload]
        self.receipt_timeout = receipt_timeout
        self._tx_lock = asyncio.Lock()

    @classmethod
    async def connect(
        cls,
        url: str,
        key: LocalAccount | str | bytes,
        contract: str | None = None,
        *,
        receipt_timeout: float = DEFAULT_RECEIPT_TIMEOUT,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    ) -> EthChain:
        account = as_account(key)
        # The first requests fail fast: a node that is down is said at once (the caller may wait for it with its
        # own, announced backoff) rather than after web3's silent retries (2 s of them); later reads have those.
        provider = AsyncHTTPProvider(url, request_kwargs={"timeout": request_timeout}, exception_retry_configuration=None)
        w3: AsyncWeb3[Any] = AsyncWeb3(provider)
        try:
            chain_id = await w3.eth.chain_id
            address = resolve_contract(chain_id, contract)
            code = await w3.eth.get_code(address)  # type: ignore[arg-type]
        except ConfigError:
            await w3.provider.disconnect()
            raise
        except _NODE_ERRORS as e:
            await w3.provider.disconnect()
            raise ChainError(f"cannot reach the Ethereum node at {url}: {e}") from None
        if len(code) == 0:
            await w3.provider.disconnect()
            raise ConfigError(f"no contract is deployed at {address} on chain {chain_id}")
        provider.exception_retry_configuration = ExceptionRetryConfiguration(errors=(aiohttp.ClientError, TimeoutError))  # web3's default
        return cls(w3, account, chain_id, address, receipt_timeout)

    async def close(self) -> None:
        await self.w3.provider.disconnect()

    # -- reads ----------------------------------------------------------------------------------------------

    async def balance(self, address: str | None = None) -> int:
        try:
            return int(await self.w3.eth.get_balance(address or self.address))  # type: ignore[arg-type]
        except _NODE_ERRORS as e:
            raise ChainError(f"cannot read the balance of {address or self.address}: {e}") from None

    async def block_number(self) -> int:
        try:
            return int(await self.w3.eth.block_number)
        except _NODE_ERRORS as e:
            raise ChainError(f"cannot read the block number: {e}") from None

    async def gas_price(self) -> int:
        try:
            return int(await self.w3.eth.gas_price)
        except _NODE_ERRORS as e:
            raise ChainError(f"cannot read the gas price: {e}") from None

    async def channel(self, channel_id: bytes) -> ChannelState:
        """``channels(id)``; a channel that never existed or was closed comes back with sender 0x0."""
        try:
            sender, receiver, value, period, until = await self.contract.functions.channels(channel_id).call()
        except _NODE_ERRORS as e:
            raise ChainError(f"cannot read channel {channel_id_hex(channel_id)}: {e}") from None
        return ChannelState(channel_id, str(sender), str(receiver), int(value), int(period), int(until))

    async def payment_digest(self, channel_id: bytes, value: int) -> bytes:
        """The contract's own ``paymentDigest`` (for checks; claims.payment_digest computes it locally)."""
        try:
            return bytes(await self.contract.functions.paymentDigest(channel_id, value).call())
        except _NODE_ERRORS as e:
            raise ChainError(f"paymentDigest failed: {e}") from None

    async def can_claim(self, claim: Claim, origin: str | None = None) -> bool:
        try:
            fn = self.contract.functions.canClaim(claim.channel_id, claim.value, origin or self.address, claim.signature)
            return bool(await fn.call())
        except _NODE_ERRORS as e:
            raise ChainError(f"canClaim failed: {e}") from None

    async def claim_fee(self, claim: Claim) -> int:
        """What claiming ``claim`` would cost in wei at the current gas price (estimate)."""
        try:
            gas = await self.contract.functions.claim(claim.channel_id, claim.value, claim.signature).estimate_gas(
                {"from": self.address}
            )
        except _NODE_ERRORS as e:
            raise ChainError(f"the contract would refuse this claim: {e}") from None
        return int(gas) * await self.gas_price()

    async def open_fee(self, receiver: str, value: int, dispute_period: int = DEFAULT_DISPUTE_PERIOD) -> int:
        """What opening a channel of ``value`` wei would cost in gas (wei, estimate). Nodes differ on whether
        the estimate checks our balance: compare ``balance()`` with ``value + open_fee(...)`` before opening."""
        fn = self.contract.functions.open(secrets.token_bytes(32), parse_address(receiver, "receiver"), dispute_period)
        try:
            gas = await fn.estimate_gas({"from": self.address, "value": value})
        except _NODE_ERRORS as e:
            raise ChainError(f"cannot open a channel of {value} wei from {self.address}: {e}") from None
        return int(gas) * await self.gas_price()

    # -- transactions ---------------------------------------------------------------------------------------

    async def open_channel(
        self,
        receiver: str,
        value: int,
        dispute_period: int = DEFAULT_DISPUTE_PERIOD,
        channel_id: bytes | None = None,
    ) -> tuple[bytes, TxResult]:
        """Open a channel to ``receiver`` holding ``value`` wei, with a random 32-byte id."""
        receiver = parse_address(receiver, "receiver")
        if dispute_period <= 0 or (self.chain_id == MAINNET_CHAIN_ID and dispute_period > UINT32_MAX):
            raise ConfigError(f"dispute period {dispute_period} blocks is out of range")
        if value < 0:
            raise ConfigError(f"channel amount {value} wei is negative")
        cid = channel_id if channel_id is not None else secrets.token_bytes(32)
        fn = self.contract.functions.open(cid, receiver, dispute_period)
        return cid, await self._transact(fn, value, "DidOpen", f"open channel {channel_id_hex(cid)}")

    async def deposit(self, channel_id: bytes, value: int) -> TxResult:
        if value <= 0:
            raise ConfigError(f"deposit {value} wei must be positive")
        fn = self.contract.functions.deposit(channel_id)
        return await self._transact(fn, value, "DidDeposit", f"deposit to channel {channel_id_hex(channel_id)}")

    async def claim(self, claim: Claim) -> TxResult:
        """Close the channel paying ``claim.value`` (capped at the channel value) to us, the rest to its sender."""
        fn = self.contract.functions.claim(claim.channel_id, claim.value, claim.signature)
        return await self._transact(fn, 0, "DidClaim", f"claim {claim.value} wei from {channel_id_hex(claim.channel_id)}")

    async def start_settling(self, channel_id: bytes) -> TxResult:
        fn = self.contract.functions.startSettling(channel_id)
        return await self._transact(fn, 0, "DidStartSettling", f"start settling {channel_id_hex(channel_id)}")

    async def settle(self, channel_id: bytes) -> TxResult:
        fn = self.contract.functions.settle(channel_id)
        return await self._transact(fn, 0, "DidSettle", f"settle {channel_id_hex(channel_id)}")

    async def _transact(self, fn: Any, value: int, event: str, what: str) -> TxResult:
        async with self._tx_lock:
            try:
                nonce = await self.w3.eth.get_transaction_count(self.address, "pending")  # type: ignore[arg-type]
                tx = await fn.build_transaction(
                    {"from": self.address, "value": value, "nonce": nonce, "chainId": self.chain_id}
                )
                signed = self.account.sign_transaction(tx)
                tx_hash = await self.w3.eth.send_raw_transaction(signed.raw_transaction)
            except ContractLogicError as e:
                raise ChainError(f"the contract refuses to {what}: {e}") from None
            except _NODE_ERRORS as e:
                raise ChainError(f"cannot {what}: {e}") from None
            try:
                receipt = await self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=self.receipt_timeout)
            except TimeExhausted:
                raise ChainError(
                    f"{what}: transaction 0x{bytes(tx_hash).hex()} not confirmed within {self.receipt_timeout}s"
                ) from None
            except _NODE_ERRORS as e:
                raise ChainError(f"{what}: cannot read the receipt of 0x{bytes(tx_hash).hex()}: {e}") from None
        hex_hash = "0x" + bytes(tx_hash).hex()
        if receipt["status"] != 1:
            raise ChainError(f"{what}: transaction {hex_hash} reverted")
        if not self.contract.events[event]().process_receipt(receipt, errors=DISCARD):
            raise ChainError(f"{what}: transaction {hex_hash} emitted no {event}")
        fee = int(receipt["gasUsed"]) * int(receipt.get("effectiveGasPrice", 0))
        return TxResult(hex_hash, receipt, fee, int(receipt["blockNumber"]))
