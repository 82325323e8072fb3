from tests.ethfixture import ganache, ganache_chain  # noqa: F401  (ganache with the Unidirectional contract)
from tests.jsnode import node  # noqa: F401  (the fixture every interop test uses)
from tests.routerfixture import router  # noqa: F401
from tests.xrpl_emulator.fixture import xrpl_emulator  # noqa: F401  (rippled stand-in for the XRP tests)
