"""The plain BTP uplink: a parent connector over BTP, no settlement (the parent keeps the balance).

Laid out like the xrp and eth uplinks: ``plugin`` (what the ``moneyd.uplinks`` entry point names), ``commands``
(``btp:configure``, ``btp:start``), ``uplink`` (BtpUplink), ``credit`` (finding the parent's credit). Importing the
package stays cheap (the CLI loads every plugin at startup): the uplink itself loads when a command runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .plugin import plugin

if TYPE_CHECKING:
    from .uplink import BtpUplink

__all__ = ["BtpUplink", "plugin"]


def __getattr__(name: str) -> Any:
    if name == "BtpUplink":  # `from uplinks.btp import BtpUplink`, without importing it for every command
        from .uplink import BtpUplink

        return BtpUplink
    raise AttributeError(name)
