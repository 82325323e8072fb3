"""Run the pinned JS reference implementations (tests/js) as subprocesses on 127.0.0.1.

Helper scripts speak JSON lines: they print one JSON object per line on stdout (``{"event": "ready", ...}``)
and may read commands as JSON lines on stdin. stderr is kept for the failure report.

Interop tests must fail, not skip, when node or the npm packages are missing: CI has to notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

JS_DIR = Path(__file__).parent.parent / "js"
STREAM_FIX = JS_DIR / "stream-node20-fix.js"


def node_binary() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: the interop tests need Node.js 20 (run .ci/run, which installs it)")
    if not (JS_DIR / "node_modules" / "ilp-packet").is_dir():
        pytest.fail(f"JS peers are not installed: run `npm ci --ignore-scripts` in {JS_DIR}")
    return node


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class NodeProcess:
    """One node process. Output lines are collected by a thread so neither sync nor async tests block it."""

    def __init__(self, script: str | Path, args: list[str], env: dict[str, str] | None, preload_stream_fix: bool):
        path = Path(script)
        if not path.is_absolute():
            path = JS_DIR / path
        cmd = [node_binary(), "--unhandled-rejections=warn"]
        if preload_stream_fix:
            cmd += ["-r", str(STREAM_FIX)]
        cmd += [str(path), *args]
        full_env = {**os.environ, "NODE_PATH": str(JS_DIR / "node_modules"), **(env or {})}
        self.name = path.name
        self.proc = subprocess.Popen(
            cmd,
            cwd=JS_DIR,
            env=full_env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self.stderr: list[str] = []
        self._cond = threading.Condition()
        self._cursor = 0
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr), daemon=True).start()

    def _pump(self, stream: Any, sink: list[str]) -> None:
        for raw in iter(stream.readline, b""):
            with self._cond:
                sink.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    # -- reading ------------------------------------------------------------------------------------------

    def _take(self, pattern: re.Pattern[str] | None) -> tuple[str, re.Match[str] | None] | None:
        while self._cursor < len(self.lines):
            line = self.lines[self._cursor]
            self._cursor += 1
            if pattern is None:
                return line, None
            m = pattern.search(line)
            if m:
                return line, m
        return None

    def _describe(self, what: str, timeout: float) -> str:
        status = "running" if self.proc.poll() is None else f"exited with {self.proc.returncode}"
        out = "\n".join(self.lines[-30:])
        err = "\n".join(self.stderr[-40:])
        return f"{self.name}: no {what} within {timeout}s ({status})\n--- stdout ---\n{out}\n--- stderr ---\n{err}"

    def expect_sync(self, regex: str, timeout: float = 20.0) -> re.Match[str]:
        pattern = re.compile(regex)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = self._take(pattern)
                if got is not None:
                    assert got[1] is not None
                    return got[1]
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and self._cursor >= len(self.lines)):
                    raise AssertionError(self._describe(f"line matching {regex!r}", timeout))
                self._cond.wait(min(left, 0.2))

    async def expect(self, regex: str, timeout: float = 20.0) -> re.Match[str]:
        """Wait for a stdout line matching regex, yielding to the event loop (our server may run in it)."""
        pattern = re.compile(regex)
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                got = self._take(pattern)
            if got is not None:
                assert got[1] is not None
                return got[1]
            if time.monotonic() > deadline or (self.proc.poll() is not None and self._cursor >= len(self.lines)):
                raise AssertionError(self._describe(f"line matching {regex!r}", timeout))
            await asyncio.sleep(0.01)

    async def event(self, name: str, timeout: float = 20.0) -> dict[str, Any]:
        """The next JSON line whose "event" is name; a JSON line with "event": "error" fails at once."""
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                got = self._take(None)
            if got is not None:
                try:
                    obj = json.loads(got[0])
                except ValueError:
                    continue
                if not isinstance(obj, dict):
                    continue
                if obj.get("event") == name:
                    return obj
                if obj.get("event") == "fatal":
                    raise AssertionError(f"{self.name} failed: {obj}\n" + "\n".join(self.stderr[-40:]))
                continue
            if time.monotonic() > deadline or (self.proc.poll() is not None and self._cursor >= len(self.lines)):
                raise AssertionError(self._describe(f"event {name!r}", timeout))
            await asyncio.sleep(0.01)

    def event_sync(self, name: str, timeout: float = 20.0) -> dict[str, Any]:
        return asyncio.run(self.event(name, timeout))

    def all_events(self, name: str | None = None, **match: Any) -> list[dict[str, Any]]:
        """Every JSON object printed so far (whatever ``event``/``expect`` have consumed), optionally only those
        whose "event" is name and whose fields equal ``match``."""
        found = []
        for line in list(self.lines):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict) and (name is None or obj.get("event") == name) and all(obj.get(k) == v for k, v in match.items()):
                found.append(obj)
        return found

    # -- writing ------------------------------------------------------------------------------------------

    def send(self, obj: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(obj) + "\n").encode())
        self.proc.stdin.flush()

    # -- stopping -----------------------------------------------------------------------------------------

    def stop(self, timeout: float = 5.0) -> int | None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()
        return self.proc.returncode


class NodeRunner:
    """Starts node helpers and stops every one of them when the test ends."""

    def __init__(self) -> None:
        self.procs: list[NodeProcess] = []

    def start(
        self,
        script: str | Path,
        *args: str,
        env: dict[str, str] | None = None,
        stream_fix: bool = True,
    ) -> NodeProcess:
        p = NodeProcess(script, list(args), env, stream_fix)
        self.procs.append(p)
        return p

    def stop_all(self) -> None:
        for p in reversed(self.procs):
            p.stop()


@pytest.fixture
def node() -> Iterator[NodeRunner]:
    runner = NodeRunner()
    try:
        yield runner
    finally:
        runner.stop_all()
