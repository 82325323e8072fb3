"""The ETH uplink: BTP to a parent running ilp-plugin-ethereum 3.0.0-beta.20, settled over Machinomy
Unidirectional payment channels.

Sans-I/O core: ``abi`` (the contract interface), ``claims`` (claim encoding, signing, verification, amounts),
``book`` (the ClaimBook: what to sign, accept and claim on chain), ``messages`` (the BTP protocolData).
``chain`` is the thin async web3.py layer; ``uplink`` (EthUplink) the I/O that ties them to the parent over BTP;
``commands`` the ``eth:*`` CLI (registered by ``plugin``); the BTP token comes from ``moneyd.btp.parent``.
Modules that use eth-account or web3 import ``_ecc`` first; the
package itself stays cheap to import (the CLI loads every uplink plugin at startup).
"""
