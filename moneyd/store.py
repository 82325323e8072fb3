"""Durable state in SQLite under the user's data directory.

Money state (claims, balances, channels) and account bindings are committed before the caller acknowledges
anything, so a crash never loses what a peer was told we had.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import platformdirs

from .config import user_dir
from .errors import ConfigError, StoreError

__all__ = ["Store", "StoreError", "default_data_dir"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (namespace, key)
);
CREATE TABLE IF NOT EXISTS account_tokens (
    account TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL
);
"""


def default_data_dir() -> Path:
    """``MONEYD_DATA_DIR`` if set, else the platform's user data dir (e.g. ~/.local/share/moneyd)."""
    env = os.environ.get("MONEYD_DATA_DIR")
    if env:
        return Path(env)
    try:
        return user_dir(platformdirs.user_data_dir("moneyd", appauthor=False), "MONEYD_DATA_DIR")
    except ConfigError as e:
        raise StoreError(str(e)) from None


class Store:
    """A small durable key-value store plus the account-token bindings. Thread-safe; every write commits."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            if str(path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on disk before it returns, which is what "durable before acknowledged" needs.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
            self._migrate()
        except (OSError, sqlite3.Error) as e:
            why = f"{e.strerror or e} ({e.filename})" if isinstance(e, OSError) and e.filename else str(e)
            raise StoreError(f"cannot open moneyd's state database {self.path}: {why}; set MONEYD_DATA_DIR to a "
                             "writable directory with free space") from None

    def _migrate(self) -> None:
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(account_tokens)")}
        if "created_at" not in columns:
            # Rows from before: when they were made is unknown, so they count from now.
            self._db.execute("ALTER TABLE account_tokens ADD COLUMN created_at REAL")
            self._db.execute("UPDATE account_tokens SET created_at=?", (time.time(),))
        if "paid_at" not in columns:
            self._db.execute("ALTER TABLE account_tokens ADD COLUMN paid_at REAL")
        if "seen_at" not in columns:
            # When each account's app last connected; unknown for rows from before, so they count from now.
            self._db.execute("ALTER TABLE account_tokens ADD COLUMN seen_at REAL")
            self._db.execute("UPDATE account_tokens SET seen_at=?", (time.time(),))

    @classmethod
    def open_default(cls, testnet: bool = False) -> Store:
        return cls(default_data_dir() / ("moneyd-test.sqlite" if testnet else "moneyd.sqlite"))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- generic values ------------------------------------------------------------------------------------

    def get(self, namespace: str, key: str, default: Any = None) -> Any:
        with self._lock:
            row = self._db.execute("SELECT value FROM kv WHERE namespace=? AND key=?", (namespace, key)).fetchone()
        return default if row is None else json.loads(row[0])

    def put(self, namespace: str, key: str, value: Any) -> None:
        """Write and commit; returns only once the value is durable."""
        text = json.dumps(value, separators=(",", ":"))
        with self._lock:
            self._db.execute(
                "INSERT INTO kv(namespace, key, value) VALUES(?,?,?) "
                "ON CONFLICT(namespace, key) DO UPDATE SET value=excluded.value",
                (namespace, key, text),
            )

    def delete(self, namespace: str, key: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM kv WHERE namespace=? AND key=?", (namespace, key))

    def items(self, namespace: str) -> dict[str, Any]:
        with self._lock:
            rows = self._db.execute("SELECT key, value FROM kv WHERE namespace=?", (namespace,)).fetchall()
        return {k: json.loads(v) for k, v in rows}

    # -- account bindings ----------------------------------------------------------------------------------

    def bind_token(self, account: str, token_hash: str, paid: bool = False, now: float | None = None) -> bool:
        """Bind the first token seen for an account; later, True only for that same token. ``paid``: the binding is
        written because the account is used for a payment (see moneyd.accounts); such bindings expire only when
        their app has not been seen for long (expire_idle_bindings)."""
        now = time.time() if now is None else now
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO account_tokens(account, token_hash, created_at, paid_at, seen_at) VALUES(?,?,?,?,?)",
                (account, token_hash, now, now if paid else None, now),
            )
            row = self._db.execute("SELECT token_hash, paid_at FROM account_tokens WHERE account=?", (account,)).fetchone()
            same = bool(row[0] == token_hash)
            if same and paid and row[1] is None:
                self._db.execute("UPDATE account_tokens SET paid_at=? WHERE account=?", (now, account))
        return same

    def bound_token(self, account: str) -> str | None:
        """The token hash bound to an account, if any."""
        with self._lock:
            row = self._db.execute("SELECT token_hash FROM account_tokens WHERE account=?", (account,)).fetchone()
        return None if row is None else str(row[0])

    def binding(self, account: str) -> tuple[str, float] | None:
        """(token hash, when its app was last seen) of an account's binding, if any."""
        with self._lock:
            row = self._db.execute("SELECT token_hash, seen_at FROM account_tokens WHERE account=?", (account,)).fetchone()
        return None if row is None else (str(row[0]), float(row[1] or 0.0))

    def touch_binding(self, account: str, now: float | None = None) -> None:
        """Note that the account's app was seen now (one write; callers do it at most daily per account)."""
        with self._lock:
            self._db.execute("UPDATE account_tokens SET seen_at=? WHERE account=?", (time.time() if now is None else now, account))

    def expire_idle_bindings(self, idle_for: float, now: float | None = None) -> int:
        """Drop bindings whose app has not been seen for more than ``idle_for`` seconds; how many."""
        cutoff = (time.time() if now is None else now) - idle_for
        with self._lock:
            cur = self._db.execute("DELETE FROM account_tokens WHERE COALESCE(seen_at, created_at) < ?", (cutoff,))
        return cur.rowcount

    def expire_unpaid_bindings(self, older_than: float, now: float | None = None) -> int:
        """Drop bindings never used for a payment and made more than ``older_than`` seconds ago; how many."""
        cutoff = (time.time() if now is None else now) - older_than
        with self._lock:
            cur = self._db.execute("DELETE FROM account_tokens WHERE paid_at IS NULL AND created_at < ?", (cutoff,))
        return cur.rowcount

    def count_bindings(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT COUNT(*) FROM account_tokens").fetchone()
        return int(row[0])
