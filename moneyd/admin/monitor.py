"""Counters and a bounded record of recent events, fed synchronously by the router.

The packet path only increments a few dict entries and appends to a bounded deque: no awaits, no I/O, no work that
grows with the number of dashboards or event-stream clients. Readers (the admin API, the event stream) pull from
here on their own clock, using the monotonically increasing ``seq`` of each event to see what is new.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from ..wire.ilp import Fulfill, Prepare, Reject, Reply

RECENT_EVENTS = 512
RECENT_FLOWS = 64


@dataclass
class Flow:
    """Money from one account to one destination address: a STREAM payment is many packets, one flow."""

    source: str
    destination: str
    amount: int = 0
    packets: int = 0
    started: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "destination": self.destination, "amount": str(self.amount),
                "packets": self.packets, "started": self.started, "updated": self.updated}


class Monitor:
    def __init__(self) -> None:
        self.started = time.time()
        self.seq = 0
        self.events: deque[dict[str, Any]] = deque(maxlen=RECENT_EVENTS)
        # (account, result) -> [packets, value]; result is "fulfilled" or "rejected".
        self.incoming: dict[tuple[str, str], list[int]] = {}
        # What the router delivered to each account (fulfilled Prepares, value) is counted once, by the router
        # (``router.layers.Accounts``); what accounts that left had received is kept here (``retired``), so the
        # counters never go back.
        self.retired: dict[str, list[int]] = {}
        self.reject_codes: dict[tuple[str, str], int] = {}  # (account, code) -> count
        self.flows: OrderedDict[tuple[str, str], Flow] = OrderedDict()
        self.packets = 0
        self.last_error: dict[str, Any] | None = None
        # ilp-connector's alerts: an account's balance limit refused a packet (T04 "exceeded maximum balance").
        self.alerts: dict[int, dict[str, Any]] = {}
        self._next_alert = int(time.time() * 1000)

    def _event(self, kind: str, **fields: Any) -> None:
        self.seq += 1
        self.events.append({"seq": self.seq, "type": kind, "time": time.time(), **fields})

    # -- fed by the router (synchronous, cheap) ----------------------------------------------------------------

    def packet(self, source: str, prepare: Prepare, reply: Reply) -> None:
        """Every Prepare the router answered, with its answer."""
        self.packets += 1
        amount = prepare.amount
        if type(reply) is Fulfill:
            key = (source, "fulfilled")
            if amount:
                self._flow(source, prepare.destination, amount)
        else:
            key = (source, "rejected")
            assert isinstance(reply, Reject)
            code = reply.code
            rc = (source, code)
            self.reject_codes[rc] = self.reject_codes.get(rc, 0) + 1
            if code == "T04" and reply.message.startswith("exceeded maximum balance"):
                self.alert(source, reply.triggered_by, "exceeded maximum balance.")
            if code[:1] in ("T", "R"):  # F-codes are a receiver's answer; T and R mean something is wrong here
                self.last_error = {"time": time.time(), "code": code, "message": reply.message, "account": source,
                                   "destination": prepare.destination}
        c = self.incoming.get(key)
        if c is None:
            c = self.incoming[key] = [0, 0]
        c[0] += 1
        c[1] += amount

    def retire(self, account: str, packets: int, amount: int) -> None:
        """``account`` left the router's counts, having received ``amount`` in ``packets`` fulfilled Prepares."""
        if packets or amount:
            c = self.retired.setdefault(account, [0, 0])
            c[0] += packets
            c[1] += amount

    def outgoing(self, live: dict[str, tuple[int, int]]) -> dict[str, list[int]]:
        """Fulfilled Prepares and value delivered to each account since moneyd started: ``live`` (the router's
        counts, account -> (packets, amount)) plus what accounts that left had received."""
        out = {a: list(c) for a, c in self.retired.items()}
        for account, (packets, amount) in live.items():
            if packets or amount:
                c = out.setdefault(account, [0, 0])
                c[0] += packets
                c[1] += amount
        return out

    def _flow(self, source: str, destination: str, amount: int) -> None:
        key = (source, destination)
        f = self.flows.get(key)
        if f is None:
            f = self.flows[key] = Flow(source, destination)
            if len(self.flows) > RECENT_FLOWS:
                self.flows.popitem(last=False)
        else:
            self.flows.move_to_end(key)
        f.amount += amount
        f.packets += 1
        f.updated = time.time()

    # -- fed by whoever sees the change (link state, apps, claims) -------------------------------------------------

    def link(self, account: str, up: bool, detail: str = "") -> None:
        self._event("link", account=account, up=up, detail=detail)

    def claim(self, direction: str, amount: int, channel: str = "") -> None:
        self._event("claim", direction=direction, amount=str(amount), channel=channel)

    def error(self, message: str, code: str = "") -> None:
        self.last_error = {"time": time.time(), "code": code, "message": message}
        self._event("problem", code=code, message=message)

    def alert(self, account: str, triggered_by: str, message: str) -> None:
        now = time.time()
        for a in self.alerts.values():
            if (a["accountId"], a["triggeredBy"], a["message"]) == (account, triggered_by, message):
                a["count"] += 1
                a["updatedAt"] = _iso(now)
                return
        aid = self._next_alert
        self._next_alert += 1
        self.alerts[aid] = {"id": aid, "accountId": account, "triggeredBy": triggered_by, "message": message,
                            "count": 1, "createdAt": _iso(now), "updatedAt": _iso(now)}

    def alert_list(self) -> list[dict[str, Any]]:
        return [self.alerts[k] for k in sorted(self.alerts)]

    # -- read side ---------------------------------------------------------------------------------------------

    def since(self, seq: int) -> list[dict[str, Any]]:
        return [e for e in self.events if e["seq"] > seq]

    def recent_payments(self, limit: int = 20) -> list[dict[str, Any]]:
        return [f.to_json() for f in reversed(self.flows.values())][:limit]


def _iso(t: float) -> str:
    """JavaScript's Date.toJSON format, as ilp-connector's alerts carry."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"
