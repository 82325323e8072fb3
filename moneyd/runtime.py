"""Running moneyd in the foreground: the Router (moneyd.app), its admin API and dashboard (moneyd.admin), logging,
signals and the exit code. The top of the runtime: nothing below imports it, so the admin API can read the Router
without the Router knowing the admin API."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable
from typing import Any

from . import evloop, loglimit
from .app import Router, RouterSettings, StartupError
from .store import Store
from .uplink import Uplink

log = logging.getLogger("moneyd")


async def serve_until_signalled(router: Router, announce: Callable[[str], None]) -> None:
    """Start, announce, and run until SIGINT/SIGTERM; then shut down cleanly."""
    await router.start()
    # Handlers before the "ready" line: whoever reads it may signal us at once.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    s = router.settings
    admin = await _start_admin(router)
    host = "localhost" if s.host in ("127.0.0.1", "::1", "localhost") else s.host
    announce(
        f"moneyd ready: ILP address {router.address} ({router.asset_code}, scale {router.asset_scale}); "
        f"apps connect to btp+ws://:TOKEN@{host}:{router.server.port}"
    )
    if s.host not in ("127.0.0.1", "::1", "localhost"):
        log.warning("listening on %s: other machines can reach this moneyd; use --host 127.0.0.1 unless you mean it", s.host)
    waits = [asyncio.ensure_future(stop.wait())]
    if router.uplink is not None:
        waits.append(asyncio.ensure_future(router.uplink.failed.wait()))
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for w in waits:
        w.cancel()
    failure = router.uplink.failure if router.uplink is not None else None
    announce("moneyd: shutting down" if failure is None else f"moneyd: the uplink stopped: {failure}; shutting down")
    if admin is not None:
        await admin.stop()
    await router.stop()
    if failure is not None:
        raise StartupError(failure)


async def _start_admin(router: Router) -> Any:
    """The admin API and dashboard: the port is bound now, the HTTP server (aiohttp) loaded on its first client."""
    s = router.settings
    if s.admin_api_port is None:
        return None
    from .admin.files import runtime_file
    from .admin.gate import AdminGate

    try:
        admin = AdminGate(router, s.admin_api_port, router.store.path.parent)
        await admin.start()
    except OSError as e:
        if s.admin_api_strict:
            await router.stop()
            raise StartupError(f"cannot serve the admin API on 127.0.0.1:{s.admin_api_port}: {e.strerror or e}") from e
        log.warning("admin API not started on 127.0.0.1:%d (%s); `moneyd status` will not see this moneyd",
                    s.admin_api_port, e.strerror or e)
        return None
    try:
        admin.publish(runtime_file(router.store.path))
    except OSError as e:
        log.warning("cannot record the admin port in the data directory (%s): use `moneyd status --admin-api-port %d`",
                    e.strerror or e, admin.port)
    log.info("dashboard and admin API on http://127.0.0.1:%d/", admin.port)
    return admin


def run(settings: RouterSettings, store: Store, uplink: Uplink | None = None, quiet: bool = False) -> int:
    """Run moneyd in the foreground; the exit code for the CLI."""
    from .logs import setup_logging

    setup_logging("warning" if quiet else settings.log_level, settings.log_format)
    loglimit.install()  # a client must not be able to grow the log without bound
    router = Router(settings, store, uplink)
    try:
        evloop.run(serve_until_signalled(router, lambda line: print(line, flush=True)))
    except StartupError as e:
        print(f"moneyd: error: {e}", file=sys.stderr)
        return 1
    finally:
        store.close()
    return 0
