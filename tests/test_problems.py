"""moneyd.problems: whatever reaches the top of the CLI is one line saying what went wrong and what to do."""

from __future__ import annotations

import errno
import sqlite3

import pytest

from moneyd.config import ConfigError
from moneyd.problems import WHERE, explain, explain_os_error
from moneyd.store import StoreError


@pytest.mark.parametrize(
    ("err", "line"),
    [
        (errno.EACCES, f"cannot write /d/f: Permission denied; {WHERE}"),
        (errno.EROFS, f"cannot write /d/f: Read-only file system; {WHERE}"),
        (errno.ENOSPC, "no space left for /d/f: No space left on device; free some disk space and try again"),
        (errno.EISDIR, "/d/f is a directory, not a file; give a file path (e.g. -c /d/f/moneyd.json)"),
        (errno.ENOTDIR, f"/d/f: a part of this path is a file, not a directory; {WHERE}"),
        (errno.ENOENT, "/d/f: No such file or directory"),
    ],
)
def test_os_errors_name_the_path_and_the_way_out(err: int, line: str) -> None:
    import os

    assert explain_os_error(OSError(err, os.strerror(err), "/d/f")) == line
    assert explain(OSError(err, os.strerror(err), "/d/f")) == line


def test_a_path_hint_when_the_error_names_none() -> None:
    assert explain_os_error(OSError(errno.EACCES, "Permission denied"), "/cfg.json").startswith("cannot write /cfg.json:")
    assert explain_os_error(OSError(errno.EACCES, "Permission denied")).startswith("cannot write a file:")


def test_our_own_errors_are_their_message_and_others_are_a_bug_report() -> None:
    assert explain(ConfigError("moneyd.json is not valid JSON")) == "moneyd.json is not valid JSON"
    assert explain(StoreError("cannot open x")) == "cannot open x"
    assert explain(sqlite3.OperationalError("disk I/O error")) == (
        "moneyd's state database: disk I/O error; check that MONEYD_DATA_DIR is writable and the disk is not full")
    assert explain(MemoryError()) == "out of memory"
    bug = explain(KeyError("x"))
    assert bug.startswith("unexpected KeyError: 'x'. This is a bug in moneyd") and "MONEYD_DEBUG=1" in bug
