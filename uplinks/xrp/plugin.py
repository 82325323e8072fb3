"""The XRP uplink's commands (`xrp:configure`, `xrp:start`, `xrp:info`, `xrp:topup`, `xrp:cleanup`).

Importing this module must stay cheap (no heavy chain libraries): the CLI imports every plugin at startup.
"""

from __future__ import annotations

import importlib.util

import typer


class XRPUplinkPlugin:
    name = "xrp"
    summary = "uplink to a parent over XRP payment channels"

    def register_commands(self, app: typer.Typer) -> None:
        # The command bodies need xrpl-py; register light wrappers that import it only when one runs.
        if importlib.util.find_spec("xrpl") is None:
            _register_missing(app)
            return
        from .commands import register

        register(app)


def _register_missing(app: typer.Typer) -> None:
    @app.command("xrp:configure", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
    def missing() -> None:
        """Set up the XRP uplink (needs: pip install 'moneyd[xrp]')."""
        typer.echo("moneyd: error: the XRP uplink needs xrpl-py: pip install 'moneyd[xrp]'", err=True)
        raise typer.Exit(1)


plugin = XRPUplinkPlugin()
