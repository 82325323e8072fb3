"""`moneyd eth:configure | eth:start | eth:info | eth:topup | eth:cleanup` as real CLI processes, on ganache with the
Unidirectional contract and (for start/topup/cleanup) the JS ilp-plugin-ethereum parent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from eth_account import Account

from moneyd.secrets import SecretStore
from tests.support.app_pair import pays_sync
from tests.support.eth_setup import PARENT, PARENT_CHANNEL_GWEI
from tests.support.ethfixture import Ganache
from tests.support.jsnode import NodeRunner, free_port
from uplinks.eth.uplink import NAMESPACE

ETH = 10**18
GWEI = 10**9
FUNDER = 6  # a ganache account that funds the fresh keys of these tests


def cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    inherited = {k: v for k, v in os.environ.items() if k != "MONEYD_ETH_PRIVATE_KEY"}
    full = {**inherited, "MONEYD_DATA_DIR": str(tmp_path / "data"), "MONEYD_NO_KEYRING": "1",
            "MONEYD_PASSPHRASE": "test passphrase", "COLUMNS": "400", **(env or {})}
    return subprocess.run([sys.executable, "-m", "moneyd", "-c", str(tmp_path / "moneyd.json"), *args],
                          capture_output=True, text=True, env=full, timeout=timeout, stdin=subprocess.DEVNULL)


def fund(ganache: Ganache, address: str, wei: int) -> None:
    ganache.rpc("eth_sendTransaction", {"from": ganache.addresses[FUNDER], "to": address, "value": hex(wei)})


def fresh_key(tmp_path: Path) -> tuple[str, str, Path]:
    acct = Account.create()
    key = "0x" + bytes(acct.key).hex()
    path = tmp_path / "key"
    path.write_text(key + "\n")
    return key, acct.address, path


def test_configure_checks_funds_before_writing_and_keeps_the_key_out(ganache: Ganache, tmp_path: Path) -> None:
    key, address, key_file = fresh_key(tmp_path)
    args = ("eth:configure", "--parent", "parent.example:7443", "--provider", ganache.url, "--contract",
            ganache.contract_address, "--name", "bob", "--key-file", str(key_file), "--channel-amount", "0.1ETH")

    empty = cli(tmp_path, *args)
    assert empty.returncode == 1, empty.stderr
    assert f"the account {address} holds 0 ETH; a channel of 0.1 ETH needs more" in empty.stderr
    assert not (tmp_path / "moneyd.json").exists() and not (tmp_path / "data").exists()

    fund(ganache, address, ETH // 10)  # the channel, but not the fees
    poor = cli(tmp_path, *args)
    assert poor.returncode == 1 and "holds 0.1 ETH; it needs 0.1" in poor.stderr and "fees" in poor.stderr, poor.stderr
    assert not (tmp_path / "moneyd.json").exists()

    fund(ganache, address, ETH // 10)
    ok = cli(tmp_path, *args)
    assert ok.returncode == 0, ok.stderr
    assert "no OS keyring available" in ok.stderr  # the encrypted-file fallback says so
    assert f"account {address} on chain 1337: 0.2 ETH" in ok.stdout
    text = (tmp_path / "moneyd.json").read_text()
    assert key[2:] not in text.lower()
    assert json.loads(text)["eth"] == {
        "parent": "parent.example:7443", "provider": ganache.url, "contract": ganache.contract_address,
        "chain_id": 1337, "name": "bob", "address": address, "channel_amount": ETH // 10,
    }
    assert key[2:] not in (tmp_path / "data" / "secrets.enc.json").read_text().lower()
    store = SecretStore(file=tmp_path / "data" / "secrets.enc.json", use_keyring=False,
                        passphrase=lambda confirm: "test passphrase")
    assert store.get(f"eth:{address}") == key

    again = cli(tmp_path, *args)
    assert again.returncode == 1 and "already has an eth uplink; use --force" in again.stderr

    # The key from the environment, without 0x; gwei amounts; replaces with --force.
    env = {"MONEYD_ETH_PRIVATE_KEY": key[2:]}
    forced = cli(tmp_path, "eth:configure", "--parent", "parent.example", "--provider", ganache.url, "--contract",
                 ganache.contract_address.lower(), "--name", "bob2", "--channel-amount", "1000000", "--force", env=env)
    assert forced.returncode == 0, forced.stderr
    section = json.loads((tmp_path / "moneyd.json").read_text())["eth"]
    assert section["channel_amount"] == 10**6 * GWEI and section["contract"] == ganache.contract_address


def test_options_wrong_on_their_face_are_refused_before_the_ethereum_libraries_load(tmp_path: Path) -> None:
    # No key, no terminal: each mistake is named before the key is asked for and before web3 or eth-account are
    # imported (PYTHONPROFILEIMPORTTIME lists every import).
    for args, says in ((("--parent", "user@p.example"), "invalid parent"), (("--name", "a.b"), "invalid account name"),
                       (("--channel-amount", "5XRP"), "is in XRP"), (("--provider", "ws://x"), "http:// or https://")):
        out = cli(tmp_path, "eth:configure", "--parent", "p.example", *args, env={"PYTHONPROFILEIMPORTTIME": "1"})
        assert out.returncode == 2 and says in out.stderr, (args, out.stderr[-2000:])
        assert "--key-file" not in out.stderr
        imported = {line.split("|")[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}
        assert len(imported) > 50 and not {m for m in imported if m.split(".")[0] in ("web3", "eth_account")}, args


def test_configure_bad_input(ganache: Ganache, tmp_path: Path) -> None:
    _, _, key_file = fresh_key(tmp_path)
    base = ("--provider", ganache.url, "--contract", ganache.contract_address, "--key-file", str(key_file))
    no_key = cli(tmp_path, "eth:configure", "--parent", "p.example", "--provider", ganache.url)
    assert no_key.returncode == 2 and "--key-file" in no_key.stderr
    no_parent = cli(tmp_path, "eth:configure", *base)
    assert no_parent.returncode == 2 and "--parent" in no_parent.stderr
    bad_key = cli(tmp_path, "eth:configure", "--parent", "p.example", "--provider", ganache.url,
                  env={"MONEYD_ETH_PRIVATE_KEY": "0x1234"})
    assert bad_key.returncode == 1 and "not an Ethereum private key" in bad_key.stderr
    for parent, says in [("https://p.example", "btp+wss://"), ("btp+ws://p.example:9", "unencrypted"),
                         ("btp+wss://me:tok@p.example", "host only"), ("p ex", "invalid parent")]:
        out = cli(tmp_path, "eth:configure", "--parent", parent, *base)
        assert out.returncode == 2 and says in out.stderr, (parent, out.stderr)
    bad_name = cli(tmp_path, "eth:configure", "--parent", "p.example", "--name", "a.b", *base)
    assert bad_name.returncode == 2 and "invalid account name" in bad_name.stderr
    bad_provider = cli(tmp_path, "eth:configure", "--parent", "p.example", "--provider", "ws://x", "--key-file", str(key_file))
    assert bad_provider.returncode == 2 and "http:// or https://" in bad_provider.stderr
    for amount, says in [("5XRP", "is in XRP (ETH, gwei or wei"), ("0.5gwei", "more decimals"), ("0", "more than 0"), ("1.5", "not an amount")]:
        out = cli(tmp_path, "eth:configure", "--parent", "p.example", "--channel-amount", amount, *base)
        assert out.returncode == 2 and "--channel-amount" in out.stderr and says in out.stderr, (amount, out.stderr)
    bad_contract = cli(tmp_path, "eth:configure", "--parent", "p.example", "--provider", ganache.url,
                       "--contract", "0x1234", "--key-file", str(key_file))
    assert bad_contract.returncode == 2 and "20-byte hex address" in bad_contract.stderr
    no_contract = cli(tmp_path, "eth:configure", "--parent", "p.example", "--provider", ganache.url, "--key-file", str(key_file))
    assert no_contract.returncode == 1 and "knows no Unidirectional contract on chain 1337: pass --contract" in no_contract.stderr
    not_a_contract = cli(tmp_path, "eth:configure", "--parent", "p.example", "--provider", ganache.url,
                         "--contract", ganache.addresses[1], "--key-file", str(key_file))
    assert not_a_contract.returncode == 1 and "no contract is deployed" in not_a_contract.stderr
    down = cli(tmp_path, "eth:configure", "--parent", "p.example", "--provider", f"http://127.0.0.1:{free_port()}",
               "--contract", ganache.contract_address, "--key-file", str(key_file))
    assert down.returncode == 1 and "cannot reach the Ethereum node" in down.stderr
    assert not (tmp_path / "moneyd.json").exists()
    # Commands that need a configuration say so.
    for cmd in ("eth:start", "eth:info", "eth:cleanup"):
        out = cli(tmp_path, cmd)
        assert out.returncode == 1 and "no eth uplink" in out.stderr and "eth:configure" in out.stderr, out.stderr
    out = cli(tmp_path, "eth:topup", "--amount", "0.1ETH")
    assert out.returncode == 1 and "no eth uplink" in out.stderr


def test_start_info_topup_cleanup_with_the_js_parent(node: NodeRunner, ganache: Ganache, tmp_path: Path) -> None:
    _, address, key_file = fresh_key(tmp_path)
    fund(ganache, address, ETH)
    eport, aport = free_port(), free_port()
    parent = node.start("eth-parent-connector.js", str(eport), str(aport), "test.parent", env={
        "ETH_URL": ganache.url, "ETH_CONTRACT": ganache.contract_address, "ETH_KEY": ganache.keys[PARENT],
        "ETH_OUT_GWEI": str(PARENT_CHANNEL_GWEI)}, stream_fix=False)
    parent.event_sync("ready", timeout=60)
    configured = cli(tmp_path, "eth:configure", "--parent", f"btp+ws://127.0.0.1:{eport}", "--provider", ganache.url,
                     "--contract", ganache.contract_address, "--name", "carol", "--key-file", str(key_file),
                     "--channel-amount", "0.1ETH")
    assert configured.returncode == 0, configured.stderr

    info = cli(tmp_path, "eth:info", "--json")
    assert info.returncode == 0, info.stderr
    report = json.loads(info.stdout)
    assert report["address"] == address and report["balance"] == str(ETH) and report["ours"] is None
    plain = cli(tmp_path, "eth:info")
    assert "our channel    none yet" in plain.stdout and "balance   1 ETH" in plain.stdout

    port = free_port()
    env = {**os.environ, "MONEYD_DATA_DIR": str(tmp_path / "data"), "MONEYD_NO_KEYRING": "1",
           "MONEYD_PASSPHRASE": "test passphrase"}
    proc = subprocess.Popen([sys.executable, "-m", "moneyd", "-c", str(tmp_path / "moneyd.json"), "eth:start", "--port",
                             str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("moneyd ready: ILP address test.parent.eth.carol (ETH, scale 9)"), (line, proc.stderr.read() if proc.stderr and proc.poll() is not None else "")
        pays_sync(node, f"btp+ws://:a@127.0.0.1:{port}", f"btp+ws://:b@127.0.0.1:{aport}", 1_000_000)
        pays_sync(node, f"btp+ws://:b2@127.0.0.1:{aport}", f"btp+ws://:a2@127.0.0.1:{port}", 3_000_000)
        # Wait for the parent's claim to be stored (the parent sends it after the Fulfill).
        import time

        from moneyd.store import Store

        deadline = time.monotonic() + 20
        while True:
            store = Store(tmp_path / "data" / "moneyd.sqlite")
            states = store.items(NAMESPACE)
            store.close()
            (state,) = states.values()
            best = state["book"]["bestIncoming"]
            if best is not None and best["value"] == str(3_000_000 * GWEI):
                break
            assert time.monotonic() < deadline, state
            time.sleep(0.2)
    finally:
        proc.send_signal(2)
        proc.wait(30)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""

    report = json.loads(cli(tmp_path, "eth:info", "--json").stdout)
    ours, theirs = report["ours"], report["theirs"]
    assert report["parent_address"] == ganache.addresses[PARENT]
    assert ours["value"] == str(ETH // 10) and ours["spent"] == str(10**6 * GWEI) and not ours["settling"]
    assert ours["remaining"] == str(ETH // 10 - 10**6 * GWEI) and ours["receiver"] == ganache.addresses[PARENT]
    assert theirs["value"] == str(PARENT_CHANNEL_GWEI * GWEI) and theirs["claimable"] == str(3_000_000 * GWEI)
    text = cli(tmp_path, "eth:info").stdout
    assert "promised to the parent 0.001 ETH" in text and "claimable 0.003 ETH" in text

    topped = cli(tmp_path, "eth:topup", "--amount", "50000000")  # plain: gwei
    assert topped.returncode == 0, topped.stderr
    assert "amount: 0.05 ETH (= 50000000 gwei)" in topped.stdout and "the channel holds 0.15 ETH" in topped.stdout
    assert json.loads(cli(tmp_path, "eth:info", "--json").stdout)["ours"]["value"] == str(15 * ETH // 100)
    too_much = cli(tmp_path, "eth:topup", "--amount", "100ETH")
    assert too_much.returncode == 1 and "not enough to deposit 100 ETH" in too_much.stderr

    before = ganache.balance(address)
    block0 = ganache.block_number()
    cleaned = cli(tmp_path, "eth:cleanup")
    assert cleaned.returncode == 0, cleaned.stderr
    progress = cleaned.stdout
    assert "claiming 0.003 ETH from the parent's channel" in progress and "claimed in block" in progress
    assert "asking the parent" in progress and "is closed: what the parent did not claim is back" in progress
    from tests.support.eth_setup import fees_paid

    fees = fees_paid(ganache, address, block0)
    assert ganache.balance(address) == before - fees + 3_000_000 * GWEI + 15 * ETH // 100 - 10**6 * GWEI
    report = json.loads(cli(tmp_path, "eth:info", "--json").stdout)
    assert report["ours"] is None and report["theirs"] is None
    again = cli(tmp_path, "eth:cleanup")
    assert again.returncode == 0 and "nothing to claim" in again.stdout and "no channel of ours" in again.stdout
