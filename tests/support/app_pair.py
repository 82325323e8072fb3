"""tests/js/app-pair.js, two JS ilp-plugin-btp apps: the one at ``sender`` pays the one at ``receiver``."""

from __future__ import annotations

from typing import Any

from tests.support.jsnode import NodeProcess, NodeRunner


async def app_pair(node: NodeRunner, sender: str, receiver: str) -> NodeProcess:
    """The two apps, connected, their addresses learnt by IL-DCP."""
    apps = node.start("app-pair.js", sender, receiver)
    await apps.event("ready", timeout=30)
    return apps


async def ping(apps: NodeProcess, amount: int) -> dict[str, Any]:
    """One Prepare of ``amount`` from the sender to the receiver; the reply as app-pair.js reports it."""
    apps.send({"cmd": "ping", "amount": amount})
    return await apps.event("ping")


async def pays(node: NodeRunner, sender: str, receiver: str, amount: int) -> NodeProcess:
    """A new pair pays one Prepare of ``amount``, which must be fulfilled."""
    apps = await app_pair(node, sender, receiver)
    reply = await ping(apps, amount)
    assert reply["ok"] is True, reply
    return apps


def pays_sync(node: NodeRunner, sender: str, receiver: str, amount: int) -> dict[str, Any]:
    """The same for a test that is not async, then the pair stops; what app-pair.js said when ready (the apps'
    IL-DCP answers)."""
    apps = node.start("app-pair.js", sender, receiver)
    ready = apps.event_sync("ready", timeout=30)
    apps.send({"cmd": "ping", "amount": amount})
    reply = apps.event_sync("ping")
    assert reply["ok"] is True, reply
    apps.stop()
    return ready
