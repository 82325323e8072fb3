"""The XRP Ledger, as the XRP uplink and its commands use it: a thin async layer over xrpl-py.

Everything that changes the ledger waits until the transaction is in a validated ledger and raises LedgerError
unless it succeeded: money state is never assumed from a tentative result.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from xrpl.asyncio.clients import AsyncWebsocketClient
from xrpl.asyncio.transaction import submit_and_wait
from xrpl.clients import XRPLRequestFailureException
from xrpl.models.requests import AccountChannels, AccountInfo, Fee, LedgerEntry, ServerState
from xrpl.models.requests import Ledger as LedgerRequest
from xrpl.models.requests.request import Request
from xrpl.models.transactions import (
    Payment,
    PaymentChannelClaim,
    PaymentChannelClaimFlag,
    PaymentChannelCreate,
    PaymentChannelFund,
    Transaction,
)
from xrpl.transaction import XRPLReliableSubmissionException
from xrpl.wallet import Wallet

from .claims import PayChannel, channel_id
from .errors import ProtocolError


class LedgerError(Exception):
    """A ledger request or transaction failed; the message says which and why (rippled's result code)."""


class LedgerUnreachable(LedgerError):
    """Nothing answers at the XRPL server's address (refused, DNS, TLS, timeout): it may be down or not up yet."""


@dataclass(frozen=True, slots=True)
class AccountState:
    address: str
    balance: int  # drops
    sequence: int
    owner_count: int


class XrpLedger:
    def __init__(self, client: AsyncWebsocketClient, url: str, timeout: float) -> None:
        self._client = client
        self.url = url
        self.timeout = timeout

    @classmethod
    async def connect(cls, url: str, *, timeout: float = 20.0) -> XrpLedger:
        if not url.startswith(("ws://", "wss://")):
            raise LedgerError(f"XRPL server {url!r} must be a ws:// or wss:// URL")
        client = AsyncWebsocketClient(url)
        try:
            await asyncio.wait_for(client.open(), timeout)
        except Exception as e:  # DNS, refused, TLS, timeout: one clear line
            raise LedgerUnreachable(f"cannot connect to the XRPL server {url}: {e or type(e).__name__}") from None
        return cls(client, url, timeout)

    async def close(self) -> None:
        if self._client.is_open():
            await self._client.close()

    async def __aenter__(self) -> XrpLedger:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _request(self, request: Request) -> dict[str, Any]:
        try:
            response = await asyncio.wait_for(self._client.request(request), self.timeout)
        except TimeoutError:
            raise LedgerError(f"the XRPL server {self.url} did not answer {request.method} in {self.timeout:g}s") from None
        except XRPLRequestFailureException as e:
            raise LedgerError(f"{request.method} failed: {e}") from None
        result: dict[str, Any] = response.result
        return result

    # -- reading ---------------------------------------------------------------------------------------------

    async def account(self, address: str) -> AccountState | None:
        result = await self._request(AccountInfo(account=address, ledger_index="validated"))
        if result.get("error") == "actNotFound":
            return None
        if "error" in result:
            raise LedgerError(f"account_info {address}: {result.get('error_message') or result['error']}")
        data = result["account_data"]
        return AccountState(address, int(data["Balance"]), int(data["Sequence"]), int(data.get("OwnerCount", 0)))

    async def reserves(self) -> tuple[int, int]:
        """(base reserve, reserve per owned object) in drops, from the last validated ledger."""
        result = await self._request(ServerState())
        if "error" in result:
            raise LedgerError(f"server_state: {result.get('error_message') or result['error']}")
        vl = result["state"].get("validated_ledger") or {}
        return int(vl["reserve_base"]), int(vl["reserve_inc"])

    async def close_time(self) -> int:
        """When the last validated ledger closed, in seconds since the Ripple epoch: the clock rippled judges
        channel expiry by (never the local one)."""
        result = await self._request(ServerState())
        close_time = ((result.get("state") or {}).get("validated_ledger") or {}).get("close_time")
        if isinstance(close_time, int):
            return close_time
        result = await self._request(LedgerRequest(ledger_index="validated"))
        close_time = (result.get("ledger") or {}).get("close_time")
        if not isinstance(close_time, int):
            raise LedgerError(f"the XRPL server {self.url} did not say when its last validated ledger closed")
        return close_time

    async def fee(self) -> int:
        result = await self._request(Fee())
        if "error" in result:
            raise LedgerError(f"fee: {result.get('error_message') or result['error']}")
        drops = result["drops"]
        return max(int(drops.get("open_ledger_fee", drops["base_fee"])), int(drops["base_fee"]))

    async def paychan(self, channel: str) -> PayChannel | None:
        result = await self._request(LedgerEntry(index=channel, ledger_index="validated"))
        if result.get("error") == "entryNotFound":
            return None
        if "error" in result:
            raise LedgerError(f"ledger_entry {channel}: {result.get('error_message') or result['error']}")
        try:
            return PayChannel.from_ledger_entry(channel, result["node"])
        except ProtocolError as e:
            raise LedgerError(f"channel {channel}: {e}") from None

    async def channels(self, account: str, destination: str | None = None) -> list[PayChannel]:
        found: list[PayChannel] = []
        marker: Any = None
        while True:
            req = AccountChannels(account=account, destination_account=destination, marker=marker,
                                  ledger_index="validated")
            result = await self._request(req)
            if result.get("error") == "actNotFound":
                return []
            if "error" in result:
                raise LedgerError(f"account_channels {account}: {result.get('error_message') or result['error']}")
            for c in result.get("channels", []):
                found.append(PayChannel(
                    c["channel_id"].upper(), account, c["destination_account"], int(c["amount"]), int(c["balance"]),
                    str(c.get("public_key_hex", "")).upper(), int(c["settle_delay"]),
                    int(c["expiration"]) if "expiration" in c else None,
                    int(c["cancel_after"]) if "cancel_after" in c else None))
            marker = result.get("marker")
            if not marker:
                return found

    # -- writing ---------------------------------------------------------------------------------------------

    async def _submit(self, tx: Transaction, wallet: Wallet, what: str) -> dict[str, Any]:
        try:
            response = await asyncio.wait_for(submit_and_wait(tx, self._client, wallet), self.timeout * 6)
        except XRPLReliableSubmissionException as e:
            raise LedgerError(f"{what} failed: {e}") from None
        except TimeoutError:
            raise LedgerError(f"{what} was not validated in {self.timeout * 6:g}s") from None
        except XRPLRequestFailureException as e:
            raise LedgerError(f"{what} was refused: {e}") from None
        result: dict[str, Any] = response.result
        code = result.get("meta", {}).get("TransactionResult")
        if code != "tesSUCCESS":
            raise LedgerError(f"{what} failed: {code}")
        return result

    async def create_channel(self, wallet: Wallet, destination: str, amount: int, settle_delay: int,
                             public_key: str) -> str:
        """PaymentChannelCreate; returns the new channel's id (hex, upper case)."""
        tx = PaymentChannelCreate(account=wallet.address, destination=destination, amount=str(amount),
                                  settle_delay=settle_delay, public_key=public_key)
        result = await self._submit(tx, wallet, f"creating a channel of {amount} drops to {destination}")
        sequence = int(result.get("tx_json", result).get("Sequence", result.get("Sequence", 0)))
        cid = channel_id(wallet.address, destination, sequence)
        created = [n["CreatedNode"]["LedgerIndex"].upper() for n in result["meta"].get("AffectedNodes", [])
                   if n.get("CreatedNode", {}).get("LedgerEntryType") == "PayChannel"]
        if created and created != [cid]:
            raise LedgerError(f"the ledger created channel {created[0]}, not {cid} as computed")
        return cid

    async def fund_channel(self, wallet: Wallet, channel: str, amount: int) -> None:
        tx = PaymentChannelFund(account=wallet.address, channel=channel, amount=str(amount))
        await self._submit(tx, wallet, f"adding {amount} drops to channel {channel}")

    async def claim_channel(self, wallet: Wallet, channel: str, *, balance: int | None = None,
                            amount: int | None = None, signature: str | None = None, public_key: str | None = None,
                            close: bool = False) -> None:
        tx = PaymentChannelClaim(
            account=wallet.address, channel=channel,
            balance=None if balance is None else str(balance), amount=None if amount is None else str(amount),
            signature=signature, public_key=public_key,
            flags=PaymentChannelClaimFlag.TF_CLOSE if close else 0)
        what = f"{'closing' if close else 'claiming from'} channel {channel}"
        await self._submit(tx, wallet, what)

    async def send_xrp(self, wallet: Wallet, destination: str, amount: int) -> None:
        tx = Payment(account=wallet.address, destination=destination, amount=str(amount))
        await self._submit(tx, wallet, f"paying {amount} drops to {destination}")
