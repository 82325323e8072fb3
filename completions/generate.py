"""Regenerate the shell completion scripts: ``python3 completions/generate.py`` (or ``moneyd completion SHELL``).

The scripts are static (a TAB runs no Python) and written from the command tree, so regenerate them when a command
or option changes; a test checks that the files here are current.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))  # this checkout's moneyd, not an installed one

from moneyd.cli import command  # noqa: E402
from moneyd.completion import script  # noqa: E402

SHELLS = {"bash": "moneyd.bash", "zsh": "_moneyd", "fish": "moneyd.fish"}


def generate(shell: str) -> str:
    return script(shell, command())


def main() -> None:
    for shell, name in SHELLS.items():
        (HERE / name).write_text(generate(shell))
        print(f"wrote completions/{name}")


if __name__ == "__main__":
    main()
