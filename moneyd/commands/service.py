"""``moneyd service install|uninstall|status [--uplink NAME]``: run moneyd in the background, restarted on failure.

Linux: a systemd *user* unit (``~/.config/systemd/user/moneyd.service``); macOS: a launchd agent
(``~/Library/LaunchAgents/org.interledger.moneyd.plist``). Either runs this same Python with the same config file
and data directory as the command that installed it, logging JSON lines (journald / the agent's log file).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import typer

LABEL = "org.interledger.moneyd"


def unit_name(testnet: bool) -> str:
    return "moneyd-test.service" if testnet else "moneyd.service"


def systemd_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user"


def launchd_path(testnet: bool) -> Path:
    return Path.home() / "Library" / "LaunchAgents" / f"{LABEL}{'-test' if testnet else ''}.plist"


def command_line(config: Path, testnet: bool, uplink: str | None) -> list[str]:
    args = [sys.executable, "-m", "moneyd", "--config", str(config)]
    if testnet:
        args.append("--testnet")
    args += [f"{uplink}:start" if uplink else "local", "--log-format", "json"]
    return args


def environment(config: Path) -> dict[str, str]:
    from ..store import default_data_dir  # here: the store module loads sqlite3, which --help does not need

    env = {"MONEYD_DATA_DIR": str(default_data_dir()), "MONEYD_CONFIG": str(config), "PYTHONUNBUFFERED": "1"}
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


def _systemd_quote(value: str) -> str:
    """One word for a unit file: systemd reads C-style escapes in double quotes; % starts a specifier."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return f'"{escaped}"' if any(c in value for c in ' \t"\'\\') or not value else escaped


def render_systemd(args: list[str], env: dict[str, str], uplink: str | None) -> str:
    lines = [
        "[Unit]",
        f"Description=moneyd, the Interledger home router ({uplink or 'local'})",
        "Documentation=https://interledger.org",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=simple",
        "ExecStart=" + " ".join(_systemd_quote(a) for a in args),
        *(f"Environment={_systemd_quote(f'{k}={v}')}" for k, v in sorted(env.items())),
        "Restart=on-failure",
        "RestartSec=5",
        "TimeoutStopSec=30",
        "KillSignal=SIGTERM",
        "NoNewPrivileges=yes",
        "",
        "[Install]",
        "WantedBy=default.target",
        "",
    ]
    return "\n".join(lines)


def render_launchd(args: list[str], env: dict[str, str], testnet: bool) -> bytes:
    import plistlib  # macOS only: not loaded for every --help

    log = Path.home() / "Library" / "Logs" / f"moneyd{'-test' if testnet else ''}.log"
    return plistlib.dumps({
        "Label": f"{LABEL}{'-test' if testnet else ''}",
        "ProgramArguments": args,
        "EnvironmentVariables": env,
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},  # restart on failure, not after a clean stop
        "ThrottleInterval": 5,
        "StandardOutPath": str(log),
        "StandardErrorPath": str(log),
    })


def _run(cmd: list[str]) -> tuple[int, str]:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return 1, str(e)
    return p.returncode, (p.stdout + p.stderr).strip()


def register(app: typer.Typer) -> None:
    service = typer.Typer(help="Run moneyd as a background service (systemd user unit, or launchd agent on macOS).",
                          no_args_is_help=True)
    app.add_typer(service, name="service")

    def _mac() -> bool:
        return sys.platform == "darwin"

    @service.command("install")
    def install(
        ctx: typer.Context,
        uplink: str | None = typer.Option(None, "--uplink", help="Run NAME:start (xrp, eth, btp…); default: moneyd local."),
        start: bool = typer.Option(True, "--start/--no-start", help="Enable and start it now."),
        force: bool = typer.Option(False, "--force", "-f", help="Replace an installed service."),
    ) -> None:
        """Install moneyd as a service that starts at login and restarts on failure."""
        from ..uplink import discover_uplinks

        if uplink is not None and uplink not in discover_uplinks()[0]:
            raise typer.BadParameter(f"no uplink named {uplink!r} is installed", param_hint="--uplink")
        config: Path = ctx.obj.config_path.resolve()
        testnet: bool = ctx.obj.testnet
        args, env = command_line(config, testnet, uplink), environment(config)
        if _mac():
            path = launchd_path(testnet)
            body = render_launchd(args, env, testnet)
        else:
            path = systemd_dir() / unit_name(testnet)
            body = render_systemd(args, env, uplink).encode()
        if path.exists() and not force:
            typer.echo(f"moneyd: error: {path} exists; use --force to replace it", err=True)
            raise typer.Exit(1)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        typer.echo(f"wrote {path}: {shlex.join(args[1:])}")
        if not start:
            return
        if _mac():
            code, out = _run(["launchctl", "load", "-w", str(path)])
        elif shutil.which("systemctl"):
            code, out = _run(["systemctl", "--user", "daemon-reload"])
            if code == 0:
                code, out = _run(["systemctl", "--user", "enable", "--now", unit_name(testnet)])
        else:
            code, out = 1, "systemctl is not available"
        if code != 0:
            typer.echo(f"moneyd: error: installed, but could not start it: {out}", err=True)
            raise typer.Exit(1)
        typer.echo("started; `moneyd status` shows how it is doing")

    @service.command("uninstall")
    def uninstall(ctx: typer.Context) -> None:
        """Stop the service and remove it."""
        testnet: bool = ctx.obj.testnet
        path = launchd_path(testnet) if _mac() else systemd_dir() / unit_name(testnet)
        if not path.exists():
            typer.echo(f"no moneyd service installed ({path} does not exist)")
            return
        if _mac():
            _run(["launchctl", "unload", "-w", str(path)])
        elif shutil.which("systemctl"):
            _run(["systemctl", "--user", "disable", "--now", unit_name(testnet)])
        path.unlink()
        if not _mac() and shutil.which("systemctl"):
            _run(["systemctl", "--user", "daemon-reload"])
        typer.echo(f"removed {path}")

    @service.command("status")
    def status(ctx: typer.Context) -> None:
        """Whether the service is installed and what the service manager says about it."""
        testnet: bool = ctx.obj.testnet
        path = launchd_path(testnet) if _mac() else systemd_dir() / unit_name(testnet)
        if not path.exists():
            typer.echo(f"not installed ({path})")
            raise typer.Exit(1)
        typer.echo(f"installed: {path}")
        if _mac():
            code, out = _run(["launchctl", "list", f"{LABEL}{'-test' if testnet else ''}"])
        elif shutil.which("systemctl"):
            code, out = _run(["systemctl", "--user", "is-active", unit_name(testnet)])
        else:
            code, out = 1, "systemctl is not available"
        typer.echo(f"service manager: {out or ('running' if code == 0 else 'not running')}")
