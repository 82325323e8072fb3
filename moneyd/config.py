"""The config file: one JSON document with a section per uplink.

Its default home is the platform's user config dir (``moneyd.json``, or ``moneyd-test.json`` with ``--testnet``);
``-c/--config`` names another. Writes are atomic and the file is private (0600): the BTP parent URL carries a token.
XRP and ETH secrets never go here (they belong in the OS keyring).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from .errors import ConfigError
from .problems import explain_os_error

__all__ = ["VERSION", "Config", "ConfigError", "default_path", "is_js_config", "not_configured", "user_dir"]

VERSION = 1


def default_path(testnet: bool = False) -> Path:
    env = os.environ.get("MONEYD_CONFIG")
    if env:
        return Path(env)
    name = "moneyd-test.json" if testnet else "moneyd.json"
    return user_dir(platformdirs.user_config_dir("moneyd", appauthor=False), "MONEYD_CONFIG or -c/--config") / name


def user_dir(found: str, override: str) -> Path:
    """A per-user directory from platformdirs. Without a home (HOME unset and no passwd entry) it comes back as
    ``~/...``, which would quietly become a folder named ``~`` wherever moneyd runs: refuse that instead."""
    path = Path(found)
    if not path.is_absolute():
        raise ConfigError(f"cannot find your home directory (HOME is not set); set HOME, or {override}")
    return path


@dataclass
class Config:
    path: Path
    data: dict[str, Any]

    @classmethod
    def load(cls, path: Path) -> Config:
        if not path.exists():
            return cls(path, {"version": VERSION})
        if path.is_dir():
            raise ConfigError(f"{path} is a directory, not a config file; give a file path (e.g. -c {path / 'moneyd.json'})")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise ConfigError(f"cannot read {path}: {e.strerror or e}") from None
        except UnicodeDecodeError as e:
            raise ConfigError(f"{path} is not a text file ({e.reason}); is it the right file?") from None
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path} must hold a JSON object, not {type(data).__name__}")
        return cls(path, data)

    def section(self, name: str) -> dict[str, Any] | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise ConfigError(f"{self.path}: section {name!r} must be a JSON object")
        return value

    def set_section(self, name: str, value: dict[str, Any]) -> None:
        self.data[name] = value
        self.data["version"] = VERSION

    def save(self) -> None:
        try:
            self._write()
        except OSError as e:
            raise ConfigError(f"cannot save the config: {explain_os_error(e, self.path)}") from None

    def _write(self) -> None:
        if self.path.is_dir():
            raise IsADirectoryError(21, "Is a directory", str(self.path))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".moneyd-", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self.data, f, indent=2)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


JS_CONFIG = "~/.moneyd.json"  # where the JS moneyd keeps its config
JS_TESTNET_CONFIG = "~/.moneyd.test.json"  # and its --testnet config


def js_config_path(testnet: bool) -> Path:
    """Where the JS moneyd keeps its config (as its own --testnet picks it); left as ``~/...`` without a home."""
    path = Path(JS_TESTNET_CONFIG if testnet else JS_CONFIG)
    try:
        return path.expanduser()
    except RuntimeError:  # no HOME and no passwd entry
        return path


def is_js_config(data: dict[str, Any]) -> bool:
    """A JS moneyd config: version 1 keeps uplinks under ``uplinks``; version 0 is flat with a ``secret``."""
    return isinstance(data.get("uplinks"), dict) or ("version" not in data and "secret" in data)


def not_configured(cfg: Config, uplink: str, testnet: bool) -> str:
    """Why ``uplink`` cannot run from ``cfg`` and the command that fixes it, with the same --testnet and -c; a JS
    moneyd config (given with -c, or at ~/.moneyd.json) gets the import command instead."""
    flags = " --testnet" if testnet else ""
    importable = uplink == "xrp"  # xrp:configure --import-js reads the JS moneyd's XRP settings
    if is_js_config(cfg.data):
        if importable:
            return (f"{cfg.path} is a JS moneyd config: import it once with `moneyd{flags} xrp:configure --import-js "
                    f"{cfg.path}` (the secret moves to your keyring), then run `moneyd{flags} xrp:start`")
        return f"{cfg.path} is a JS moneyd config; set up this uplink with `moneyd{flags} {uplink}:configure`"
    if cfg.path != default_path(testnet):
        flags += f" -c {cfg.path}"
    message = f"no {uplink} uplink in {cfg.path}; run `moneyd{flags} {uplink}:configure` first"
    js = js_config_path(testnet)
    if importable and js.is_file():
        message += f" (or import your JS moneyd's settings: `moneyd{flags} xrp:configure --import-js {js}`)"
    return message
