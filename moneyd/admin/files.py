"""The admin API's files in the data directory: the token (0600) and where a running moneyd serves. Standard
library only: ``moneyd status`` reads these without loading the server's libraries."""

from __future__ import annotations

import os
from pathlib import Path

TOKEN_FILE = "admin-token"


def load_token(data_dir: Path, create: bool = True) -> str | None:
    """The admin token in ``data_dir/admin-token`` (0600), made on first use."""
    path = data_dir / TOKEN_FILE
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        text = ""
    if text or not create:
        return text or None
    data_dir.mkdir(parents=True, exist_ok=True)
    token = os.urandom(24).hex()
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(token + "\n")
    return token


def runtime_file(store_path: Path) -> Path:
    """Where a running moneyd says which admin port it serves (``moneyd status`` reads it)."""
    return store_path.parent / f"{store_path.stem}.admin.json"
