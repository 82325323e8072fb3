"""Run our router in-process on a free port, with a throwaway store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from moneyd.app import Router, RouterSettings
from moneyd.store import Store
from moneyd.uplink import Uplink
from tests.support.jsnode import free_port


async def start_router(tmp_path: Path, uplink: Uplink | None = None, **overrides: object) -> Router:
    settings = RouterSettings(port=free_port())
    for k, v in overrides.items():
        setattr(settings, k, v)
    router = Router(settings, Store(tmp_path / "moneyd.sqlite"), uplink)
    await router.start()
    return router


@pytest.fixture
async def router(tmp_path: Path) -> AsyncIterator[Router]:
    r = await start_router(tmp_path)
    try:
        yield r
    finally:
        await r.stop()
        r.store.close()
        await asyncio.sleep(0)
