"""rippled's WebSocket API methods over the pure Ledger: request dict in, result dict out (or RpcError).

Shapes follow rippled as xrpl-py 5.2 (API v2 by default) and ripple-lib 0.21 (API v1, no api_version) read them.
Streams (subscribe) are the server's business; ``ledger_closed_event`` and ``transaction_event`` build the
messages it sends.
"""

from __future__ import annotations

import datetime
import hashlib
from typing import Any

from xrpl.core.addresscodec import encode_account_public_key, is_valid_classic_address

from .ledger import (
    RESULT_CODES,
    RESULT_MESSAGES,
    RIPPLE_EPOCH,
    ClosedLedger,
    InvalidTransaction,
    Ledger,
    PayChannel,
    TxRecord,
)

BUILD_VERSION = "2.3.0-moneyd-emulator"
ERROR_CODES = {
    "unknownCmd": 32,
    "invalidParams": 31,
    "actNotFound": 19,
    "actMalformed": 35,
    "entryNotFound": 21,
    "lgrNotFound": 21,
    "txnNotFound": 29,
    "invalidTransaction": 59,
    "malformedRequest": 47,
}


class RpcError(Exception):
    def __init__(self, error: str, message: str) -> None:
        super().__init__(message)
        self.error = error
        self.message = message

    def response(self, request: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "response",
            "status": "error",
            "error": self.error,
            "error_code": ERROR_CODES.get(self.error, 1),
            "error_message": self.message,
            "request": request,
        }
        if "id" in request:
            out["id"] = request["id"]
        if "api_version" in request:
            out["api_version"] = request["api_version"]
        if self.error == "invalidTransaction":
            out["error_exception"] = self.message
        return out


def iso_time(ripple_time: int) -> str:
    stamp = datetime.datetime.fromtimestamp(ripple_time + RIPPLE_EPOCH, datetime.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def human_time(ripple_time: int) -> str:
    stamp = datetime.datetime.fromtimestamp(ripple_time + RIPPLE_EPOCH, datetime.UTC)
    return stamp.strftime("%Y-%b-%d %H:%M:%S.000000000 UTC")


def api_version(request: dict[str, Any]) -> int:
    v = request.get("api_version", 1)
    return v if isinstance(v, int) else 1


class Methods:
    """One instance per emulator. ``handle(request)`` dispatches on ``command`` (or ``method``)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.started = RIPPLE_EPOCH  # replaced by the server's start time, for uptime

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        command = request.get("command", request.get("method"))
        if not isinstance(command, str):
            raise RpcError("missingCommand", "Missing command entry.")
        fn = getattr(self, "cmd_" + command, None)
        if fn is None:
            raise RpcError("unknownCmd", "Unknown method.")
        result: dict[str, Any] = fn(request)
        return result

    # -- ledger selection ---------------------------------------------------------------------------------

    def _select(self, request: dict[str, Any], default: str = "current") -> ClosedLedger | None:
        """None means the open (current) ledger."""
        which = request.get("ledger_index", request.get("ledger_hash", default))
        if which in ("current", None, ""):
            return None
        if which in ("validated", "closed"):
            return self.ledger.validated
        if isinstance(which, str) and which.isdigit():
            which = int(which)
        if isinstance(which, int):
            if which == self.ledger.open_index:
                return None
            found = self.ledger.ledger_at(which)
            if found is None:
                raise RpcError("lgrNotFound", "ledgerNotFound")
            return found
        if isinstance(which, str):
            for closed in self.ledger.closed:
                if closed.hash == which.upper():
                    return closed
        raise RpcError("lgrNotFound", "ledgerNotFound")

    def _where(self, at: ClosedLedger | None) -> dict[str, Any]:
        if at is None:
            return {"ledger_current_index": self.ledger.open_index, "validated": False}
        return {"ledger_hash": at.hash, "ledger_index": at.index, "validated": True}

    def _address(self, request: dict[str, Any], key: str = "account") -> str:
        address = request.get(key)
        if not isinstance(address, str) or not is_valid_classic_address(address):
            raise RpcError("actMalformed", "Account malformed.")
        return address

    # -- server -------------------------------------------------------------------------------------------

    def validated_ledgers(self) -> str:
        return f"{self.ledger.closed[0].index}-{self.ledger.validated.index}"

    def cmd_ping(self, request: dict[str, Any]) -> dict[str, Any]:
        return {}

    def cmd_server_info(self, request: dict[str, Any]) -> dict[str, Any]:
        v = self.ledger.validated
        return {
            "info": {
                "build_version": BUILD_VERSION,
                "complete_ledgers": self.validated_ledgers(),
                "hostid": "EMULATOR",
                "io_latency_ms": 1,
                "jq_trans_overflow": "0",
                "last_close": {"converge_time_s": 0.1, "proposers": 0},
                "load_factor": 1,
                "peers": 0,
                "pubkey_node": "n9KAa2zVWjPHgfzsE3iZ8HAbzJtPrnoh4H2M2HgE7dfqtvyEb1KJ",
                "server_state": "full",
                "server_state_duration_us": "1000",
                "time": human_time(self.ledger.clock.now()),
                "uptime": max(0, self.ledger.clock.now() - self.started),
                "validated_ledger": {
                    "age": max(0, self.ledger.clock.now() - v.close_time),
                    "base_fee_xrp": self.ledger.base_fee / 1_000_000,
                    "hash": v.hash,
                    "reserve_base_xrp": self.ledger.reserve_base / 1_000_000,
                    "reserve_inc_xrp": self.ledger.reserve_increment / 1_000_000,
                    "seq": v.index,
                },
                "validation_quorum": 0,
            }
        }

    def cmd_server_state(self, request: dict[str, Any]) -> dict[str, Any]:
        v = self.ledger.validated
        return {
            "state": {
                "build_version": BUILD_VERSION,
                "complete_ledgers": self.validated_ledgers(),
                "load_base": 256,
                "load_factor": 256,
                "peers": 0,
                "server_state": "full",
                "validated_ledger": {
                    "base_fee": self.ledger.base_fee,
                    "close_time": v.close_time,
                    "hash": v.hash,
                    "reserve_base": self.ledger.reserve_base,
                    "reserve_inc": self.ledger.reserve_increment,
                    "seq": v.index,
                },
                "validation_quorum": 0,
            }
        }

    def cmd_fee(self, request: dict[str, Any]) -> dict[str, Any]:
        fee = str(self.ledger.base_fee)
        return {
            "current_ledger_size": str(len(self.ledger.open_txs)),
            "current_queue_size": "0",
            "drops": {"base_fee": fee, "median_fee": str(self.ledger.base_fee * 500), "minimum_fee": fee,
                      "open_ledger_fee": fee},
            "expected_ledger_size": "1000",
            "ledger_current_index": self.ledger.open_index,
            "levels": {"median_level": "128000", "minimum_level": "256", "open_ledger_level": "256",
                       "reference_level": "256"},
            "max_queue_size": "2000",
        }

    # -- ledgers ------------------------------------------------------------------------------------------

    def _ledger_header(self, at: ClosedLedger, v1: bool) -> dict[str, Any]:
        return {
            "account_hash": hashlib.sha512(b"state" + bytes.fromhex(at.hash)).hexdigest()[:64].upper(),
            "close_flags": 0,
            "close_time": at.close_time,
            "close_time_human": human_time(at.close_time),
            "close_time_iso": iso_time(at.close_time),
            "close_time_resolution": 10,
            "closed": True,
            "ledger_hash": at.hash,
            "ledger_index": str(at.index) if v1 else at.index,
            "parent_close_time": at.parent_close_time,
            "parent_hash": at.parent_hash,
            "total_coins": "100000000000000000",
            "transaction_hash": hashlib.sha512(b"txs" + bytes.fromhex(at.hash)).hexdigest()[:64].upper(),
        }

    def cmd_ledger(self, request: dict[str, Any]) -> dict[str, Any]:
        at = self._select(request, "current")
        v1 = api_version(request) == 1
        if at is None:
            return {
                "ledger": {"closed": False, "ledger_index": str(self.ledger.open_index) if v1 else
                           self.ledger.open_index, "parent_hash": self.ledger.validated.hash},
                "ledger_current_index": self.ledger.open_index,
                "validated": False,
            }
        header = self._ledger_header(at, v1)
        if request.get("transactions"):
            if request.get("expand"):
                header["transactions"] = [self._tx_result(self.ledger.transactions[h], api_version(request))
                                          for h in at.tx_hashes]
            else:
                header["transactions"] = list(at.tx_hashes)
        return {"ledger": header, "ledger_hash": at.hash, "ledger_index": at.index, "validated": True}

    def cmd_ledger_closed(self, request: dict[str, Any]) -> dict[str, Any]:
        v = self.ledger.validated
        return {"ledger_hash": v.hash, "ledger_index": v.index}

    def cmd_ledger_current(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"ledger_current_index": self.ledger.open_index}

    # -- accounts -----------------------------------------------------------------------------------------

    def cmd_account_info(self, request: dict[str, Any]) -> dict[str, Any]:
        address = self._address(request)
        at = self._select(request)
        acct = self.ledger.account(address, at)
        if acct is None:
            raise RpcError("actNotFound", "Account not found.")
        out: dict[str, Any] = {"account_data": acct.to_json(), **self._where(at)}
        if api_version(request) == 1 and request.get("signer_lists"):
            out["account_data"]["signer_lists"] = []
        elif request.get("signer_lists"):
            out["signer_lists"] = []
        if at is None:
            out["queue_data"] = {"txn_count": 0}
        return out

    def cmd_account_lines(self, request: dict[str, Any]) -> dict[str, Any]:
        address = self._address(request)
        at = self._select(request)
        if self.ledger.account(address, at) is None:
            raise RpcError("actNotFound", "Account not found.")
        return {"account": address, "lines": [], **self._where(at)}

    def cmd_account_objects(self, request: dict[str, Any]) -> dict[str, Any]:
        address = self._address(request)
        at = self._select(request)
        if self.ledger.account(address, at) is None:
            raise RpcError("actNotFound", "Account not found.")
        kind = request.get("type")
        objects: list[dict[str, Any]] = []
        if kind in (None, "payment_channel", "paychan"):
            objects = [c.to_json() for c in self.ledger.channels_of(address, at)]
        return {"account": address, "account_objects": objects, **self._where(at)}

    @staticmethod
    def channel_summary(chan: PayChannel) -> dict[str, Any]:
        out: dict[str, Any] = {
            "account": chan.account,
            "amount": str(chan.amount),
            "balance": str(chan.balance),
            "channel_id": chan.channel_id,
            "destination_account": chan.destination,
            "public_key": encode_account_public_key(bytes.fromhex(chan.public_key)),
            "public_key_hex": chan.public_key,
            "settle_delay": chan.settle_delay,
        }
        for key, value in (("expiration", chan.expiration), ("cancel_after", chan.cancel_after),
                           ("source_tag", chan.source_tag), ("destination_tag", chan.destination_tag)):
            if value is not None:
                out[key] = value
        return out

    def cmd_account_channels(self, request: dict[str, Any]) -> dict[str, Any]:
        address = self._address(request)
        at = self._select(request, "validated")
        if self.ledger.account(address, at) is None:
            raise RpcError("actNotFound", "Account not found.")
        dest = request.get("destination_account")
        channels = [self.channel_summary(c) for c in self.ledger.channels_of(address, at)
                    if dest is None or c.destination == dest]
        return {"account": address, "channels": channels, **self._where(at)}

    def cmd_ledger_entry(self, request: dict[str, Any]) -> dict[str, Any]:
        at = self._select(request, "validated")
        node: dict[str, Any] | None = None
        key = request.get("index", request.get("payment_channel"))
        if isinstance(key, str):
            chan = self.ledger.channel(key, at)
            if chan is not None:
                node = chan.to_json()
            else:
                for acct in (at.state if at else self.ledger.state).accounts.values():
                    if acct.to_json()["index"] == key.upper():
                        node = acct.to_json()
        elif isinstance(request.get("account_root"), str):
            root = self.ledger.account(request["account_root"], at)
            node = root.to_json() if root else None
        else:
            raise RpcError("invalidParams", "Invalid parameters.")
        if node is None:
            raise RpcError("entryNotFound", "Entry not found.")
        return {"index": node["index"], "node": node, **self._where(at)}

    # -- transactions -------------------------------------------------------------------------------------

    def cmd_submit(self, request: dict[str, Any]) -> dict[str, Any]:
        blob = request.get("tx_blob")
        if not isinstance(blob, str):
            raise RpcError("invalidParams", "Missing field 'tx_blob'.")
        try:
            outcome = self.ledger.submit(blob)
        except InvalidTransaction as exc:
            raise RpcError("invalidTransaction", str(exc)) from exc
        acct = self.ledger.account(outcome.tx_json.get("Account", ""))
        return {
            "accepted": outcome.applied,
            "account_sequence_available": acct.sequence if acct else 0,
            "account_sequence_next": acct.sequence if acct else 0,
            "applied": outcome.applied,
            "broadcast": outcome.applied,
            "engine_result": outcome.engine_result,
            "engine_result_code": outcome.engine_result_code,
            "engine_result_message": outcome.engine_result_message,
            "kept": outcome.applied,
            "open_ledger_cost": str(self.ledger.base_fee),
            "queued": False,
            "tx_blob": blob,
            "tx_json": outcome.tx_json,
            "validated_ledger_index": self.ledger.validated.index,
        }

    def _tx_result(self, rec: TxRecord, version: int) -> dict[str, Any]:
        body = {k: v for k, v in rec.tx_json.items() if k != "hash"}
        if version == 1:
            out: dict[str, Any] = {**body, "hash": rec.hash}
            if rec.validated:
                out.update(ledger_index=rec.ledger_index, inLedger=rec.ledger_index, date=rec.close_time,
                           meta=rec.meta)
        else:
            out = {"tx_json": body, "hash": rec.hash}
            if rec.validated:
                assert rec.close_time is not None
                body["date"] = rec.close_time
                body["ledger_index"] = rec.ledger_index
                out.update(ledger_index=rec.ledger_index, ledger_hash=rec.ledger_hash,
                           close_time_iso=iso_time(rec.close_time), meta=rec.meta)
        out["validated"] = rec.validated
        return out

    def cmd_tx(self, request: dict[str, Any]) -> dict[str, Any]:
        txid = request.get("transaction")
        if not isinstance(txid, str):
            raise RpcError("invalidParams", "Invalid parameters.")
        rec = self.ledger.transactions.get(txid.upper())
        if rec is None:
            raise RpcError("txnNotFound", "Transaction not found.")
        return self._tx_result(rec, api_version(request))

    # -- stream messages ----------------------------------------------------------------------------------

    def ledger_stream_fields(self, at: ClosedLedger) -> dict[str, Any]:
        return {
            "fee_base": self.ledger.base_fee,
            "fee_ref": self.ledger.base_fee,
            "ledger_hash": at.hash,
            "ledger_index": at.index,
            "ledger_time": at.close_time,
            "reserve_base": self.ledger.reserve_base,
            "reserve_inc": self.ledger.reserve_increment,
            "validated_ledgers": self.validated_ledgers(),
        }

    def ledger_closed_event(self, at: ClosedLedger) -> dict[str, Any]:
        return {"type": "ledgerClosed", **self.ledger_stream_fields(at), "txn_count": len(at.tx_hashes)}

    def transaction_event(self, rec: TxRecord, version: int) -> dict[str, Any]:
        assert rec.close_time is not None
        body = {k: v for k, v in rec.tx_json.items() if k != "hash"}
        out: dict[str, Any] = {
            "type": "transaction",
            "engine_result": rec.result,
            "engine_result_code": RESULT_CODES.get(rec.result, -399),
            "engine_result_message": RESULT_MESSAGES.get(rec.result, rec.result),
            "ledger_hash": rec.ledger_hash,
            "ledger_index": rec.ledger_index,
            "meta": rec.meta,
            "status": "closed",
            "validated": True,
        }
        if version == 1:
            out["transaction"] = {**body, "hash": rec.hash, "date": rec.close_time}
        else:
            out.update(tx_json={**body, "date": rec.close_time}, hash=rec.hash,
                       close_time_iso=iso_time(rec.close_time))
        return out

    @staticmethod
    def affected_accounts(rec: TxRecord) -> set[str]:
        """Accounts a transaction touches (rippled's accounts stream): its own and those in its metadata."""
        out = {rec.tx_json.get("Account", ""), rec.tx_json.get("Destination", "")}
        for node in rec.meta["AffectedNodes"]:
            inner = next(iter(node.values()))
            fields = inner.get("FinalFields") or inner.get("NewFields") or {}
            for key in ("Account", "Destination"):
                if isinstance(fields.get(key), str):
                    out.add(fields[key])
        out.discard("")
        return out
