"""Every command in a hostile environment ends in words, never a traceback: a read-only config and data directory, a
full disk, no HOME, a directory where the config file should be, a file where the data directory should be, and
never a terminal (stdin is /dev/null in every case).

Read-only and full filesystems are real ones: as root (which ignores file modes) each command runs in its own mount
namespace (`unshare -m`) on a tmpfs mounted read-only or filled up; without root the read-only case uses file modes
and the cases that need mounts are skipped (reported as skipped, not passed).
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
import sys
from pathlib import Path

import pytest

from tests.support.jsnode import free_port

ROOT = Path(__file__).parent.parent.parent
IS_ROOT = os.geteuid() == 0 and shutil.which("unshare") is not None
SECRET_SEED = "sn3nxiW7v8KXzPzAqzyHXbSSKNuN9"  # the XRPL documentation's example seed (holds nothing)
ETH_KEY = "0x" + "11" * 32
RUNS_AT_ONCE = 4
SETTLE = 60.0  # seconds a command may take to give up (the busy CI machine)


def commands(tmp: Path) -> dict[str, list[str]]:
    """Arguments that make each command do its real work, quickly and without the internet: the chain servers
    named are closed ports on 127.0.0.1."""
    (tmp / "seed").write_text(SECRET_SEED)
    (tmp / "key").write_text(ETH_KEY)
    closed = f"127.0.0.1:{free_port()}"
    via = f"btp+ws://localhost:{free_port()}"
    return {
        "local": ["local", "--port", str(free_port())],
        "pay": ["pay", f"http://{closed}/x", "5", "--via", via],
        "pay --json": ["pay", f"http://{closed}/x", "5", "--via", via, "--json"],
        "receive": ["receive", "--via", via, "--port", "0"],
        "btp:configure": ["btp:configure", "--parent", "btp+wss://:tok@parent.example", "--force"],
        "btp:start": ["btp:start", "--port", str(free_port()), "--wait-for-parent", "0"],
        "xrp:configure": ["xrp:configure", "--parent", "parent.example", "--xrp-server", f"ws://{closed}",
                          "--secret-file", str(tmp / "seed"), "--force"],
        "xrp:start": ["xrp:start", "--port", str(free_port()), "--wait-for-parent", "0"],
        "xrp:info": ["xrp:info"],
        "xrp:topup": ["xrp:topup", "--amount", "1XRP", "--yes"],
        "xrp:cleanup": ["xrp:cleanup", "--all", "--yes"],
        "eth:configure": ["eth:configure", "--parent", "parent.example", "--provider", f"http://{closed}",
                          "--key-file", str(tmp / "key"), "--force"],
        "eth:start": ["eth:start", "--port", str(free_port()), "--wait-for-parent", "0"],
        "eth:info": ["eth:info"],
        "eth:topup": ["eth:topup", "--amount", "1gwei"],
        "eth:cleanup": ["eth:cleanup"],
        "status": ["status"],
        "service": ["service", "status"],
        "config path": ["config", "path"],
        "config show": ["config", "show"],
        "help": ["help"],
        "completion": ["completion", "bash"],
        "--help": ["--help"],
        "--version": ["--version"],
    }


def test_every_command_is_covered(tmp_path: Path) -> None:
    from moneyd.cli import command

    group = command()
    listed = {name for name in group.commands if name not in ("config",)} | {"config path", "config show"}
    assert listed <= set(commands(tmp_path)), listed - set(commands(tmp_path))


class Env:
    """How to run a command in one hostile environment: extra arguments, environment and mount setup."""

    def __init__(self, tmp: Path, name: str) -> None:
        self.tmp, self.name = tmp, name
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("MONEYD_", "XDG_"))}
        self.env.pop("TERM", None)
        self.setup = ""  # shell run as root in the command's own mount namespace
        self.config: Path | None = None
        spot = tmp / "spot"
        spot.mkdir()
        seed = tmp / "seed-files"
        seed.mkdir()
        # A config with every uplink, so the start/info commands get past "not configured" to their writes.
        (seed / "m.json").write_text(
            '{"version": 1, "btp": {"parent": "btp+ws://:tok@127.0.0.1:9"}, "xrp": {"parent": "127.0.0.1:9", '
            '"xrp_server": "ws://127.0.0.1:9", "name": "me", "address": "rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh"}}')
        if name == "read-only":
            self.config, self.env["MONEYD_DATA_DIR"] = spot / "m.json", str(spot / "data")
            if IS_ROOT:
                self.setup = (f'mount -t tmpfs -o size=1m none "{spot}" && cp "{seed}/m.json" "{spot}/" && '
                              f'mount -o remount,ro "{spot}"')
            else:
                shutil.copy(seed / "m.json", spot / "m.json")
                spot.chmod(0o555)
        elif name == "full disk":
            if not IS_ROOT:
                pytest.skip("a full filesystem needs a tmpfs mount: run as root")
            self.config, self.env["MONEYD_DATA_DIR"] = spot / "m.json", str(spot / "data")
            self.setup = (f'mount -t tmpfs -o size=256k none "{spot}" && cp "{seed}/m.json" "{spot}/" && '
                          f'mkdir "{spot}/data" && (dd if=/dev/zero of="{spot}/fill" bs=4k 2>/dev/null; true)')
        elif name == "no HOME":
            if not IS_ROOT:
                pytest.skip("without HOME moneyd falls back to your passwd home; only safe to test in a mount namespace")
            self.env.pop("HOME", None)
            home = Path(pwd.getpwuid(os.getuid()).pw_dir)
            # The passwd home's config and data dirs are empty tmpfs for this one process: nothing real is touched.
            self.setup = " && ".join(f'mkdir -p "{d}" && mount -t tmpfs -o size=1m none "{d}"'
                                     for d in (home / ".config", home / ".local" / "share"))
        elif name == "config is a directory":
            self.config = spot
            self.env["MONEYD_DATA_DIR"] = str(tmp / "data")
        elif name == "data dir is a file":
            shutil.copy(seed / "m.json", tmp / "m.json")
            self.config = tmp / "m.json"
            (tmp / "datafile").write_text("not a directory")
            self.env["MONEYD_DATA_DIR"] = str(tmp / "datafile")
        else:
            raise AssertionError(name)

    def argv(self, args: list[str]) -> list[str]:
        cmd = [sys.executable, "-m", "moneyd", *(["-c", str(self.config)] if self.config else []), *args]
        if self.setup:
            return ["unshare", "-m", "sh", "-c", f'{self.setup} && exec "$@"', "sh", *cmd]
        return cmd


async def run(env: Env, args: list[str]) -> tuple[int, str, str]:
    """Run until it exits; a router that comes up anyway ("moneyd ready") is stopped with SIGTERM."""
    proc = await asyncio.create_subprocess_exec(
        *env.argv(args), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**env.env, "PYTHONPATH": str(ROOT)}, cwd=str(env.tmp))
    assert proc.stdout is not None and proc.stderr is not None
    err_task = asyncio.ensure_future(proc.stderr.read())
    out_lines: list[str] = []
    try:
        async with asyncio.timeout(SETTLE):
            while line := (await proc.stdout.readline()).decode():
                out_lines.append(line)
                if line.startswith("moneyd ready") or line.startswith('{"event": "ready"'):
                    proc.send_signal(signal.SIGTERM)
            code = await proc.wait()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"{args} still running after {SETTLE}s: {''.join(out_lines)}") from None
    return code, "".join(out_lines), (await err_task).decode()


ENVIRONMENTS = ["read-only", "full disk", "no HOME", "config is a directory", "data dir is a file"]


@pytest.mark.parametrize("environment", ENVIRONMENTS)
async def test_no_command_ends_in_a_traceback(tmp_path: Path, environment: str) -> None:
    env = Env(tmp_path, environment)
    cases = commands(tmp_path)
    gate = asyncio.Semaphore(RUNS_AT_ONCE)

    async def one(name: str) -> tuple[str, int, str, str]:
        async with gate:
            return (name, *await run(env, cases[name]))

    problems = []
    for name, code, out, err in await asyncio.gather(*(one(n) for n in cases)):
        lines = [line for line in err.splitlines() if line.strip()]
        if "Traceback" in err + out or ("Error:" in err and "Usage:" not in err and "moneyd: error" not in err):
            problems.append(f"{name}: a traceback or raw error:\n{err[-2000:]}")
        elif code != 0 and not lines and not out.strip():
            problems.append(f"{name}: exit {code} with nothing said")
        elif code != 0 and not lines:
            continue  # a state reported on stdout (moneyd status: 1 is "not running"), not an error
        elif code != 0 and not (lines[-1].startswith("moneyd: error: ") or "Error:" in lines[-1]
                                or lines[-1].startswith("Try ")):
            problems.append(f"{name}: exit {code}, last line is not an error line: {lines[-1]!r}")
        elif code != 0 and lines[-1].startswith("moneyd: error: unexpected"):
            problems.append(f"{name}: an unexpected error reached the top: {lines[-1]}")
    assert not problems, f"in the {environment!r} environment:\n" + "\n".join(problems)


async def test_the_lines_say_what_to_do(tmp_path: Path) -> None:
    # Read-only: names the place and the way out.
    env = Env(tmp_path, "read-only")
    code, _, err = await run(env, ["local", "--port", str(free_port())])
    assert code == 1 and "MONEYD_DATA_DIR" in err.strip().splitlines()[-1]
    code, _, err = await run(env, ["btp:configure", "--parent", "btp+wss://:tok@parent.example", "--force"])
    assert code == 1 and "cannot save the config" in err and "-c/--config" in err


async def test_a_directory_as_config_says_so(tmp_path: Path) -> None:
    env = Env(tmp_path, "config is a directory")
    code, _, err = await run(env, ["btp:configure", "--parent", "btp+wss://:tok@parent.example"])
    assert code == 1 and "is a directory" in err and "moneyd.json" in err
