"""The events a Connection hands out, and the public names the asyncio layer and the CLI import."""

from __future__ import annotations

from fractions import Fraction

from moneyd.stream import connection, events
from moneyd.stream.events import Connected, ConnectionTerminated, MoneyReceived, StreamClosed, describe_close
from moneyd.stream.packet import ErrorCode


def test_events_compare_by_value() -> None:
    assert MoneyReceived(1, 5) == MoneyReceived(1, 5) != MoneyReceived(3, 5)
    assert Connected(Fraction(2, 4)) == Connected(Fraction(1, 2))
    assert len({StreamClosed(1, 0, "", False), StreamClosed(1, 0, "", False)}) == 1


def test_connection_closed_says_whether_it_ended_well() -> None:
    ok = ConnectionTerminated(ErrorCode.NO_ERROR, "", False, 10, 9, 0)
    bad = ConnectionTerminated(ErrorCode.APPLICATION_ERROR, "exchange rate fell", True, 10, 9, 0)
    assert ok.ok and not bad.ok
    assert describe_close(ok) == "local closed: NO_ERROR"
    assert describe_close(bad) == "peer closed: APPLICATION_ERROR (exchange rate fell)"


def test_connection_module_still_exports_the_events() -> None:
    # moneyd/stream/aio.py, the commands and the tests import these from moneyd.stream.connection.
    for name in ("Connected", "ConnectionTerminated", "DataReceived", "DataSent", "Event", "MoneyReceived", "MoneySent",
                 "OutgoingPrepare", "RemoteAddress", "RemoteAssetDetails", "StreamClosed", "StreamError",
                 "StreamOpened", "describe_close"):
        assert getattr(connection, name) is getattr(events, name)
