"""Secrets: the encrypted-file fallback and the keyring path (with an in-process keyring backend)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend

from moneyd.secrets import SecretError, SecretStore


def _store(tmp_path: Path, passphrase: str = "correct horse", warnings: list[str] | None = None) -> SecretStore:
    sink = warnings if warnings is not None else []
    return SecretStore(file=tmp_path / "s.json", use_keyring=False, passphrase=lambda confirm: passphrase, warn=sink.append)


def test_file_fallback_round_trip_and_privacy(tmp_path: Path) -> None:
    warnings: list[str] = []
    s = _store(tmp_path, warnings=warnings)
    s.set("xrp:alice", "sEdSecretValue")
    assert warnings and "no OS keyring" in warnings[0]
    raw = (tmp_path / "s.json").read_text()
    assert "sEdSecretValue" not in raw
    assert stat.S_IMODE((tmp_path / "s.json").stat().st_mode) == 0o600
    assert _store(tmp_path).get("xrp:alice") == "sEdSecretValue"
    assert _store(tmp_path).get("eth:bob") is None


def test_wrong_passphrase_is_a_clear_error(tmp_path: Path) -> None:
    _store(tmp_path).set("xrp:alice", "s1")
    with pytest.raises(SecretError, match="wrong passphrase"):
        _store(tmp_path, passphrase="nope").get("xrp:alice")


def test_tampered_file_is_refused(tmp_path: Path) -> None:
    _store(tmp_path).set("xrp:alice", "s1")
    data = json.loads((tmp_path / "s.json").read_text())
    data["xrp:alice"]["data"] = data["xrp:alice"]["data"][:-4] + "AAA="
    (tmp_path / "s.json").write_text(json.dumps(data))
    with pytest.raises(SecretError):
        _store(tmp_path).get("xrp:alice")
    (tmp_path / "s.json").write_text("[1, 2]")
    with pytest.raises(SecretError, match="not a moneyd secret file"):
        _store(tmp_path).get("xrp:alice")


def test_delete_and_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = _store(tmp_path)
    s.set("a", "1")
    s.set("b", "2")
    assert s.delete("a") and not s.delete("a")
    assert _store(tmp_path).get("b") == "2"
    monkeypatch.setenv("MONEYD_TEST_SECRET", "from-env")
    assert s.get("b", env="MONEYD_TEST_SECRET") == "from-env"


def test_no_passphrase_without_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MONEYD_PASSPHRASE", raising=False)
    s = SecretStore(file=tmp_path / "s.json", use_keyring=False, warn=lambda m: None)
    with pytest.raises(SecretError, match="MONEYD_PASSPHRASE"):
        s.set("x", "y")
    assert not (tmp_path / "s.json").exists()


class MemoryKeyring(KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        from keyring.errors import PasswordDeleteError

        if (service, username) not in self.items:
            raise PasswordDeleteError(username)
        del self.items[(service, username)]


def test_keyring_backend_is_used_when_present(tmp_path: Path) -> None:
    previous = keyring.get_keyring()
    mem = MemoryKeyring()
    keyring.set_keyring(mem)
    try:
        s = SecretStore(file=tmp_path / "s.json", testnet=True)
        assert s.use_keyring and s.where == "the OS keyring"
        s.set("xrp:alice", "secret")
        assert mem.items == {("moneyd", "testnet:xrp:alice"): "secret"}
        assert s.get("xrp:alice") == "secret"
        assert s.delete("xrp:alice") and not s.delete("xrp:alice")
        assert not (tmp_path / "s.json").exists()
    finally:
        keyring.set_keyring(previous)
