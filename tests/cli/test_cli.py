"""The command line shell: help, version, completions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from moneyd import __version__

ROOT = Path(__file__).parent.parent.parent


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "moneyd", *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=60)


def test_help_lists_the_command_groups() -> None:
    out = run("--help")
    assert out.returncode == 0, out.stderr
    for group in ("local", "btp:start", "xrp:start", "eth:start", "pay", "receive", "config", "help"):
        assert group in out.stdout
    assert "not built yet" not in out.stdout


def test_help_lists_only_commands_that_exist() -> None:
    out = run("--help")
    listed = [line.split()[0] for line in out.stdout.split("Commands:")[1].splitlines() if line.startswith("  ")
              and not line.startswith("   ")]
    assert listed
    for name in listed:
        assert run(name, "--help").returncode == 0, name


def test_no_help_shows_bool_metavars_or_eats_brackets() -> None:
    for args in (("--help",), ("xrp:configure", "--help"), ("eth:configure", "--help"), ("pay", "--help"),
                 ("local", "--help"), ("btp:configure", "--help")):
        out = run(*args)
        assert out.returncode == 0, out.stderr
        assert "<bool>" not in out.stdout and "moneyd[" not in out.stdout + out.stderr, args


def test_moneyd_help_is_the_help() -> None:
    assert run("help").stdout == run("--help").stdout
    assert run("help", "pay").stdout == run("pay", "--help").stdout
    bad = run("help", "fly")
    assert bad.returncode == 2 and "fly" in bad.stderr


def test_global_options_before_or_after_the_command(tmp_path: Path) -> None:
    # As with the JS moneyd: -t/--testnet and -c after the command, the router's options before it.
    for args in (("xrp:info", "-t"), ("-t", "xrp:info"), ("xrp:info", "--testnet")):
        out = run("-c", str(tmp_path / "m.json"), *args)
        assert out.returncode == 1 and "`moneyd --testnet -c" in out.stderr, (args, out.stderr)
    out = run("xrp:info", "-c", str(tmp_path / "other.json"))
    assert "other.json" in out.stderr
    out = run("--allow-origin", "(", "local")
    assert out.returncode == 2 and "--allow-origin" in out.stderr and "not a regular expression" in out.stderr
    out = run("--unsafe-allow-extensions", "--port", "0", "local")
    assert out.returncode == 2 and "0 is not a TCP port" in out.stderr


def test_a_js_config_points_to_the_import(tmp_path: Path) -> None:
    js = tmp_path / "moneyd.json"
    js.write_text('{"version": 1, "uplinks": {"xrp": {"options": {"secret": "snot", "xrpServer": "wss://x"}}}}')
    out = run("-c", str(js), "xrp:start")
    assert out.returncode == 1
    assert f"--import-js {js}" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_config_path_and_show_redact_secrets(tmp_path: Path) -> None:
    cfg = tmp_path / "m.json"
    assert run("-c", str(cfg), "config", "path").stdout.strip() == str(cfg)
    cfg.write_text('{"version": 1, "btp": {"parent": "btp+wss://me:sekret-token@parent.example"}, '
                   '"xrp": {"address": "rAbc", "secret": "sEdXYZ"}}')
    out = run("-c", str(cfg), "config", "show")
    assert out.returncode == 0, out.stderr
    assert "sekret-token" not in out.stdout and "sEdXYZ" not in out.stdout
    assert "btp+wss://me:***@parent.example" in out.stdout and "rAbc" in out.stdout


def test_version() -> None:
    out = run("--version")
    assert (out.returncode, out.stdout.strip()) == (0, f"moneyd {__version__}")


def test_unknown_command_is_a_clear_error() -> None:
    out = run("fly")
    assert out.returncode == 2
    assert "No such command" in out.stderr and "fly" in out.stderr


@pytest.mark.parametrize("args", [["--help"], ["xrp:start", "--help"], ["eth:start", "--help"]])
def test_the_cli_starts_without_loading_the_heavy_modules(args: list[str]) -> None:
    # Every command (and every --help) pays for what the CLI imports at startup: the chain libraries, aiohttp,
    # asyncio, the keyring's cryptography, sqlite3, urllib.request, the router and STREAM load only when a command
    # that needs them runs.
    probe = (f"import sys, runpy; sys.argv = ['moneyd', *{args!r}]\n"
             "try:\n    runpy.run_module('moneyd', run_name='__main__')\nexcept SystemExit:\n    pass\n"
             "heavy = {'xrpl', 'web3', 'eth_account', 'aiohttp', 'websockets', 'asyncio', 'cryptography', 'keyring',\n"
             "         'sqlite3', 'plistlib'}\n"
             "print(sorted({m for m in sys.modules if m.split('.')[0] in heavy or m.startswith(('moneyd.stream', "
             "'moneyd.app', 'moneyd.server', 'moneyd.router', 'moneyd.wire', 'moneyd.btp', 'moneyd.secrets', "
             "'moneyd.store', 'urllib.request'))}), file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.stderr.strip().splitlines()[-1] == "[]", out.stderr


def test_xrp_configure_says_what_a_parent_is(tmp_path: Path) -> None:
    (tmp_path / "seed").write_text("sn3nxiW7v8KXzPzAqzyHXbSSKNuN9")  # the XRPL documentation's example seed
    out = subprocess.run([sys.executable, "-m", "moneyd", "-c", str(tmp_path / "m.json"), "xrp:configure",
                          "--secret-file", str(tmp_path / "seed")], capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL, env={**os.environ, "MONEYD_NO_KEYRING": "1"})
    assert out.returncode == 2 and "--parent" in out.stderr
    assert "The parent is the Interledger connector" in out.stderr and "ilp-plugin-xrp-asym-server" in out.stderr
    assert not (tmp_path / "m.json").exists()


def test_eth_configure_has_advanced() -> None:
    out = run("eth:configure", "--help")
    assert out.returncode == 0 and "--advanced" in out.stdout
