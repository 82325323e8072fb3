"""The completion scripts in real shells: bash, zsh and fish run in tmux, keys typed with send-keys and the screen
read back with capture-pane. bash splits words at ':' (COMP_WORDBREAKS), the case `xrp:c<TAB>` is about."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent.parent
sys.path.insert(0, str(ROOT / "completions"))
import generate  # noqa: E402

SHELLS = {
    "bash": (["bash", "--norc", "--noprofile"], "PS1='READY$ '; source {dir}/moneyd.bash"),
    "zsh": (["zsh", "-f"], "PS1='READY$ '; bindkey -e; autoload -U compinit && compinit -u -D && source {dir}/_moneyd"),
    "fish": (["fish", "--no-config"], "function fish_prompt; echo -n 'READY$ '; end; source {dir}/moneyd.fish"),
}
SCREEN_WAIT = 20.0  # seconds for a shell on a busy machine to draw what was typed


class Terminal:
    def __init__(self, shell: str, cwd: Path) -> None:
        if shutil.which("tmux") is None or shutil.which(shell) is None:
            pytest.fail(f"tmux and {shell} are needed (bash tests/run.sh installs them)")
        self.socket = f"moneyd-test-{os.getpid()}-{shell}"
        argv, setup = SHELLS[shell]
        env = {k: v for k, v in os.environ.items() if not k.startswith("TMUX")}
        subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null", "new-session", "-d", "-x", "160", "-y", "40",
                        "-c", str(cwd), *argv], check=True, env={**env, "TERM": "xterm"})
        self.keys(setup.format(dir=ROOT / "completions"), "Enter")
        # Not "READY$ " anywhere on the screen: the typed setup line shows that at once, before it has run.
        self.wait_for_empty_prompt()

    def keys(self, *keys: str) -> None:
        subprocess.run(["tmux", "-L", self.socket, "send-keys", *keys], check=True)

    def screen(self) -> str:
        return subprocess.run(["tmux", "-L", self.socket, "capture-pane", "-p"], check=True, capture_output=True,
                              text=True).stdout

    def cursor_line(self) -> tuple[str, int]:
        """The screen's line under the cursor and the cursor's column, read together from tmux."""
        out = subprocess.run(["tmux", "-L", self.socket, "display-message", "-p", "#{cursor_x} #{cursor_y}"],
                             check=True, capture_output=True, text=True).stdout.split()
        x, y = int(out[0]), int(out[1])
        lines = self.screen().splitlines()
        return (lines[y] if y < len(lines) else ""), x

    def wait_for_empty_prompt(self) -> None:
        """The shell waits for input on an empty command line (its prompt redrawn, the cursor right after it)."""
        deadline = time.monotonic() + SCREEN_WAIT
        while self.cursor_line() != ("READY$", len("READY$ ")):
            if time.monotonic() > deadline:
                pytest.fail(f"no empty prompt under the cursor:\n{self.screen()}")
            time.sleep(0.05)

    def wait_for(self, *texts: str) -> str:
        """The screen once it shows every one of ``texts`` (the shell draws asynchronously)."""
        deadline = time.monotonic() + SCREEN_WAIT
        while True:
            screen = self.screen()
            if all(t in screen for t in texts):
                return screen
            if time.monotonic() > deadline:
                pytest.fail(f"the screen never showed {texts!r}:\n{screen}")
            time.sleep(0.05)

    def shows_line(self, text: str) -> None:
        """The command line reads ``text`` (a trailing space included: tmux trims it, so type a mark after it)."""
        self.wait_for(text.rstrip())
        if text.endswith(" "):
            self.keys("Z")
            self.wait_for(text + "Z")
            self.keys("BSpace")

    def clear(self) -> None:
        """An empty command line on an empty screen. Line-editor keys only, each step seen on the screen before the
        next: Ctrl-C is a signal the shell handles when it gets to it (keys sent after it could land on the line it
        then cancels), and a `clear` command runs with the terminal in cooked mode (keys sent meanwhile are echoed
        and read out of order)."""
        self.keys("C-e", "C-u")  # end of line, kill back to the prompt: bash, zsh (emacs keymap) and fish alike
        self.wait_for_empty_prompt()
        self.keys("C-l")  # clear-screen, then the prompt redrawn at the top
        deadline = time.monotonic() + SCREEN_WAIT
        while [line for line in self.screen().splitlines() if line.strip()] != ["READY$"] \
                or self.cursor_line() != ("READY$", len("READY$ ")):
            if time.monotonic() > deadline:
                pytest.fail(f"the screen did not clear:\n{self.screen()}")
            time.sleep(0.05)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], check=False, capture_output=True)


@pytest.fixture(params=sorted(SHELLS))
def term(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Terminal]:
    (tmp_path / "my-moneyd.json").write_text("{}")
    t = Terminal(request.param, tmp_path)
    try:
        yield t
    finally:
        t.close()


def test_a_colon_command_completes(term: Terminal) -> None:
    term.keys("moneyd xrp:co", "Tab")
    term.shows_line("moneyd xrp:configure ")
    term.clear()
    term.keys("moneyd btp:s", "Tab")
    term.shows_line("moneyd btp:start ")


def test_an_ambiguous_colon_prefix_lists_both(term: Terminal) -> None:
    term.keys("moneyd xrp:c", "Tab")
    time.sleep(0.2)
    term.keys("Tab")
    screen = term.wait_for("cleanup", "configure")
    assert "my-moneyd.json" not in screen  # not file names, as before the fix


def test_options_subcommands_and_file_values(term: Terminal) -> None:
    term.keys("moneyd xrp:configure --imp", "Tab")
    term.shows_line("moneyd xrp:configure --import-js ")
    term.keys("my-m", "Tab")
    term.wait_for("--import-js my-moneyd.json")
    term.clear()
    term.keys("moneyd config sh", "Tab")
    term.wait_for("moneyd config show")
    term.clear()
    term.keys("moneyd xrp:start --allow-or", "Tab")  # the options moneyd accepts after the command complete there
    term.shows_line("moneyd xrp:start --allow-origin ")


@pytest.mark.parametrize("shell", sorted(generate.SHELLS))
def test_completion_scripts_are_current(shell: str) -> None:
    committed = (ROOT / "completions" / generate.SHELLS[shell]).read_text()
    assert committed == generate.generate(shell), "run: python3 completions/generate.py"


@pytest.mark.parametrize("shell", sorted(generate.SHELLS))
def test_moneyd_completion_prints_the_script(shell: str) -> None:
    out = subprocess.run([sys.executable, "-m", "moneyd", "completion", shell], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == (ROOT / "completions" / generate.SHELLS[shell]).read_text()
    # Static: a TAB runs no Python (no import of the CLI per keypress).
    assert "python" not in out.stdout and "_MONEYD_COMPLETE" not in out.stdout
