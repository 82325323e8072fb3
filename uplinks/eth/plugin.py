"""The ETH uplink's commands (`eth:configure`, `eth:start`, `eth:info`, `eth:topup`, `eth:cleanup`).

Importing this module must stay cheap (no heavy chain libraries): the CLI imports every plugin at startup.
"""

from __future__ import annotations

import importlib.util

import typer


class ETHUplinkPlugin:
    name = "eth"
    summary = "uplink to a parent over ETH payment channels"

    def register_commands(self, app: typer.Typer) -> None:
        # The command bodies need web3 and eth-account; register light wrappers that import them only when one runs.
        if importlib.util.find_spec("web3") is None or importlib.util.find_spec("eth_account") is None:
            _register_missing(app)
            return
        from .commands import register

        register(app)


def _register_missing(app: typer.Typer) -> None:
    @app.command("eth:configure", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
    def missing() -> None:
        """Set up the ETH uplink (needs: pip install 'moneyd[eth]')."""
        typer.echo("moneyd: error: the ETH uplink needs web3 and eth-account: pip install 'moneyd[eth]'", err=True)
        raise typer.Exit(1)


plugin = ETHUplinkPlugin()
