"""The plain BTP uplink's commands (`btp:configure`, `btp:start`).

Importing this module must stay cheap: the CLI imports every plugin at startup.
"""

from __future__ import annotations

import typer


class BtpUplinkPlugin:
    name = "btp"
    summary = "uplink to a parent connector over plain BTP (no settlement)"

    def register_commands(self, app: typer.Typer) -> None:
        from .commands import register

        register(app)


plugin = BtpUplinkPlugin()
