"""Against a real moneyd process: the admin server's refusals, ``moneyd status`` in each state, logging options and
``moneyd service``'s unit files."""

from __future__ import annotations

import json
import plistlib
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from moneyd.commands import service
from moneyd.localapp import LocalApp, LocalAppError
from tests.support.jsnode import NodeRunner, free_port
from tests.support.moneyd_process import Moneyd, env_for


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "moneyd", *args], capture_output=True, text=True,
                          env=env_for(tmp_path), timeout=60)


@pytest.fixture
def moneyd_local(tmp_path: Path) -> Iterator[Moneyd]:
    m = Moneyd(tmp_path, "local")
    try:
        yield m
    finally:
        m.stop()


def error_of(status: int, headers: dict[str, str], body: bytes) -> str:
    assert headers["content-type"].startswith("application/json"), (status, headers, body)
    doc = json.loads(body)
    assert doc["error"]["status"] == status
    assert "Traceback" not in body.decode()
    return str(doc["error"]["message"])


# -- refusals ---------------------------------------------------------------------------------------------------


def test_reads_are_open_on_loopback(moneyd_local: Moneyd) -> None:
    status, _headers, body = moneyd_local.request("GET", "/status")
    assert status == 200 and json.loads(body)["localRoutingTable"]["private.moneyd"] == {"nextHop": "", "path": ""}
    for host in ("localhost", f"localhost:{moneyd_local.admin_port}", f"[::1]:{moneyd_local.admin_port}"):
        assert moneyd_local.request("GET", "/balance", headers={"Host": host})[0] == 200, host
    own = f"http://127.0.0.1:{moneyd_local.admin_port}"
    assert moneyd_local.request("GET", "/accounts", headers={"Origin": own})[0] == 200


@pytest.mark.parametrize("host", ["evil.example", "127.0.0.1.evil.example", "localhost.evil.example:{port}",
                                  "127.0.0.1:1", "", "10.0.0.1:{port}"])
def test_a_foreign_host_is_refused(moneyd_local: Moneyd, host: str) -> None:
    status, headers, body = moneyd_local.request("GET", "/status", headers={"Host": host.format(port=moneyd_local.admin_port)})
    assert status == 403
    assert "DNS rebinding" in error_of(status, headers, body)


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://127.0.0.1:1", "https://localhost.evil.example",
                                    "http://localhost", "http://127.0.0.1"])
def test_a_foreign_origin_is_refused(moneyd_local: Moneyd, origin: str) -> None:
    for method, path in (("GET", "/status"), ("POST", "/balance")):
        status, headers, body = moneyd_local.request(method, path, b"{}", {"Origin": origin})
        assert status == 403, (method, origin)
        assert "origin" in error_of(status, headers, body)


def test_a_write_needs_the_token(moneyd_local: Moneyd, tmp_path: Path) -> None:
    body = json.dumps({"accountId": "x", "amountDiff": "5"}).encode()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "}):
        status, h, out = moneyd_local.request("POST", "/balance", body, headers)
        assert status == 401, headers
        assert "token" in error_of(status, h, out)
    for method, path in (("DELETE", "/alerts/1"), ("POST", "/accounts/x"), ("POST", "/pay"), ("POST", "/receive")):
        assert moneyd_local.request(method, path, b"{}")[0] == 401, path
    token_file = tmp_path / "data" / "admin-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    shown = cli(tmp_path, "status", "--token")
    assert shown.returncode == 0 and shown.stdout.strip() == token_file.read_text().strip()
    status, _, _ = moneyd_local.request("DELETE", "/alerts/1", headers={"Authorization": f"Bearer {shown.stdout.strip()}"})
    assert status == 204


def test_bad_requests_get_a_json_error(moneyd_local: Moneyd, tmp_path: Path) -> None:
    auth = {"Authorization": f"Bearer {(tmp_path / 'data' / 'admin-token').read_text().strip()}",
            "Content-Type": "application/json"}
    cases: list[tuple[str, str, bytes | None, int, str]] = [
        ("POST", "/balance", b"{bad json", 400, "not valid JSON"),
        ("POST", "/balance", b"\xff\xfe", 400, "not valid JSON"),
        ("POST", "/balance", b"", 400, "JSON body is required"),
        ("POST", "/balance", b'{"accountId": "x", "amountDiff": "1e9"}', 400, "invalid balance update"),
        ("POST", "/balance", b'{"accountId": "nobody", "amountDiff": "1"}', 404, "account does not exist"),
        ("POST", "/balance", b"x" * (64 * 1024), 413, "too large"),
        ("POST", "/pay", b'{"receiver": "ftp://x", "amount": "1"}', 400, "payment pointer"),
        ("POST", "/pay", b'{"receiver": "$example.com", "amount": "-1"}', 400, ""),
        ("GET", "/accounts/..%2F", None, 400, "invalid account"),
        ("GET", "/accounts/nobody", None, 404, "does not exist"),
        ("DELETE", "/alerts/abc", None, 400, "invalid alert id"),
        ("GET", "/no/such/thing", None, 404, "Not Found"),
        ("PUT", "/status", b"{}", 405, ""),
    ]
    for method, path, body, want, text in cases:
        status, headers, out = moneyd_local.request(method, path, body, auth)
        assert status == want, (method, path, status, out[:200])
        assert text in error_of(status, headers, out), (path, out[:200])
    # moneyd is still fine afterwards, and said nothing alarming.
    assert moneyd_local.request("GET", "/status")[0] == 200
    _, err = moneyd_local.stop()
    assert "Traceback" not in err


def test_a_huge_body_is_refused_without_reading_it(moneyd_local: Moneyd, tmp_path: Path) -> None:
    token = (tmp_path / "data" / "admin-token").read_text().strip()
    # Announce 1 GB and send only the start: the answer comes at once, moneyd does not wait for (or buffer) the rest.
    status, headers, body = moneyd_local.request("POST", "/balance", b"{" * 1024,
                                                 {"Authorization": f"Bearer {token}", "Content-Length": str(1 << 30)})
    assert status == 413 and "too large" in error_of(status, headers, body)


# -- moneyd status ------------------------------------------------------------------------------------------------


async def test_an_app_cannot_take_the_uplinks_account_name(moneyd_local: Moneyd, tmp_path: Path) -> None:
    # "uplink" names the uplink's account in the router and the admin API: an app under that name is refused at
    # auth with a clear error, and the router goes on serving the others.
    with pytest.raises(LocalAppError) as refused:
        await LocalApp.connect(f"btp+ws://uplink:tok@127.0.0.1:{moneyd_local.port}")
    assert "account name 'uplink' is reserved for moneyd's parent connector: connect under another name" in str(refused.value)
    app = await LocalApp.connect(f"btp+ws://app1:tok@127.0.0.1:{moneyd_local.port}")
    try:
        assert app.address == "private.moneyd.local.app1"
        for path in ("/accounts", "/balance"):
            status, _h, body = moneyd_local.request("GET", path)
            assert status == 200 and set(json.loads(body)["accounts"]) == {"app1"}, (path, body)
        code, doc = status_json(tmp_path)
        assert code == 0 and [a["id"] for a in doc["status"]["accounts"]] == ["app1"]
    finally:
        await app.close()
    _out, err = moneyd_local.stop()
    assert moneyd_local.proc.returncode == 0
    assert "Traceback" not in err
    assert "refused: account name 'uplink' is reserved" in err


def status_json(tmp_path: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    out = cli(tmp_path, "status", "--json", *extra)
    return out.returncode, json.loads(out.stdout)


def test_status_when_no_moneyd_runs(tmp_path: Path) -> None:
    port = free_port()
    out = cli(tmp_path, "status", "--admin-api-port", str(port))
    assert out.returncode == 1 and "not running" in out.stdout
    code, doc = status_json(tmp_path, "--admin-api-port", str(port))
    assert code == 1 and doc["running"] is False and doc["status"] is None


def test_status_of_moneyd_local(tmp_path: Path, node: NodeRunner) -> None:
    m = Moneyd(tmp_path, "local")
    try:
        apps = node.start("app-pair.js", f"btp+ws://:st-a@127.0.0.1:{m.port}", f"btp+ws://:st-b@127.0.0.1:{m.port}")
        await_ready = apps.event_sync("ready", timeout=30)
        apps.send({"cmd": "ping", "amount": 250})
        assert apps.event_sync("ping")["ok"] is True
        # Found through the file the running moneyd wrote in the data directory: no port given.
        out = cli(tmp_path, "status")
        assert out.returncode == 0, out
        assert f"dashboard http://127.0.0.1:{m.admin_port}/" in out.stdout
        assert "uplink: none (moneyd local)" in out.stdout
        assert "address: private.moneyd (XRP, scale 9)" in out.stdout
        assert "apps connected: 2" in out.stdout
        code, doc = status_json(tmp_path)
        assert code == 0 and doc["status"]["healthy"] is True
        balances = {a["id"]: a["balance"] for a in doc["status"]["accounts"]}
        a_id = await_ready["a"]["clientAddress"].rsplit(".", 1)[1]
        assert balances[a_id] == "250"
    finally:
        m.stop()
    assert not (tmp_path / "data" / "moneyd.admin.json").exists()
    assert cli(tmp_path, "status").returncode == 1


def test_status_is_of_this_data_directorys_moneyd(tmp_path: Path) -> None:
    # Another moneyd (another data directory: a second user, a benchmark) answers on the admin port this data
    # directory's config names, and ours is not running: that is "not running", not the other one's status.
    (tmp_path / "other").mkdir()
    (tmp_path / "mine").mkdir()
    other = Moneyd(tmp_path / "other", "local")
    try:
        (tmp_path / "mine" / "moneyd.json").write_text(json.dumps({"admin_api_port": other.admin_port}))
        out = cli(tmp_path / "mine", "status")
        assert out.returncode == 1, out
        assert f"the moneyd on 127.0.0.1:{other.admin_port} serves {(tmp_path / 'other' / 'data').resolve()}" in out.stdout
        code, doc = status_json(tmp_path / "mine")
        assert code == 1 and doc["running"] is False and doc["status"] is None, doc
        # Asked for that port by name: its status, whoever it belongs to.
        assert cli(tmp_path / "mine", "status", "--admin-api-port", str(other.admin_port)).returncode == 0
        assert cli(tmp_path / "other", "status").returncode == 0
    finally:
        other.stop()


def test_status_with_the_btp_uplink_up_then_down(tmp_path: Path, node: NodeRunner) -> None:
    pport = free_port()
    parent = node.start("parent-connector.js", str(pport), "test.parent")
    parent.event_sync("ready", timeout=30)
    assert cli(tmp_path, "btp:configure", "--parent", f"btp+ws://:st-uplink@127.0.0.1:{pport}").returncode == 0
    m = Moneyd(tmp_path, "btp:start")
    try:
        code, doc = status_json(tmp_path)
        assert code == 0, doc
        up = doc["status"]["uplink"]
        assert up["type"] == "btp" and up["connected"] is True and doc["status"]["address"].startswith("test.parent.child.")
        out = cli(tmp_path, "status")
        assert out.returncode == 0 and "uplink: btp, connected since" in out.stdout
        parent.stop()
        # The uplink notices the parent is gone (its reader ends at once) and reconnects with backoff meanwhile.
        deadline = time.monotonic() + 20
        while (code := cli(tmp_path, "status").returncode) == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert code == 2
        out = cli(tmp_path, "status")
        assert out.returncode == 2 and "uplink: btp, DOWN" in out.stdout
    finally:
        m.stop()


# -- logging --------------------------------------------------------------------------------------------------


def test_log_format_json_and_no_library_lines(tmp_path: Path) -> None:
    m = Moneyd(tmp_path, "local", "--log-format", "json", "--log-level", "info")
    # A refused browser connection makes websockets log; only moneyd's own line should show, in JSON.
    import socket

    with socket.create_connection(("127.0.0.1", m.port)) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                  b"Origin: http://evil.example\r\n\r\n")
        assert b"403" in s.recv(4096)
    # A browser (or a port scanner) that does not speak WebSocket: websockets would log a traceback for it.
    with socket.create_connection(("127.0.0.1", m.port)) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert b"WebSocket" in s.recv(4096)
    _, err = m.stop()
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines, err
    docs = [json.loads(line) for line in lines]  # every line is JSON
    assert any("evil.example" in d["message"] and d["logger"] == "moneyd.server" for d in docs), docs
    assert all(d["logger"].startswith("moneyd") for d in docs), docs
    assert "Traceback" not in err and "opening handshake failed" not in err, err  # websockets' own line


def test_bad_log_options_are_clear_errors(tmp_path: Path) -> None:
    out = cli(tmp_path, "local", "--log-format", "xml")
    assert out.returncode == 2 and "--log-format" in out.stderr


def test_an_admin_port_in_use_is_an_error_when_asked_for(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "moneyd", "local", "--port", str(free_port()), "--admin-api-port",
                              str(busy)], capture_output=True, text=True, env=env_for(tmp_path), timeout=60)
    assert out.returncode == 1 and f"cannot serve the admin API on 127.0.0.1:{busy}" in out.stderr


# -- moneyd service ------------------------------------------------------------------------------------------------


def test_service_install_writes_a_unit_systemd_accepts(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: tests/run.sh installs Debian's systemd package"
    out = cli(tmp_path, "service", "install", "--uplink", "btp", "--no-start")
    assert out.returncode == 0, out.stderr
    unit = tmp_path / "xdg" / "systemd" / "user" / "moneyd.service"
    text = unit.read_text()
    assert "Restart=on-failure" in text
    assert f"--config {tmp_path / 'moneyd.json'} btp:start --log-format json" in text
    assert f"Environment=MONEYD_DATA_DIR={tmp_path / 'data'}" in text
    check = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    # The check can fail: a unit whose program is not an absolute path is refused.
    broken = tmp_path / "broken.service"
    broken.write_text(text.replace(f"ExecStart={sys.executable}", "ExecStart=no/such/python"))
    assert subprocess.run([analyze, "verify", str(broken)], capture_output=True, timeout=60).returncode != 0
    again = cli(tmp_path, "service", "install", "--no-start")
    assert again.returncode == 1 and "--force" in again.stderr
    st = cli(tmp_path, "service", "status")
    assert st.returncode == 0 and str(unit) in st.stdout
    assert cli(tmp_path, "service", "install", "--uplink", "nope", "--no-start").returncode == 2
    gone = cli(tmp_path, "service", "uninstall")
    assert gone.returncode == 0 and not unit.exists()
    assert cli(tmp_path, "service", "status").returncode == 1


def test_launchd_agent_restarts_on_failure(tmp_path: Path) -> None:
    args = service.command_line(tmp_path / "moneyd.json", False, "xrp")
    doc = plistlib.loads(service.render_launchd(args, {"MONEYD_DATA_DIR": "/d"}, False))
    assert doc["ProgramArguments"][-3:] == ["xrp:start", "--log-format", "json"]
    assert doc["KeepAlive"] == {"SuccessfulExit": False} and doc["RunAtLoad"] is True
    assert doc["EnvironmentVariables"] == {"MONEYD_DATA_DIR": "/d"}


def test_unit_quoting_survives_spaces_and_percent(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze
    args = [sys.executable, "-m", "moneyd", "--config", "/tmp/my dir/100%.json", "local"]
    unit = tmp_path / "q.service"
    unit.write_text(service.render_systemd(args, {"MONEYD_DATA_DIR": "/tmp/a b"}, None))
    assert '"/tmp/my dir/100%%.json"' in unit.read_text()
    assert subprocess.run([analyze, "verify", str(unit)], capture_output=True, timeout=60).returncode == 0
