"""One line for what went wrong and what to do about it, for errors that reach the top of the CLI.

Commands report the errors they expect themselves; this is the net under them, so that no environment (a read-only
or full disk, a missing home, a directory where a file should be) ever ends in a traceback.
"""

from __future__ import annotations

import errno

from .errors import ConfigError, StoreError

WHERE = "choose another place with -c/--config (the config file) or MONEYD_DATA_DIR (moneyd's state)"


def explain_os_error(e: OSError, path_hint: object = None) -> str:
    path = e.filename if e.filename is not None else path_hint or "a file"
    what = e.strerror or str(e)
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {path}: {what}; {WHERE}"
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left for {path}: {what}; free some disk space and try again"
    if e.errno == errno.EISDIR:
        return f"{path} is a directory, not a file; give a file path (e.g. -c {path}/moneyd.json)"
    if e.errno == errno.ENOTDIR:
        return f"{path}: a part of this path is a file, not a directory; {WHERE}"
    return f"{path}: {what}"


def explain(e: BaseException) -> str:
    import sqlite3  # here: only an error pays for it

    if isinstance(e, ConfigError | StoreError):
        return str(e)
    if isinstance(e, OSError):
        return explain_os_error(e)
    if isinstance(e, sqlite3.Error):
        return f"moneyd's state database: {e}; check that MONEYD_DATA_DIR is writable and the disk is not full"
    if isinstance(e, MemoryError):
        return "out of memory"
    return (f"unexpected {type(e).__name__}: {e}. This is a bug in moneyd: please report it "
            "(MONEYD_DEBUG=1 shows where it happened)")
