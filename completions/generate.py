"""Regenerate the shell completion scripts from the typer app: ``python3 completions/generate.py``.

The scripts call back into ``moneyd`` for candidates, so they stay right as commands are added; tests check that the
files here match what the installed typer generates.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
SHELLS = {"bash": "moneyd.bash", "zsh": "_moneyd", "fish": "moneyd.fish"}


def generate(shell: str) -> str:
    env = {**os.environ, "_MONEYD_COMPLETE": f"source_{shell}"}
    out = subprocess.run([sys.executable, "-m", "moneyd"], env=env, capture_output=True, text=True, check=True)
    return out.stdout


def main() -> None:
    for shell, name in SHELLS.items():
        (HERE / name).write_text(generate(shell))
        print(f"wrote completions/{name}")


if __name__ == "__main__":
    main()
