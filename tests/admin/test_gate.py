"""Against a real moneyd process: the admin port is bound at start, but aiohttp is loaded only when the first client
connects (moneyd.admin.gate); the clients that came while it loaded are all answered."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.support.jsnode import free_port


def aiohttp_loaded(pid: int) -> bool:
    """Whether the process has mapped one of aiohttp's C extensions (or, if this aiohttp has none, its files)."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return "/aiohttp/" in maps


def get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers={"Host": f"127.0.0.1:{port}"})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def test_admin_http_server_is_loaded_by_its_first_client(tmp_path: Path) -> None:
    port, admin_port = free_port(), free_port()
    data = tmp_path / "data"
    env = {**os.environ, "MONEYD_DATA_DIR": str(data), "MONEYD_CONFIG": str(tmp_path / "moneyd.json"),
           "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    proc = subprocess.Popen([sys.executable, "-m", "moneyd", "local", "--port", str(port), "--admin-api-port",
                             str(admin_port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "moneyd ready" in line, line
        # Bound, published and with its token, but nothing of aiohttp in memory yet.
        with socket.create_connection(("127.0.0.1", admin_port), timeout=5):
            pass
        assert (data / "admin-token").is_file()
        published = json.loads((data / "moneyd.admin.json").read_text())
        assert published["admin_port"] == admin_port and published["pid"] == proc.pid
        # The probe connection above was the first client: it started the load. Clients arriving meanwhile wait in
        # the backlog and are all answered.
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: get(admin_port, "/status"), range(8)))
        assert all(status == 200 for status, _ in answers), answers
        assert all("localRoutingTable" in json.loads(body) for _, body in answers)
        assert aiohttp_loaded(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert not (data / "moneyd.admin.json").exists()


def test_no_client_no_aiohttp(tmp_path: Path) -> None:
    port, admin_port = free_port(), free_port()
    env = {**os.environ, "MONEYD_DATA_DIR": str(tmp_path / "data"), "MONEYD_CONFIG": str(tmp_path / "moneyd.json"),
           "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    proc = subprocess.Popen([sys.executable, "-m", "moneyd", "local", "--port", str(port), "--admin-api-port",
                             str(admin_port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert "moneyd ready" in proc.stdout.readline()
        assert not aiohttp_loaded(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
