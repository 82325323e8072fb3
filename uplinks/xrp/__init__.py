"""The XRP uplink: BTP to a parent running ilp-plugin-xrp-asym-server, settled over XRP payment channels.

Sans-I/O core (no sockets here): ``keys`` (the channel key), ``claims`` (claim and channel-id encodings, ledger
channel checks), ``book`` (the ClaimBook: what to sign, accept, submit, top up), ``messages`` (the protocolData the
asym server sends and expects), ``nodebuf`` (Node's lenient base64). ``ledger`` is the thin async xrpl-py layer,
``uplink`` (XrpUplink) the I/O around them, ``commands``/``manage`` the ``xrp:*`` CLI. The BTP credentials come
from ``moneyd.btp.parent``, shared with the other uplinks.
"""
