"""Pytest fixture ``xrpl_emulator``: a fresh emulated ledger per test, closing a ledger every 0.2 s."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .server import XrplEmulator


@pytest.fixture
def xrpl_emulator() -> Iterator[XrplEmulator]:
    emulator = XrplEmulator(close_interval=0.2).start()
    try:
        yield emulator
    finally:
        emulator.stop()
