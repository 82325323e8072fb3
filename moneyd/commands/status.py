"""``moneyd status [--json] [--token]``: one screen on the running moneyd, read from its admin API.

Exit codes, for scripts and monitoring: 0 healthy, 1 not running (no moneyd answers, or only one that serves another
data directory), 2 moneyd runs but its uplink is down.
Only the standard library here (urllib), so the command is quick.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer

from ..admin.files import load_token, runtime_file
from ..uplink_cli import DEFAULT_ADMIN_API_PORT

HEALTHY, NOT_RUNNING, UPLINK_DOWN = 0, 1, 2


def data_dir() -> Path:
    from ..store import default_data_dir  # here: the store module loads sqlite3, which --help does not need

    return default_data_dir()


def store_path(testnet: bool) -> Path:
    return data_dir() / ("moneyd-test.sqlite" if testnet else "moneyd.sqlite")


def find_port(testnet: bool, config_port: int | None) -> int:
    return locate(testnet, config_port)[0]


def locate(testnet: bool, config_port: int | None) -> tuple[int, bool]:
    """Where the running moneyd serves its admin API: what it wrote in the data directory (then True), else the
    config, else the default."""

    path = runtime_file(store_path(testnet))
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        port = doc.get("admin_port")
        if isinstance(port, int) and 0 < port < 65536:
            return port, True
    except (OSError, ValueError, AttributeError):
        pass
    return config_port or DEFAULT_ADMIN_API_PORT, False


def fetch_overview(port: int, timeout: float = 3.0) -> dict[str, Any] | None:
    """The moneyd's /overview, or None when nothing (or something that is not moneyd) answers."""
    import urllib.error  # here: urllib.request costs more than the rest of `moneyd --help`
    import urllib.request

    req = urllib.request.Request(f"http://127.0.0.1:{port}/overview", headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            doc = json.loads(r.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None
    return doc if isinstance(doc, dict) and "address" in doc and "moneyd" in doc else None


def serves_elsewhere(doc: dict[str, Any] | None, store: Path, published: bool) -> str | None:
    """Where the moneyd that answered keeps its money when that is not ``store``: the port we probed (the config's
    or the default, or a stale runtime file's) belongs to a moneyd of another data directory or network, so ours is
    not running. None when it is ours. One that does not say is taken for ours only on the word of the runtime file
    ours writes (without it, it is any moneyd on the machine: another user's, a benchmark's, a test's)."""
    if doc is None:
        return None
    theirs = (doc.get("moneyd") or {}).get("store")
    if not isinstance(theirs, str):
        return None if published else "a data directory it does not name"
    return None if Path(theirs) == store.resolve() else theirs


def exit_code(doc: dict[str, Any] | None) -> int:
    if doc is None:
        return NOT_RUNNING
    return HEALTHY if doc.get("healthy") else UPLINK_DOWN


def _ago(t: float | None) -> str:
    if not t:
        return "?"
    s = max(0, int(time.time() - t))
    when = time.strftime("%H:%M:%S", time.localtime(t))
    if s < 120:
        return f"{when} ({s}s ago)"
    if s < 7200:
        return f"{when} ({s // 60}m ago)"
    return f"{when} ({s // 3600}h ago)"


def render(doc: dict[str, Any], port: int) -> list[str]:
    m = doc["moneyd"]
    asset = doc["asset"]
    lines = [f"moneyd: running (pid {m['pid']}), apps connect on port {m['port']}, dashboard http://127.0.0.1:{port}/"]
    up = doc.get("uplink")
    if up is None:
        lines.append("uplink: none (moneyd local)")
    else:
        state = f"connected since {_ago(up.get('since'))}" if up["connected"] else "DOWN"
        if up.get("failure"):
            state += f": {up['failure']}"
        lines.append(f"uplink: {up['type']}, {state}" + (f", parent {up['parent']}" if up.get("parent") else ""))
    lines.append(f"address: {doc['address']} ({asset['code']}, scale {asset['scale']})")
    accounts = doc.get("accounts") or []
    if accounts:
        lines.append("balances: " + ", ".join(f"{a['id']} {int(a['balance']):,}" for a in accounts))
    else:
        lines.append("balances: none yet")
    if up is not None:
        for side, label in (("ours", "our channel"), ("theirs", "parent's channel")):
            ch = (up.get("channels") or {}).get(side)
            if ch:
                cap, left = ch.get("capacity"), ch.get("left")
                if cap is not None and left is not None:
                    lines.append(f"{label}: {int(left):,} of {int(cap):,} left (claimed {int(ch['claimed']):,})")
                elif ch.get("claimed") is not None:
                    lines.append(f"{label}: claimed {int(ch['claimed']):,}")
    apps = doc.get("apps") or []
    lines.append(f"apps connected: {len(apps)}" + (f" ({', '.join(a[:12] for a in apps[:5])}{', …' if len(apps) > 5 else ''})" if apps else ""))
    err = doc.get("last_error")
    lines.append("last error: " + (f"{err.get('code', '')} {err['message']} at {_ago(err.get('time'))}".strip() if err else "none"))
    return lines


def register(app: typer.Typer) -> None:
    @app.command("status")
    def status(
        ctx: typer.Context,
        as_json: bool = typer.Option(False, "--json", help="Print the status as JSON."),
        token: bool = typer.Option(False, "--token", help="Print the admin API token (for writes and the dashboard's send form)."),
        admin_api_port: int | None = typer.Option(None, "--admin-api-port", min=1, max=65535,
                                                  help="Ask the moneyd on this admin port."),
    ) -> None:
        """Is moneyd running, is its uplink up, balances, channels, apps. Exit 0 healthy, 1 not running, 2 uplink down."""
        from .local import load_config

        testnet = bool(getattr(ctx.obj, "testnet", False))
        if token:
            tok = load_token(data_dir())
            port = admin_api_port or find_port(testnet, None)
            if as_json:
                typer.echo(json.dumps({"token": tok, "dashboard": f"http://127.0.0.1:{port}/#token={tok}"}))
            else:
                typer.echo(tok)
                typer.echo(f"dashboard with the token: http://127.0.0.1:{port}/#token={tok}", err=True)
            return
        cfg = load_config(ctx)
        cfg_port = cfg.data.get("admin_api_port") if cfg is not None else None
        port, published = locate(testnet, cfg_port if isinstance(cfg_port, int) and not isinstance(cfg_port, bool) else None)
        port = admin_api_port or port
        doc = fetch_overview(port)
        # Asked for a port: whatever moneyd serves there. Else the status is of this data directory's moneyd.
        elsewhere = None if admin_api_port else serves_elsewhere(doc, store_path(testnet), published)
        if elsewhere is not None:
            doc = None
        code = exit_code(doc)
        if as_json:
            typer.echo(json.dumps({"running": doc is not None, "admin_port": port, "exit_code": code, "status": doc}))
        elif elsewhere is not None:
            typer.echo(f"moneyd: not running for {store_path(testnet)} (the moneyd on 127.0.0.1:{port} serves "
                       f"{elsewhere}; `moneyd status --admin-api-port {port}` shows it)")
        elif doc is None:
            typer.echo(f"moneyd: not running (nothing answers on 127.0.0.1:{port}); start it with `moneyd local` "
                       "or `moneyd NAME:start`")
        else:
            for line in render(doc, port):
                typer.echo(line)
        raise typer.Exit(code)
