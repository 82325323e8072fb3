"""moneyd.store on its own: what is put is there after a reopen, the schema and its migration, the account bindings,
and a database that cannot be opened is one clear StoreError (a MoneydError), not a sqlite3 traceback."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from moneyd.errors import MoneydError
from moneyd.store import Store, StoreError, default_data_dir


def test_values_round_trip_through_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "data" / "moneyd.sqlite"  # the directory is made on first open
    store = Store(path)
    book = {"best_amount": "18446744073709551616", "claims": [1, 2, 3], "nested": {"ok": True, "none": None}}
    store.put("xrp", "book", book)
    store.put("xrp", "n", 2**70)
    store.put("eth", "book", {"other": 1})
    store.put("xrp", "gone", 1)
    store.delete("xrp", "gone")
    store.put("xrp", "n", 7)  # an update replaces, never duplicates
    store.close()

    again = Store(path)  # every put committed before it returned: a new connection sees it all
    assert again.get("xrp", "book") == book
    assert again.items("xrp") == {"book": book, "n": 7}
    assert again.items("eth") == {"book": {"other": 1}}
    assert again.get("xrp", "gone") is None and again.get("xrp", "gone", "default") == "default"
    again.close()


def test_schema_and_durability_settings(tmp_path: Path) -> None:
    store = Store(tmp_path / "moneyd.sqlite")
    try:
        # FULL: a commit is on disk before put() returns ("durable before acknowledged").
        assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2
    finally:
        store.close()
    db = sqlite3.connect(tmp_path / "moneyd.sqlite")
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"kv", "account_tokens"} <= tables
        columns = [row[1] for row in db.execute("PRAGMA table_info(account_tokens)")]
        assert columns == ["account", "token_hash", "created_at", "paid_at", "seen_at"]
    finally:
        db.close()


def test_an_older_database_is_migrated_and_keeps_its_bindings(tmp_path: Path) -> None:
    path = tmp_path / "moneyd.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE account_tokens (account TEXT PRIMARY KEY, token_hash TEXT NOT NULL)")
    db.execute("INSERT INTO account_tokens VALUES ('alice', 'h1')")
    db.commit()
    db.close()
    store = Store(path)
    try:
        assert store.bound_token("alice") == "h1"
        assert not store.bind_token("alice", "h2")
        # Unknown age counts from now, and never used for a payment: kept for now, dropped once old enough.
        assert store.expire_unpaid_bindings(older_than=3600) == 0
        assert store.count_bindings() == 1
    finally:
        store.close()


def test_bindings_first_token_wins_and_only_unpaid_ones_expire(tmp_path: Path) -> None:
    store = Store(tmp_path / "moneyd.sqlite")
    try:
        assert store.bind_token("alice", "h1")
        assert store.bind_token("alice", "h1")
        assert not store.bind_token("alice", "h2")
        assert store.bound_token("alice") == "h1" and store.bound_token("bob") is None
        assert store.bind_token("bob", "h3", paid=True)
        assert store.bind_token("alice", "h1", paid=True)  # paid later: now it never expires either
        assert store.bind_token("carol", "h4")
        assert store.count_bindings() == 3
        far_future = 10**12
        assert store.expire_unpaid_bindings(older_than=60, now=far_future) == 1
        assert store.bound_token("carol") is None
        assert store.bound_token("alice") == "h1" and store.bound_token("bob") == "h3"
    finally:
        store.close()


def test_a_database_that_cannot_be_opened_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError) as raised:
        Store(blocker / "moneyd.sqlite")  # its directory would have to be inside a file
    message = str(raised.value)
    assert message.startswith(f"cannot open moneyd's state database {blocker / 'moneyd.sqlite'}:")
    assert "MONEYD_DATA_DIR" in message
    assert isinstance(raised.value, MoneydError)  # callers catch the one hierarchy

    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is no database" * 100)
    with pytest.raises(StoreError, match=r"junk\.sqlite: file is not a database"):
        Store(junk)


def test_the_data_directory_comes_from_the_environment_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONEYD_DATA_DIR", str(tmp_path / "here"))
    assert default_data_dir() == tmp_path / "here"
    for testnet, name in ((False, "moneyd.sqlite"), (True, "moneyd-test.sqlite")):
        store = Store.open_default(testnet)
        try:
            assert store.path == tmp_path / "here" / name
        finally:
            store.close()
