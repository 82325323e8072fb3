"""What every ``xrp:*`` command shares: the account's settings names, its secret made a wallet, XRP amounts.

Below both ``commands`` and ``manage`` (neither imports the other for these). xrpl-py loads only when a secret is
turned into a wallet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from moneyd.uplink_cli import format_amount

if TYPE_CHECKING:
    from xrpl.wallet import Wallet

SECTION = "xrp"
SECRET_ENV = "MONEYD_XRP_SECRET"
SERVERS = {False: "wss://s1.ripple.com", True: "wss://s.altnet.rippletest.net:51233"}


class ConfigureError(Exception):
    """The command stops here; nothing was written."""


def xrp(drops: int) -> str:
    return format_amount(drops, 6, "XRP")


def wallet_for(secret: str) -> Wallet:
    from xrpl.wallet import Wallet

    try:
        return Wallet.from_seed(secret.strip())
    except Exception:
        raise ConfigureError("that is not an XRP secret (a family seed starting with 's')") from None


def wallet_for_quiet(secret: str) -> str | None:
    """The address of ``secret``, or None when it is not a seed."""
    try:
        return wallet_for(secret).address
    except ConfigureError:
        return None
