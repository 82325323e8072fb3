"""`moneyd xrp:configure` and `moneyd xrp:info` as real CLI processes against the XRPL emulator."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from xrpl.wallet import Wallet

from moneyd.btp.parent import btp_token
from tests.support.xrpl_emulator import XrplEmulator

XRP = 1_000_000


def cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    inherited = {k: v for k, v in os.environ.items() if k != "MONEYD_XRP_SECRET"}
    full = {**inherited, "MONEYD_DATA_DIR": str(tmp_path / "data"), "MONEYD_NO_KEYRING": "1",
            "MONEYD_PASSPHRASE": "test passphrase", **(env or {})}
    return subprocess.run([sys.executable, "-m", "moneyd", "-c", str(tmp_path / "moneyd.json"), *args],
                          capture_output=True, text=True, env=full, timeout=120, stdin=subprocess.DEVNULL)


def unboxed(text: str) -> str:
    """An error as typer prints it in a box, as one line of words."""
    return " ".join(re.sub("[│╭╮╰╯─]", " ", text).split())


def test_configure_checks_funds_before_writing_and_keeps_the_secret_out(xrpl_emulator: XrplEmulator,
                                                                       tmp_path: Path) -> None:
    emu = xrpl_emulator
    wallet = Wallet.create()
    secret_file = tmp_path / "secret"
    secret_file.write_text(wallet.seed + "\n")
    args = ("xrp:configure", "--parent", "parent.example:7443", "--xrp-server", emu.url, "--name", "alice",
            "--secret-file", str(secret_file))

    missing = cli(tmp_path, *args)
    assert missing.returncode == 1 and f"the account {wallet.address} does not exist" in missing.stderr
    assert not (tmp_path / "moneyd.json").exists() and not (tmp_path / "data").exists()

    emu.fund(wallet.address, 15 * XRP)  # reserve 10 + 2 per object: not enough for a 10 XRP channel
    poor = cli(tmp_path, *args)
    assert poor.returncode == 1 and "holds 15 XRP; it needs 22.0002 XRP" in poor.stderr, poor.stderr
    assert not (tmp_path / "moneyd.json").exists()

    emu.fund(wallet.address, 20 * XRP)
    ok = cli(tmp_path, *args)
    assert ok.returncode == 0, ok.stderr
    assert "no OS keyring available" in ok.stderr  # the encrypted-file fallback says so
    text = (tmp_path / "moneyd.json").read_text()
    assert wallet.seed not in text
    section = json.loads(text)["xrp"]
    assert section == {"parent": "parent.example:7443", "xrp_server": emu.url, "name": "alice",
                       "address": wallet.address, "channel_amount": 10 * XRP}
    assert wallet.seed not in (tmp_path / "data" / "secrets.enc.json").read_text()
    from moneyd.secrets import SecretStore

    store = SecretStore(file=tmp_path / "data" / "secrets.enc.json", use_keyring=False,
                        passphrase=lambda confirm: "test passphrase")
    assert store.get(f"xrp:{wallet.address}") == wallet.seed

    again = cli(tmp_path, *args)
    assert again.returncode == 1 and "already has an xrp uplink; use --force" in again.stderr


def test_configure_bad_input(xrpl_emulator: XrplEmulator, tmp_path: Path) -> None:
    bad_secret = cli(tmp_path, "xrp:configure", "--parent", "p.example", "--xrp-server", xrpl_emulator.url,
                     env={"MONEYD_XRP_SECRET": "not-a-seed"})
    assert bad_secret.returncode == 1 and "not an XRP secret" in bad_secret.stderr
    no_secret = cli(tmp_path, "xrp:configure", "--parent", "p.example")
    assert no_secret.returncode == 2 and "--secret-file" in no_secret.stderr
    wallet = Wallet.create()
    env = {"MONEYD_XRP_SECRET": wallet.seed}
    bad_server = cli(tmp_path, "xrp:configure", "--parent", "p.example", "--xrp-server", "http://x", env=env)
    assert bad_server.returncode == 2 and "ws:// or wss://" in bad_server.stderr
    for parent, why in (("btp+ws://p.example", "btp+ws:// is unencrypted"), ("user@p.example", "invalid parent"),
                        ("p.example/x y", "invalid parent")):
        refused = cli(tmp_path, "xrp:configure", "--parent", parent, "--xrp-server", xrpl_emulator.url, env=env)
        assert refused.returncode == 2 and why in unboxed(refused.stderr), refused.stderr
    bad_name = cli(tmp_path, "xrp:configure", "--parent", "p.example", "--name", "a.b", env=env)
    assert bad_name.returncode == 2 and "invalid account name" in unboxed(bad_name.stderr), bad_name.stderr
    bad_amount = cli(tmp_path, "xrp:configure", "--parent", "p.example", "--channel-amount", "5ETH", env=env)
    assert bad_amount.returncode == 2 and "the amount is in ETH" in bad_amount.stderr
    from tests.support.jsnode import free_port

    down = cli(tmp_path, "xrp:configure", "--parent", "p.example", "--xrp-server", f"ws://127.0.0.1:{free_port()}",
               env=env)
    assert down.returncode == 1 and "cannot connect to the XRPL server" in down.stderr
    assert "Traceback" not in bad_secret.stderr + down.stderr
    assert not (tmp_path / "moneyd.json").exists()


def test_options_wrong_on_their_face_are_refused_before_anything_slow(tmp_path: Path) -> None:
    # No secret, no terminal, a faucet nobody serves: each mistake is named at once, before the secret is asked
    # for, the testnet faucet is called or xrpl-py is imported (PYTHONPROFILEIMPORTTIME lists every import).
    from tests.support.jsnode import free_port

    faucet = f"http://127.0.0.1:{free_port()}/accounts"
    for args, says in ((("--parent", "user@p.example"), "invalid parent"), (("--name", "a.b"), "invalid account name"),
                       (("--channel-amount", "5ETH"), "the amount is in ETH"), (("--xrp-server", "http://x"), "ws://")):
        out = cli(tmp_path, "--testnet", "xrp:configure", "--faucet", faucet, *args, env={"PYTHONPROFILEIMPORTTIME": "1"})
        assert out.returncode == 2 and says in unboxed(out.stderr), (args, out.stderr[-2000:])
        assert "faucet" not in out.stderr.replace(faucet, "") and "--secret-file" not in out.stderr
        imported = {line.split("|")[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}
        assert len(imported) > 50 and not {m for m in imported if m.split(".")[0] == "xrpl"}, args
    assert not (tmp_path / "moneyd.json").exists()


def test_import_js_moneyd_configs(xrpl_emulator: XrplEmulator, tmp_path: Path) -> None:
    wallet = Wallet.create()
    xrpl_emulator.fund(wallet.address, 100 * XRP)
    v0 = tmp_path / "v0.json"
    v0.write_text(json.dumps({"secret": wallet.seed, "parent": "old.example", "name": "bob",
                              "rippled": xrpl_emulator.url}))
    r = cli(tmp_path, "xrp:configure", "--import-js", str(v0), "--channel-amount", "5XRP")
    assert r.returncode == 0, r.stderr
    section = json.loads((tmp_path / "moneyd.json").read_text())["xrp"]
    assert (section["parent"], section["name"], section["xrp_server"], section["channel_amount"]) == (
        "old.example", "bob", xrpl_emulator.url, 5 * XRP)
    token = btp_token("new.example:443", "carol", wallet.seed)
    v1 = tmp_path / "v1.json"
    v1.write_text(json.dumps({"version": 1, "uplinks": {"xrp": {"options": {
        "server": f"btp+wss://carol:{token}@new.example:443", "secret": wallet.seed, "address": wallet.address,
        "xrpServer": xrpl_emulator.url}}}}))
    r = cli(tmp_path, "xrp:configure", "--import-js", str(v1), "--force")
    assert r.returncode == 0, r.stderr
    section = json.loads((tmp_path / "moneyd.json").read_text())["xrp"]
    assert (section["parent"], section["name"], section["channel_amount"]) == ("new.example:443", "carol", 10 * XRP)
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"version": 1, "uplinks": {}}))
    r = cli(tmp_path, "xrp:configure", "--import-js", str(broken), "--force")
    assert r.returncode == 1 and "has no XRP uplink" in r.stderr


def test_info_shows_balance_reserve_and_channels(xrpl_emulator: XrplEmulator, tmp_path: Path) -> None:
    import asyncio

    from uplinks.xrp.ledger import XrpLedger

    emu = xrpl_emulator
    wallet, parent = Wallet.create(), Wallet.create()
    emu.fund(wallet.address, 100 * XRP)
    emu.fund(parent.address, 50 * XRP)
    r = cli(tmp_path, "xrp:configure", "--parent", "p.example", "--xrp-server", emu.url,
            env={"MONEYD_XRP_SECRET": wallet.seed})
    assert r.returncode == 0, r.stderr

    async def open_channel() -> str:
        async with await XrpLedger.connect(emu.url) as ledger:
            return await ledger.create_channel(wallet, parent.address, 10 * XRP, 3600, wallet.public_key)

    cid = asyncio.run(open_channel())
    r = cli(tmp_path, "xrp:info", "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["address"] == wallet.address and info["exists"]
    assert info["balance"] == 100 * XRP - 10 * XRP - 10  # the channel's 10 XRP and one fee
    assert info["reserve"] == 12 * XRP and info["available"] == info["balance"] - 12 * XRP
    assert info["channels"] == [{"id": cid, "destination": parent.address, "amount": 10 * XRP, "balance": 0,
                                 "remaining": 10 * XRP, "settle_delay": 3600, "expiration": None,
                                 "cancel_after": None}]
    table = cli(tmp_path, "xrp:info", env={"COLUMNS": "200"})
    assert table.returncode == 0 and "available 77.99999 XRP" in table.stdout
    assert cid[:16] in table.stdout and parent.address in table.stdout
    none = cli(tmp_path / "other", "xrp:info")
    # The hint repeats the -c it was given, so it can be pasted as it is.
    assert none.returncode == 1
    assert f"run `moneyd -c {tmp_path / 'other' / 'moneyd.json'} xrp:configure` first" in none.stderr


def test_testnet_without_a_secret_uses_the_faucet(xrpl_emulator: XrplEmulator, tmp_path: Path) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    made: list[Wallet] = []

    class Faucet(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            wallet = Wallet.create()
            made.append(wallet)
            xrpl_emulator.fund(wallet.address, 1000 * XRP)
            body = json.dumps({"account": {"classicAddress": wallet.address, "address": wallet.address},
                               "amount": 1000, "balance": 1000, "seed": wallet.seed}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Faucet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/accounts"
        ok = subprocess.run(
            [sys.executable, "-m", "moneyd", "--testnet", "-c", str(tmp_path / "moneyd.json"), "xrp:configure",
             "--parent", "parent.example", "--xrp-server", xrpl_emulator.url, "--name", "t", "--faucet", url],
            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
            env={**{k: v for k, v in os.environ.items() if k != "MONEYD_XRP_SECRET"},
                 "MONEYD_DATA_DIR": str(tmp_path / "data"), "MONEYD_NO_KEYRING": "1", "MONEYD_PASSPHRASE": "p"})
        assert ok.returncode == 0, ok.stderr
        assert len(made) == 1 and f"the faucet funded a new test account {made[0].address}" in ok.stderr
        assert json.loads((tmp_path / "moneyd.json").read_text())["xrp"]["address"] == made[0].address

        down = cli(tmp_path, "--testnet", "xrp:configure", "--force", "--parent", "p.example", "--xrp-server",
                   xrpl_emulator.url, "--faucet", "http://127.0.0.1:9/accounts")
        assert down.returncode == 1 and "cannot get a test account from the faucet" in down.stderr, down.stderr
    finally:
        server.shutdown()


def test_advanced_asks_for_server_name_and_channel_size_on_a_terminal(xrpl_emulator: XrplEmulator,
                                                                       tmp_path: Path) -> None:
    import pty

    wallet = Wallet.create()
    assert wallet.seed is not None
    xrpl_emulator.fund(wallet.address, 100 * XRP)
    master, slave = pty.openpty()
    env = {**os.environ, "MONEYD_DATA_DIR": str(tmp_path / "data"), "MONEYD_NO_KEYRING": "1",
           "MONEYD_PASSPHRASE": "p", "MONEYD_XRP_SECRET": wallet.seed}
    proc = subprocess.Popen([sys.executable, "-m", "moneyd", "-c", str(tmp_path / "moneyd.json"), "xrp:configure",
                             "--advanced"], stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    # the answers, in the order asked: XRPL server, name, channel size, parent
    os.write(master, f"{xrpl_emulator.url}\nbob\n12XRP\nparent.example:7443\n".encode())
    transcript = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        transcript += chunk
    assert proc.wait(60) == 0, transcript.decode()
    os.close(master)
    text = transcript.decode()
    assert "XRPL server (rippled WebSocket URL)" in text and "Channel size" in text
    section = json.loads((tmp_path / "moneyd.json").read_text())["xrp"]
    assert section == {"parent": "parent.example:7443", "xrp_server": xrpl_emulator.url, "name": "bob",
                       "address": wallet.address, "channel_amount": 12 * XRP}
