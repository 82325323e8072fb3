"""moneyd.uplink_cli, as a third-party uplink would use it, and the one exception hierarchy (moneyd.errors)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import typer
from typer.testing import CliRunner

from moneyd import errors, uplink_cli
from moneyd.config import Config


def acme_app(config_path: Path) -> typer.Typer:
    """A CLI with a made-up ``acme`` uplink built only from uplink_cli, under the global options moneyd gives."""
    app = typer.Typer()

    @app.callback()
    def root(ctx: typer.Context) -> None:
        ctx.obj = SimpleNamespace(config_path=config_path, testnet=False)

    @app.command("acme:info")
    def info(ctx: typer.Context) -> None:
        section = uplink_cli.configured(uplink_cli.load_config(ctx.obj.config_path), "acme", ctx.obj.testnet)
        typer.echo(f"account {section['address']}: {uplink_cli.format_amount(int(section['held']), 9, 'ACME')}")

    @app.command("acme:ask")
    def ask(name: str | None = typer.Option(None, "--name"), default: str | None = typer.Option(None, "--default")) -> None:
        typer.echo(uplink_cli.ask(name, "--name", "Name", default))

    uplink_cli.register_missing(app, "acme", ["topup"], "pip install acme-chain")
    return app


def test_a_configured_uplink_reads_its_section(tmp_path: Path) -> None:
    cfg = Config(tmp_path / "moneyd.json", {})
    cfg.set_section("acme", {"address": "a1", "held": 1_500_000_000})
    cfg.save()
    result = CliRunner().invoke(acme_app(cfg.path), ["acme:info"])
    assert result.exit_code == 0, result.output
    assert result.output == "account a1: 1.5 ACME\n"


def test_an_unconfigured_uplink_says_how_to_configure_it(tmp_path: Path) -> None:
    path = tmp_path / "moneyd.json"
    result = CliRunner().invoke(acme_app(path), ["acme:info"])
    assert result.exit_code == 1
    assert f"moneyd: error: no acme uplink in {path}" in result.output
    assert "acme:configure" in result.output


def test_a_damaged_config_file_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "moneyd.json"
    path.write_text("{not json")
    result = CliRunner().invoke(acme_app(path), ["acme:info"])
    assert result.exit_code == 1
    assert result.output.startswith(f"moneyd: error: {path} is not valid JSON")
    assert "Traceback" not in result.output


def test_ask_without_a_terminal_takes_the_value_the_default_or_names_the_flag(tmp_path: Path) -> None:
    app = acme_app(tmp_path / "moneyd.json")
    assert CliRunner().invoke(app, ["acme:ask", "--name", "bob"]).output == "bob\n"
    assert CliRunner().invoke(app, ["acme:ask", "--default", "carol"]).output == "carol\n"
    result = CliRunner().invoke(app, ["acme:ask"])
    assert result.exit_code == 2
    assert "give it with --name (no terminal to ask on)" in result.output


def test_a_missing_library_stand_in_says_how_to_install_it(tmp_path: Path) -> None:
    result = CliRunner().invoke(acme_app(tmp_path / "moneyd.json"), ["acme:topup", "--amount", "5"])
    assert result.exit_code == 1
    assert result.output == ("moneyd: error: acme:topup needs a library this install lacks; add it with: "
                             "pip install acme-chain\n")


@pytest.mark.parametrize(("units", "scale", "code", "text"), [
    (0, 6, "XRP", "0 XRP"), (1, 6, "XRP", "0.000001 XRP"), (10_000_000, 6, "XRP", "10 XRP"),
    (5 * 10**16, 18, "ETH", "0.05 ETH"), (123, 0, "WEI", "123 WEI"),
])
def test_format_amount(units: int, scale: int, code: str, text: str) -> None:
    assert uplink_cli.format_amount(units, scale, code) == text


def test_each_shared_error_is_one_class_whatever_the_uplink() -> None:
    from moneyd import config
    from uplinks.eth import errors as eth
    from uplinks.xrp import errors as xrp

    for name in ("ClaimRejected", "ConfigError", "InsufficientCapacity", "ProtocolError"):
        assert getattr(xrp, name) is getattr(eth, name) is getattr(errors, name)
        assert issubclass(getattr(errors, name), errors.MoneydError)
    assert config.ConfigError is errors.ConfigError
    assert issubclass(xrp.XrpUplinkError, errors.MoneydError) and issubclass(eth.ChainError, errors.MoneydError)
    rejected = errors.ClaimRejected("signature", "bad signature")
    assert (rejected.reason, str(rejected)) == ("signature", "bad signature")
