"""A real `moneyd` process with its admin API on a free port, in a data and config folder of its own: shared by the
admin API's process tests and the dashboard's."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.support.jsnode import free_port


def env_for(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "MONEYD_DATA_DIR": str(tmp_path / "data"), "MONEYD_CONFIG": str(tmp_path / "moneyd.json"),
            "XDG_CONFIG_HOME": str(tmp_path / "xdg")}


class Moneyd:
    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.port, self.admin_port = free_port(), free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moneyd", *args, "--port", str(self.port), "--admin-api-port", str(self.admin_port)],
            env=env_for(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "moneyd ready" not in line:
            self.proc.kill()
            raise AssertionError(f"moneyd did not start: {line}{self.proc.communicate(timeout=10)}")
        self.ready_line = line

    def stop(self) -> tuple[str, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=20)
        return out, err

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=10)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            hdrs = {"Host": f"127.0.0.1:{self.admin_port}", **(headers or {})}
            if body is not None:
                hdrs.setdefault("Content-Length", str(len(body)))
            for k, v in hdrs.items():
                conn.putheader(k, v)
            conn.endheaders()
            if body is not None:
                conn.send(body)
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()
