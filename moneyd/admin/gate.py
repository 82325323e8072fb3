"""The admin port, held open from moneyd's start; the HTTP server behind it is loaded when a client first connects.

aiohttp (with the TLS contexts its client builds at import) adds about 12 MB to moneyd's 50, and most routers never
have their dashboard opened. So moneyd binds the port itself (a busy port is still an error at start, and
``moneyd status`` finds it as before), publishes it and runs the sampler (``sampler.Sampler``: rates, link changes,
claims) from the start; the first connection waits in the socket's backlog while ``api`` is imported in a worker
thread (the packet path keeps running), then aiohttp serves on that same socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .files import load_token
from .sampler import Sampler

if TYPE_CHECKING:
    from ..app import Router
    from .api import AdminServer

log = logging.getLogger("moneyd.admin")


class AdminGate:
    def __init__(self, router: Router, port: int, data_dir: Path, host: str = "127.0.0.1") -> None:
        self.router = router
        self.host = host
        self.requested_port = port
        self.data_dir = data_dir
        self.port = 0
        self.sampler = Sampler(router)
        self.server: AdminServer | None = None
        self._sock: socket.socket | None = None
        self._loading: asyncio.Task[None] | None = None
        self._published: Path | None = None

    async def start(self) -> None:
        load_token(self.data_dir)  # made now: `moneyd status` reads it before anything was served
        # SO_REUSEADDR as aiohttp's own sites set it: a restart does not wait for TIME_WAIT.
        sock = socket.create_server((self.host, self.requested_port), backlog=128, reuse_port=False)
        sock.setblocking(False)
        self._sock = sock
        self.port = sock.getsockname()[1]
        asyncio.get_running_loop().add_reader(sock.fileno(), self._first_client)
        self.sampler.start()

    def _first_client(self) -> None:
        loop = asyncio.get_running_loop()
        if self._sock is not None:
            loop.remove_reader(self._sock.fileno())
        if self._loading is None:
            self._loading = loop.create_task(self._load())

    async def _load(self) -> None:
        sock = self._sock
        assert sock is not None
        try:
            api = await asyncio.to_thread(importlib.import_module, "moneyd.admin.api")
            server: AdminServer = api.AdminServer(self.router, self.port, self.data_dir, self.host, sampler=self.sampler)
            await server.start(sock)
        except Exception as e:  # the router goes on without its dashboard; say why once
            log.warning("admin API could not start: %s: %s", type(e).__name__, e)
            self._sock = None
            sock.close()  # clients are refused rather than left waiting in the backlog
            return
        self.server = server
        log.debug("admin API loaded on its first client")

    def publish(self, path: Path) -> None:
        """Say where we serve, for ``moneyd status`` (removed again on stop)."""
        doc = {"pid": os.getpid(), "admin_port": self.port, "port": self.router.server.port, "started": time.time()}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc), encoding="utf-8")
        os.replace(tmp, path)
        self._published = path

    async def stop(self) -> None:
        if self._published is not None:
            with contextlib.suppress(OSError):
                self._published.unlink()
        if self._loading is not None and not self._loading.done():
            with contextlib.suppress(Exception):
                await self._loading
        if self.server is not None:
            await self.server.stop()
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(sock.fileno())
            sock.close()
        await self.sampler.stop()
