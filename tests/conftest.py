from hypothesis import HealthCheck, settings

from tests.ethfixture import ganache, ganache_chain  # noqa: F401  (ganache with the Unidirectional contract)
from tests.jsnode import node  # noqa: F401  (the fixture every interop test uses)
from tests.routerfixture import router  # noqa: F401
from tests.xrpl_emulator.fixture import xrpl_emulator  # noqa: F401  (rippled stand-in for the XRP tests)

# CI runs on 2 shared cores next to node peers: generation speed says nothing about the code under test, so the
# "too slow" health check and per-example deadlines are off (the properties themselves still run in full).
settings.register_profile("moneyd", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("moneyd")
