"""A third party can ship an uplink: an entry point in ``moneyd.uplinks`` adds its commands to the CLI, and a
broken one is reported without taking the CLI down."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PLUGIN = '''
import typer

class Plugin:
    name = "acme"
    summary = "Acme settlement"

    def register_commands(self, app: typer.Typer) -> None:
        @app.command("acme:start")
        def start() -> None:
            """Start the router with the Acme uplink."""
            print("acme uplink starting")

plugin = Plugin()
'''


def install_fake_distribution(root: Path, name: str, entry: str, module_src: str) -> None:
    (root / f"{name}.py").write_text(module_src)
    dist = root / f"{name}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[moneyd.uplinks]\n{entry}\n")


def run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run([sys.executable, "-m", "moneyd", *args], capture_output=True, text=True, env=env, timeout=60)


def test_third_party_uplink_adds_its_commands(tmp_path: Path) -> None:
    install_fake_distribution(tmp_path, "acme_uplink", "acme = acme_uplink:plugin", PLUGIN)
    out = run(tmp_path, "--help")
    assert out.returncode == 0, out.stderr
    assert "acme:start" in out.stdout
    out = run(tmp_path, "acme:start")
    assert (out.returncode, out.stdout.strip()) == (0, "acme uplink starting")


def test_broken_plugin_is_reported_and_the_cli_still_works(tmp_path: Path) -> None:
    install_fake_distribution(tmp_path, "broken_uplink", "broken = broken_uplink:plugin", "raise RuntimeError('boom')\n")
    install_fake_distribution(tmp_path, "wrong_uplink", "wrong = wrong_uplink:plugin", "plugin = 42\n")
    out = run(tmp_path, "--help")  # (--version answers without loading any plugin)
    assert out.returncode == 0
    assert "uplink plugin 'broken' not loaded: RuntimeError: boom" in out.stderr
    assert "uplink plugin 'wrong' not loaded: TypeError" in out.stderr
