"""The ETH uplink: BTP to a parent running ilp-plugin-ethereum 3.0.0-beta.20, settled over Machinomy
Unidirectional payment channels.

Sans-I/O core: ``abi`` (the contract interface), ``claims`` (claim encoding, signing, verification, amounts),
``book`` (the ClaimBook: what to sign, accept and claim on chain), ``messages`` (the BTP protocolData).
``chain`` is the thin async web3.py layer.
"""

import sys as _sys

# eth-account imports py_ecc, whose import raises the interpreter's recursion limit to 100000 for the whole
# process. With that limit a deeply nested JSON document from a peer overflows the C stack and kills the
# process (segfault) instead of raising RecursionError. Import it here, first, and put the limit back.
_limit = _sys.getrecursionlimit()
import eth_account  # noqa: E402, F401

_sys.setrecursionlimit(_limit)
