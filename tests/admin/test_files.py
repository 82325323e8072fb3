"""moneyd.admin.files: the admin token is made once, private, and kept; the runtime file sits by the store."""

from __future__ import annotations

import stat
from pathlib import Path

from moneyd.admin.files import TOKEN_FILE, load_token, runtime_file


def test_the_token_is_made_once_private_and_kept(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert load_token(data, create=False) is None and not data.exists()  # a reader makes nothing
    token = load_token(data)
    assert token is not None and len(token) == 48 and int(token, 16) >= 0
    assert stat.S_IMODE((data / TOKEN_FILE).stat().st_mode) == 0o600
    assert load_token(data) == token == load_token(data, create=False)


def test_an_unreadable_token_file_is_replaced(tmp_path: Path) -> None:
    (tmp_path / TOKEN_FILE).write_bytes(b"\xff\xfe not ascii")
    assert load_token(tmp_path, create=False) is None
    token = load_token(tmp_path)
    assert token is not None and (tmp_path / TOKEN_FILE).read_text().strip() == token


def test_the_runtime_file_is_named_after_the_store(tmp_path: Path) -> None:
    assert runtime_file(tmp_path / "moneyd.sqlite") == tmp_path / "moneyd.admin.json"
    assert runtime_file(tmp_path / "moneyd-test.sqlite") == tmp_path / "moneyd-test.admin.json"
