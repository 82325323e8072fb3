"""The one error type every wire decoder raises: callers catch this and nothing else."""

from __future__ import annotations


class CodecError(ValueError):
    """Bytes or values that do not form a valid packet; the message says what is wrong."""
