"""A ClaimBook with two channels set up, and claims signed by the parent's key: what the XRP book tests share."""

from __future__ import annotations

from uplinks.xrp import claims
from uplinks.xrp.book import ClaimBook
from uplinks.xrp.claims import Claim, PayChannel
from uplinks.xrp.keys import ChannelKey

US = "rPEPPER7kfTD9w2To4CQk6UCfuHM9c6GDY"
SERVER = "rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh"
OUR_KEY = ChannelKey.from_seed(bytes(range(32)))
SERVER_KEY = ChannelKey.from_seed(bytes(range(1, 33)))
OUT_CH = claims.channel_id(US, SERVER, 5)
IN_CH = claims.channel_id(SERVER, US, 9)


def out_chan(amount: int = 10_000_000, balance: int = 0) -> PayChannel:
    return PayChannel(OUT_CH, US, SERVER, amount, balance, OUR_KEY.ledger_public_key, 3600)


def in_chan(amount: int = 1_000_000, balance: int = 0, **kw: int | None) -> PayChannel:
    return PayChannel(
        IN_CH, SERVER, US, amount, balance, SERVER_KEY.ledger_public_key, kw.pop("delay", 3600) or 0, **kw
    )


def new_book(scale: int = 9) -> ClaimBook:
    book = ClaimBook(scale=scale, key=OUR_KEY, our_address=US, server_address=SERVER)
    book.set_outgoing(out_chan())
    book.load_last_claim(Claim(0))
    book.set_incoming(in_chan())
    return book


def server_claim(amount: int, scale: int = 9, key: ChannelKey = SERVER_KEY, channel: str = IN_CH) -> Claim:
    return Claim(amount, key.sign(claims.encode_claim(channel, claims.to_drops(amount, scale))))
