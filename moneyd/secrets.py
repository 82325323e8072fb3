"""Where moneyd keeps uplink secrets (an XRP secret, an Ethereum private key): never in the config file.

The OS keyring (macOS Keychain, Windows Credential Locker, the Secret Service on Linux desktops) is the home.
Headless machines often have no keyring backend; there the secret goes to an encrypted file in the data
directory (scrypt-derived key from a passphrase, AES-256-GCM), and moneyd says so once. The passphrase comes from
``MONEYD_PASSPHRASE`` or a prompt. An environment variable named by the uplink (``MONEYD_XRP_SECRET`` …) always
wins over both, for servers that inject secrets.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import platformdirs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

SERVICE = "moneyd"
PASSPHRASE_ENV = "MONEYD_PASSPHRASE"
_SCRYPT_N = 2**15


class SecretError(Exception):
    """A secret cannot be read or written; the message says why and what to do."""


def _keyring_usable() -> bool:
    """True when a real keyring backend exists (not keyring's 'fail' or 'null' placeholders)."""
    if os.environ.get("MONEYD_NO_KEYRING"):
        return False
    try:
        import keyring
        from keyring.backends import fail
    except Exception:
        return False
    kr = keyring.get_keyring()
    if isinstance(kr, fail.Keyring):
        return False
    return "null" not in type(kr).__module__ and getattr(kr, "priority", 1) > 0


def _default_file(testnet: bool) -> Path:
    base = os.environ.get("MONEYD_DATA_DIR") or platformdirs.user_data_dir("moneyd", appauthor=False)
    return Path(base) / ("secrets-test.enc.json" if testnet else "secrets.enc.json")


def _ask_passphrase(confirm: bool) -> str:
    value = os.environ.get(PASSPHRASE_ENV)
    if value:
        return value
    if not sys.stdin.isatty():
        raise SecretError(
            f"no OS keyring here, and no passphrase for moneyd's encrypted secret file: set {PASSPHRASE_ENV} "
            "or run this on a terminal"
        )
    import getpass

    first = getpass.getpass("Passphrase for moneyd's secret file: ")
    if confirm and getpass.getpass("Again: ") != first:
        raise SecretError("the passphrases differ")
    if not first:
        raise SecretError("an empty passphrase protects nothing")
    return first


class SecretStore:
    """Named secrets (``xrp:<name>`` …) in the keyring, or in the encrypted file where there is no keyring."""

    def __init__(
        self,
        *,
        testnet: bool = False,
        file: Path | None = None,
        use_keyring: bool | None = None,
        passphrase: Callable[[bool], str] = _ask_passphrase,
        warn: Callable[[str], None] = lambda m: print(f"moneyd: warning: {m}", file=sys.stderr),
    ) -> None:
        self.testnet = testnet
        self.file = file or _default_file(testnet)
        self.use_keyring = _keyring_usable() if use_keyring is None else use_keyring
        self._passphrase = passphrase
        self._warn = warn
        self._key_cache: dict[bytes, bytes] = {}

    @property
    def where(self) -> str:
        return "the OS keyring" if self.use_keyring else f"the encrypted file {self.file}"

    def _user(self, name: str) -> str:
        return f"{'testnet:' if self.testnet else ''}{name}"

    def get(self, name: str, env: str | None = None) -> str | None:
        if env and os.environ.get(env):
            return os.environ[env]
        if self.use_keyring:
            import keyring

            try:
                return keyring.get_password(SERVICE, self._user(name))
            except Exception as e:
                raise SecretError(f"the OS keyring refused to read {name}: {e}") from None
        entries = self._read_file()
        if name not in entries:
            return None
        return self._decrypt(entries[name], confirm=False)

    def set(self, name: str, value: str) -> None:
        if self.use_keyring:
            import keyring

            try:
                keyring.set_password(SERVICE, self._user(name), value)
            except Exception as e:
                raise SecretError(f"the OS keyring refused to store {name}: {e}") from None
            return
        self._warn(f"no OS keyring available; keeping {name} in {self.file}, encrypted with your passphrase")
        entries = self._read_file()
        entries[name] = self._encrypt(value, confirm=not entries)
        self._write_file(entries)

    def delete(self, name: str) -> bool:
        if self.use_keyring:
            import keyring
            from keyring.errors import PasswordDeleteError

            try:
                keyring.delete_password(SERVICE, self._user(name))
            except PasswordDeleteError:
                return False
            return True
        entries = self._read_file()
        if entries.pop(name, None) is None:
            return False
        self._write_file(entries)
        return True

    # -- the encrypted file ----------------------------------------------------------------------------------

    def _read_file(self) -> dict[str, dict[str, str]]:
        try:
            data = json.loads(self.file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            raise SecretError(f"cannot read {self.file}: {e}") from None
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            raise SecretError(f"{self.file} is not a moneyd secret file")
        return data

    def _write_file(self, entries: dict[str, dict[str, str]]) -> None:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.file.with_name(self.file.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(entries, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.file)

    def _key(self, salt: bytes, confirm: bool) -> bytes:
        if salt not in self._key_cache:
            passphrase = self._passphrase(confirm)
            self._key_cache[salt] = Scrypt(salt=salt, length=32, n=_SCRYPT_N, r=8, p=1).derive(passphrase.encode())
        return self._key_cache[salt]

    def _encrypt(self, value: str, confirm: bool) -> dict[str, str]:
        salt, nonce = os.urandom(16), os.urandom(12)
        sealed = AESGCM(self._key(salt, confirm)).encrypt(nonce, value.encode(), None)
        return {"kdf": "scrypt", "salt": _b64(salt), "nonce": _b64(nonce), "data": _b64(sealed)}

    def _decrypt(self, entry: dict[str, str], confirm: bool) -> str:
        try:
            salt, nonce, data = (base64.b64decode(entry[k]) for k in ("salt", "nonce", "data"))
        except (KeyError, ValueError):
            raise SecretError(f"{self.file} has a damaged entry") from None
        try:
            return AESGCM(self._key(salt, confirm)).decrypt(nonce, data, None).decode()
        except InvalidTag:
            self._key_cache.pop(salt, None)
            raise SecretError(f"wrong passphrase for {self.file}") from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
