"""``moneyd local``: the router with no uplink, so local apps can pay each other."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from ..uplink_cli import RouterOptions, router_command

if TYPE_CHECKING:
    from ..config import Config


def load_config(ctx: typer.Context) -> Config | None:
    """The config file if there is a readable one (``local`` needs none)."""
    from ..config import Config, ConfigError

    obj = ctx.obj
    path = getattr(obj, "config_path", None)
    if path is None:
        return None
    try:
        return Config.load(path)
    except ConfigError:
        return None


def register(app: typer.Typer) -> None:
    @router_command(app, "local")
    def local(
        ctx: typer.Context,
        address: str = typer.Option("private.moneyd", "--address", envvar="MONEYD_ILP_ADDRESS", help="This router's ILP address."),
        asset_code: str = typer.Option("XRP", "--asset-code", envvar="MONEYD_ASSET_CODE"),
        asset_scale: int = typer.Option(9, "--asset-scale", envvar="MONEYD_ASSET_SCALE", min=0, max=255),
        *,
        router: RouterOptions,
    ) -> None:
        """Run moneyd with no uplink: local apps get addresses under ADDRESS.local and can pay each other."""
        from ..runtime import run
        from ..store import Store
        from ..wire.address import is_valid_address

        if not is_valid_address(address):
            raise typer.BadParameter(f"{address!r} is not an ILP address (e.g. private.moneyd)", param_hint="--address")
        settings = router.settings(load_config(ctx))
        settings.address, settings.asset_code, settings.asset_scale = address, asset_code, asset_scale
        raise typer.Exit(run(settings, Store.open_default(), quiet=router.quiet))
