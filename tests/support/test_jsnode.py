"""The node harness itself: start, talk, stop."""

from tests.support.jsnode import NodeRunner


async def test_node_helper_round_trip(node: NodeRunner) -> None:
    p = node.start("echo.js")
    ready = await p.event("ready")
    assert ready["node"].startswith("v")
    p.send({"cmd": "hello", "n": 1})
    echoed = await p.event("echo")
    assert echoed["msg"] == {"cmd": "hello", "n": 1}
    p.send({"cmd": "exit", "code": 3})
    assert p.proc.wait(5) == 3


def test_stop_kills_a_running_helper(node: NodeRunner) -> None:
    p = node.start("echo.js")
    p.expect_sync(r'"event":"ready"')
    assert p.stop() is not None
    assert p.proc.poll() is not None
