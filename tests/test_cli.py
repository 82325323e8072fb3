"""The command line shell: help, version, completions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from moneyd import __version__

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT / "completions"))
import generate  # noqa: E402


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "moneyd", *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=60)


def test_help_lists_the_command_groups() -> None:
    out = run("--help")
    assert out.returncode == 0, out.stderr
    for group in ("local", "btp:", "xrp:", "eth:", "pay", "receive", "status"):
        assert group in out.stdout


def test_version() -> None:
    out = run("--version")
    assert (out.returncode, out.stdout.strip()) == (0, f"moneyd {__version__}")


def test_unknown_command_is_a_clear_error() -> None:
    out = run("fly")
    assert out.returncode == 2
    assert "No such command" in out.stderr and "fly" in out.stderr


@pytest.mark.parametrize("shell", sorted(generate.SHELLS))
def test_completion_scripts_are_current(shell: str) -> None:
    committed = (ROOT / "completions" / generate.SHELLS[shell]).read_text()
    assert committed == generate.generate(shell), "run: python3 completions/generate.py"
    assert "_MONEYD_COMPLETE" in committed


def test_completion_offers_options() -> None:
    out = run(env={"_MONEYD_COMPLETE": "complete_bash", "COMP_WORDS": "moneyd --vers", "COMP_CWORD": "1"})
    assert out.stdout.split() == ["--version"]


def test_the_cli_starts_without_loading_the_chain_libraries() -> None:
    # Every command pays for what the CLI imports at startup: xrpl-py and web3 load only when an xrp:/eth: command runs.
    probe = ("import sys, runpy; sys.argv = ['moneyd', '--help']\n"
             "try:\n    runpy.run_module('moneyd', run_name='__main__')\nexcept SystemExit:\n    pass\n"
             "print(sorted({m.split('.')[0] for m in sys.modules} & {'xrpl', 'web3', 'eth_account'}), file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.stderr.strip().splitlines()[-1] == "[]", out.stderr
