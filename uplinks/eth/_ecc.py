"""Import eth-account safely: every module here that uses eth-account or web3 imports this module first.

eth-account imports py_ecc, whose import raises the interpreter's recursion limit to 100000 for the whole process.
With that limit a deeply nested JSON document from a peer overflows the C stack and kills the process (segfault)
instead of raising RecursionError. Import it here, first, and put the limit back.
"""

import sys

_limit = sys.getrecursionlimit()
import eth_account  # noqa: E402, F401

sys.setrecursionlimit(_limit)
