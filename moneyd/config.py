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

VERSION = 1


class ConfigError(Exception):
    """The config file is missing, unreadable or malformed; the message names the file and the problem."""


def default_path(testnet: bool = False) -> Path:
    env = os.environ.get("MONEYD_CONFIG")
    if env:
        return Path(env)
    name = "moneyd-test.json" if testnet else "moneyd.json"
    return Path(platformdirs.user_config_dir("moneyd", appauthor=False)) / name


@dataclass
class Config:
    path: Path
    data: dict[str, Any]

    @classmethod
    def load(cls, path: Path) -> Config:
        if not path.exists():
            return cls(path, {"version": VERSION})
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"cannot read {path}: {e}") from None
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
