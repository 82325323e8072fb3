"""The XRP uplink's commands (`xrp:configure`, `xrp:start`, `xrp:info`, `xrp:topup`, `xrp:cleanup`).

Importing this module must stay cheap (no heavy chain libraries): the CLI imports every plugin at startup.
"""

from __future__ import annotations

import importlib.util
import sys

import typer

from moneyd.uplink_cli import register_missing

COMMANDS = ("configure", "start", "info", "topup", "cleanup")


class XRPUplinkPlugin:
    name = "xrp"
    summary = "uplink to a parent over XRP payment channels"

    def register_commands(self, app: typer.Typer) -> None:
        # The command bodies need xrpl-py; register light wrappers that import it only when one runs.
        if importlib.util.find_spec("xrpl") is None:
            # xrpl-py is a moneyd dependency: missing means a broken install, and this says how to mend it.
            register_missing(app, "xrp", COMMANDS, f"{sys.executable} -m pip install 'xrpl-py>=5.2,<6'")
            return
        from .commands import register

        register(app)


plugin = XRPUplinkPlugin()
