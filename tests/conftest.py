import os

import pytest
from hypothesis import HealthCheck, settings

from tests.support.ethfixture import ganache, ganache_chain  # noqa: F401  (ganache with the Unidirectional contract)
from tests.support.jsnode import node  # noqa: F401  (the fixture every interop test uses)
from tests.support.routerfixture import router  # noqa: F401
from tests.support.xrpl_emulator.fixture import xrpl_emulator  # noqa: F401  (rippled stand-in for the XRP tests)

# CI runs on 2 shared cores next to node peers: generation speed says nothing about the code under test, so the
# "too slow" health check and per-example deadlines are off (the properties themselves still run in full).
settings.register_profile("moneyd", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("moneyd")

# The moneyd processes tests start serve the admin API only where a test asks for it (--admin-api-port, a free
# port): by default each would try 127.0.0.1:7769, which another test's moneyd, a benchmark's or the user's holds.
os.environ.setdefault("MONEYD_ADMIN_API_PORT", "0")

# Tests that run the JS reference peers (Node and tests/js/node_modules) are marked `interop`, so that
# `pytest -m "not interop"` runs everything else on a machine without Node. A test is one if it uses a fixture that
# starts Node, or its module drives Node itself (NodeRunner/NodeProcess).
NODE_FIXTURES = frozenset({"node", "ganache", "ganache_chain", "oracle"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = getattr(item, "module", None)
        drives_node = module is not None and any(hasattr(module, n) for n in ("NodeRunner", "NodeProcess"))
        if drives_node or NODE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.interop)
