"""uplinks/xrp against the JS code the parent runs, byte for byte (tests/js/xrp-oracle.js).

The oracle computes with ilp-plugin-xrp-paychan-shared's util (what the asym server and client both use),
the asym server's own class (drops conversion, _handleClaim, _sendMoneyToAccount), ripple-lib's claim signing
and verification, elliptic and Node's crypto for ed25519, and Node's Buffer for base64. Inputs are random but
seeded, so a failure reproduces.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
from xrpl.core.addresscodec import encode_classic_address
from xrpl.core.binarycodec import encode_for_signing_claim
from xrpl.core.keypairs import derive_classic_address, derive_keypair, generate_seed, is_valid_message

from moneyd.btp import parent as auth
from moneyd.wire.btp import Message, ProtocolData, Transfer, encode_frame
from tests.support.jsnode import NodeProcess, NodeRunner
from uplinks.xrp import claims, messages, nodebuf
from uplinks.xrp.book import ClaimBook
from uplinks.xrp.claims import Claim, PayChannel
from uplinks.xrp.errors import ClaimRejected
from uplinks.xrp.keys import ChannelKey, channel_seed


class Oracle:
    def __init__(self, proc: NodeProcess) -> None:
        self.proc = proc

    def many(self, items: list[dict[str, Any]]) -> list[Any]:
        out: list[Any] = []
        for start in range(0, len(items), 200):
            self.proc.send({"op": "many", "items": items[start : start + 200]})
            reply = self.proc.event_sync("r", timeout=60)
            for r in reply["value"]:
                assert r["ok"], r
                out.append(r["value"])
        return out

    def one(self, op: str, **args: Any) -> Any:
        return self.many([{"op": op, **args}])[0]


@pytest.fixture(scope="module")
def oracle() -> Iterator[Oracle]:
    runner = NodeRunner()
    try:
        p = runner.start("xrp-oracle.js", stream_fix=False)
        p.event_sync("ready", timeout=60)
        yield Oracle(p)
    finally:
        runner.stop_all()


def rand_address(rng: random.Random) -> str:
    return encode_classic_address(rng.randbytes(20))


def rand_channel(rng: random.Random) -> str:
    return rng.randbytes(32).hex().upper()


# --- Node's base64 ------------------------------------------------------------------------------------------

ODD_BASE64 = [
    "",
    "=",
    "==",
    "A",
    "AA",
    "AAA",
    "AAAA",
    "A=",
    "AA=",
    "AA==",
    "AAA=",
    "AAAA=",
    "AAAA==",
    "AAAA===",
    "QU=JD",
    "Q.U.J.D",
    "QUJDRA=x",
    "-_-_",
    "+/+/",
    "-/+_",
    "AAAA.AAAA",
    " Q U J D ",
    "QUJD\n",
    "\nQUJD",
    "test.xrp.server.alice",
    "g.crypto.xrp.ilsp.8Xb2_-Zq",
    "private.moneyd",
    "ł",
    "łłłł",
    "QłJD",
    "QUJĽ",
    "😀",
    "QU😀JD",
    "\ud800QUJD",
    "QUJD\udfff",
    "é=é=",
    "QUJD=QUJD",
    "QU==JD",
    "=QUJD",
    "QUJD====",
    "Ľ",
    "AĽĽ",
    "AAĽ",
    "\u0141\u0142\u0143\u0144",
    "\x00\x00\x00\x00",
    "\xff\xfe\xfd\xfc",
    "....",
    "A.B",
    "AB.",
    "ABC.",
    "ABCD.E",
    "ABCD.EF",
    "ABCD.EFG",
    "ABCD.EFGH",
    "ABCDE",
    "ABCDEF=",
    "ABCDEFG==",
]


def test_node_base64_leniency_on_odd_inputs(oracle: Oracle) -> None:
    got = oracle.many([{"op": "b64", "s": s} for s in ODD_BASE64])
    for s, js in zip(ODD_BASE64, got, strict=True):
        assert nodebuf.base64_decode(s).hex() == js, repr(s)


def test_node_base64_leniency_fuzzed(oracle: Oracle) -> None:
    rng = random.Random(5)
    pool = "ABCXYZabcxyz0189+/-_=.~ \n\tł😀Ľ\x80é"
    inputs = ["".join(rng.choice(pool) for _ in range(rng.randrange(0, 40))) for _ in range(1500)]
    inputs += [nodebuf_long for nodebuf_long in ("QUJD" * 1500, "QUJD." * 1400 + "=", "Q" * 5463 + "==")]
    got = oracle.many([{"op": "b64", "s": s} for s in inputs])
    for s, js in zip(inputs, got, strict=True):
        assert nodebuf.base64_decode(s).hex() == js, repr(s)


# --- BTP auth -----------------------------------------------------------------------------------------------


def test_auth_token_and_url_match_moneyd_uplink_xrp(oracle: Oracle) -> None:
    rng = random.Random(1)
    cases = [("client.scyl.la", "alice", generate_seed())]
    for _ in range(60):
        parent = rng.choice(["127.0.0.1:", "ilsp.example.com:", "xn--bcher-kva.example:"]) + str(
            rng.randrange(1, 65536)
        )
        name = "".join(rng.choice("abcXYZ019_~-") for _ in range(rng.randrange(1, 44)))
        secret = rng.choice([generate_seed(), "sEd" + rng.randbytes(8).hex(), "sécret✓"])
        cases.append((parent, name, secret))
    got = oracle.many([{"op": "token", "parent": p, "name": n, "secret": s} for p, n, s in cases])
    for (p, n, s), js in zip(cases, got, strict=True):
        assert auth.btp_token(p, n, s) == js["token"]
        assert auth.parent_url(p, n, s) == js["url"]


# --- keys, channel ids, claims --------------------------------------------------------------------------------


def test_channel_key_matches_asym_client_derivation(oracle: Oracle) -> None:
    rng = random.Random(2)
    cases = [(generate_seed(), rand_address(rng)) for _ in range(40)] + [("sécret✓", rand_address(rng))]
    got = oracle.many([{"op": "key", "secret": s, "address": a} for s, a in cases])
    for (s, a), js in zip(cases, got, strict=True):
        key = ChannelKey.derive(s, a)
        assert channel_seed(s, a).hex() == js["seed"]
        assert key.public_key.hex() == js["pub_node"] == js["pub_elliptic"]
        assert key.ledger_public_key == "ED" + js["pub_node"].upper()


def test_channel_id_matches_compute_channel_id(oracle: Oracle) -> None:
    rng = random.Random(3)
    cases = [
        (rand_address(rng), rand_address(rng), rng.choice([0, 1, 2**32 - 1, rng.randrange(2**32)]))
        for _ in range(80)
    ]
    got = oracle.many([{"op": "channel_id", "src": s, "dst": d, "seq": q} for s, d, q in cases])
    for (s, d, q), js in zip(cases, got, strict=True):
        assert claims.channel_id(s, d, q) == js


def rand_drops(rng: random.Random) -> int:
    return rng.choice([1, 2**32 - 1, 2**32, 2**53 - 1, rng.randrange(1, 10**7), rng.randrange(1, 2**53)])


def test_claim_signatures_match_ripple_lib_and_verify_both_ways(oracle: Oracle) -> None:
    rng = random.Random(4)
    cases = [(rng.randbytes(32), rand_channel(rng), rand_drops(rng)) for _ in range(120)]
    got = oracle.many(
        [{"op": "claim", "seed": seed.hex(), "channel": ch, "drops": str(d)} for seed, ch, d in cases]
    )
    verify_ours = []
    for (seed, ch, d), js in zip(cases, got, strict=True):
        key = ChannelKey.from_seed(seed)
        encoded = claims.encode_claim(ch, d)
        assert encoded.hex() == js["encoded"]
        assert encoded.hex().upper() == encode_for_signing_claim({"channel": ch, "amount": str(d)})
        ours = claims.sign_claim(key, ch, d)
        assert ours.hex() == js["sig_node"] == js["sig_ripple"].lower()
        # JS's signature verified by us (and by xrpl-py, as rippled would), ours by JS below.
        assert claims.verify_claim(key.public_key, ch, d, bytes.fromhex(js["sig_ripple"]))
        assert is_valid_message(encoded, bytes.fromhex(js["sig_ripple"]), key.ledger_public_key)
        assert not claims.verify_claim(key.public_key, ch, d + 1, ours)
        verify_ours.append(
            {
                "op": "verify",
                "channel": ch,
                "drops": str(d),
                "signature": ours.hex().upper(),
                "pub": key.public_key.hex(),
            }
        )
        tampered = bytearray(ours)
        tampered[rng.randrange(64)] ^= 1 << rng.randrange(8)
        verify_ours.append(
            {
                "op": "verify",
                "channel": ch,
                "drops": str(d),
                "signature": tampered.hex().upper(),
                "pub": key.public_key.hex(),
            }
        )
    results = oracle.many(verify_ours)
    assert all(r == {"node": True, "ripple": True} for r in results[0::2])
    assert all(r == {"node": False, "ripple": False} for r in results[1::2])


def test_js_u64_encoding_quirk_above_2_pow_53_drops(oracle: Oracle) -> None:
    """paychan-shared's toU64BE goes through a JS double: at 2^53 drops and beyond (9 billion XRP, more than any
    channel holds) its encoding can differ from rippled's. Ours follows rippled (xrpl-py), as the ledger does."""
    drops = 2**55 - 1
    js = oracle.one("claim", seed="11" * 32, channel="AB" * 32, drops=str(drops))
    ours = claims.encode_claim("AB" * 32, drops)
    assert ours.hex().upper() == encode_for_signing_claim({"channel": "AB" * 32, "amount": str(drops)})
    assert js["encoded"] != ours.hex()


def test_channel_signature_matches_encode_channel_proof(oracle: Oracle) -> None:
    rng = random.Random(6)
    accounts = ["test.parent.alice", "g.ilsp.8Xb2_-Zq~x", "private.moneyd", "QUJD", "a", "g.x.ł"]
    cases = [
        (rng.randbytes(32), rand_channel(rng), rng.choice(accounts) + rng.choice(["", ".", "abc", "_-"]))
        for _ in range(60)
    ]
    got = oracle.many([{"op": "proof", "seed": s.hex(), "channel": c, "account": a} for s, c, a in cases])
    for (s, c, a), js in zip(cases, got, strict=True):
        assert claims.encode_channel_proof(c, a).hex() == js["encoded"]
        assert claims.channel_signature(ChannelKey.from_seed(s), c, a).hex() == js["sig"]


def test_drops_conversion_matches_the_server(oracle: Oracle) -> None:
    rng = random.Random(7)
    cases = []
    for _ in range(300):
        scale = rng.choice([0, 3, 6, 9, 9, 12, 18])
        amount = rng.choice([0, 1, 999, 1000, 1001, rng.randrange(10**15)])
        cases.append((amount, scale))
    got = oracle.many([{"op": "drops", "amount": str(a), "scale": s} for a, s in cases])
    for (a, s), js in zip(cases, got, strict=True):
        assert claims.to_drops(a, s) == int(js), (a, s)
    back = [(rng.randrange(10**12), rng.choice([6, 9, 12])) for _ in range(50)]
    got = oracle.many([{"op": "to_base", "drops": str(d), "scale": s} for d, s in back])
    for (d, s), js in zip(back, got, strict=True):
        assert claims.from_drops(d, s) == int(js)


# --- whole claims through the server's own code -------------------------------------------------------------

SERVER = "rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh"  # the oracle's server address


def outgoing_book(secret: str, channel_drops: int) -> tuple[ClaimBook, str]:
    address = derive_classic_address(derive_keypair(secret)[0])
    key = ChannelKey.derive(secret, SERVER)
    book = ClaimBook(scale=9, key=key, our_address=address, server_address=SERVER)
    channel = claims.channel_id(address, SERVER, 7)
    book.set_outgoing(PayChannel(channel, address, SERVER, channel_drops, 0, key.ledger_public_key, 3600))
    book.load_last_claim(Claim(0))
    return book, channel


def test_the_server_accepts_our_claims_and_refuses_what_it_should(oracle: Oracle) -> None:
    secret = generate_seed()
    book, channel = outgoing_book(secret, 10_000_000)
    pub = book.key.public_key.hex()
    common = {
        "op": "server_claim",
        "scale": 9,
        "name": "alice",
        "channel": channel,
        "pub": pub,
        "channel_xrp": "10",
    }
    items, last = [], None
    for amount in (10_000_000, 1, 999, 1000, 4_000_000_000):
        s = book.sign_payment(amount)
        body = json.loads(messages.claim_data(s.claim)[0].data)
        assert messages.claim_data(s.claim)[0].data == json.dumps(body, separators=(",", ":")).encode()
        items.append({**common, **body, "last": last})
        last = body["amount"]
    forged = {**common, "amount": "5000000000", "signature": s.claim.signature_hex, "last": last}
    too_big = book.key.sign(claims.encode_claim(channel, 10_000_001)).hex()
    over = {**common, "amount": "10000001000", "signature": too_big, "last": last}
    results = oracle.many([*items, forged, over])
    for item, r in zip(items, results, strict=False):
        assert r["accepted"], r
        assert r["best"]["amount"] == item["amount"]
    # the server's last_claim reply (JSON.stringify(getIncomingClaim())) is one a restarted book resumes from
    last_reply = (ProtocolData.json("last_claim", json.dumps(results[len(items) - 1]["best"])),)
    restarted, _ = outgoing_book(secret, 10_000_000)
    restarted.load_last_claim(messages.parse_last_claim(last_reply))
    assert restarted.sent == book.sent
    assert results[-2] == {"accepted": False, "error": "Invalid claim: invalid signature"}
    assert not results[-1]["accepted"] and "exceeds channel balance" in results[-1]["error"]


def test_we_accept_the_servers_claims_and_refuse_tampered_ones(oracle: Oracle) -> None:
    secret = generate_seed()
    address = derive_classic_address(derive_keypair(secret)[0])
    book = ClaimBook(
        scale=9, key=ChannelKey.derive(secret, SERVER), our_address=address, server_address=SERVER
    )
    client_channel = claims.channel_id(SERVER, address, 42)
    pays = []
    outgoing = 0
    for amount in (1_000_000, 1, 999_999_999, 7):
        pays.append(
            {
                "op": "server_pay",
                "scale": 9,
                "name": "bob",
                "client_channel": client_channel,
                "outgoing": str(outgoing),
                "amount": str(amount),
            }
        )
        outgoing += amount
    got = oracle.many(pays)
    pub = got[0]["pub"]
    book.set_incoming(PayChannel(client_channel, SERVER, address, 10_000_000, 0, "ED" + pub.upper(), 3600))
    balance_before = book.balance
    total = 0
    for item, js in zip(pays, got, strict=True):
        assert (js["protocol"], js["content_type"]) == ("claim", 2)
        pd = messages.ProtocolData.json("claim", js["data"])
        claim = messages.parse_claim((pd,))
        assert book.receive(claim) == int(item["amount"])
        total += int(item["amount"])
        assert book.best == claim
        assert book.receive(claim) == 0  # a repeat adds nothing
    # We owed nothing for them (no Prepares of the server's were counted here): the book takes such claims as
    # paying for Prepares from before a restart, so they change what the parent owes us by nothing.
    assert book.balance == balance_before and book.unattributed == total
    last = book.best
    assert last.signature is not None
    with pytest.raises(ClaimRejected) as e:
        book.receive(Claim(last.amount + 1000, last.signature))
    assert e.value.reason == "signature"
    with pytest.raises(ClaimRejected) as e:
        book.receive(Claim(last.amount - 1, last.signature))
    assert e.value.reason == "lower"


def test_btp_frames_match_the_asym_client_byte_for_byte(oracle: Oracle) -> None:
    seed = bytes(range(32))
    key = ChannelKey.from_seed(seed)
    ch = claims.channel_id(SERVER, "rPEPPER7kfTD9w2To4CQk6UCfuHM9c6GDY", 3)
    acct = "test.parent.8Xb2_-Zq"
    s = ClaimBook(scale=9, key=key, our_address="rPEPPER7kfTD9w2To4CQk6UCfuHM9c6GDY", server_address=SERVER)
    claim = Claim(10_000_001, claims.sign_claim(key, ch, 10_001))
    ours = {
        "info": encode_frame(Message(11, messages.info_request())),
        "last_claim": encode_frame(Message(12, messages.last_claim_request())),
        "channel": encode_frame(Message(13, messages.channel_proof(key, ch, acct))),
        "channel+fund": encode_frame(
            Message(14, messages.channel_proof(key, ch, acct) + messages.fund_channel_request(s.our_address))
        ),
        "claim": encode_frame(Transfer(15, claim.amount, messages.claim_data(claim))),
    }
    common = {"op": "btp", "seed": seed.hex(), "channel": ch, "account": acct}
    got = oracle.many(
        [
            {**common, "kind": "info", "request_id": 11},
            {**common, "kind": "last_claim", "request_id": 12},
            {**common, "kind": "channel", "request_id": 13},
            {**common, "kind": "channel", "request_id": 14, "address": s.our_address},
            {**common, "kind": "claim", "request_id": 15, "amount": "10000001", "drops": "10001"},
        ]
    )
    for (what, frame), js in zip(ours.items(), got, strict=True):
        assert frame.hex() == js, what


def test_the_server_registers_our_channel_from_our_proof(oracle: Oracle) -> None:
    """The server's own _handleCustomData verifies channel_signature over Buffer.from(prefix + name, 'base64')."""
    rng = random.Random(8)
    got = []
    for i in range(12):
        seed = rng.randbytes(32)
        key = ChannelKey.from_seed(seed)
        name = "".join(rng.choice("abcXYZ019_-~") for _ in range(rng.randrange(1, 44))) + str(i)
        account = "test.parent." + name  # what the info reply calls our account
        ch = rand_channel(rng)
        good = messages.channel_proof(key, ch, account) + messages.fund_channel_request(
            "rPEPPER7kfTD9w2To4CQk6UCfuHM9c6GDY"
        )
        # the same proof over the account's UTF-8 bytes instead of Node's base64 decoding: must be refused
        wrong = (
            good[0],
            ProtocolData.octets(
                "channel_signature", key.sign(b"channel_signature" + bytes.fromhex(ch) + account.encode())
            ),
        )
        for pd, ok in ((wrong, False), (good, True)):
            r = oracle.one(
                "server_channel",
                name=name,
                frame=encode_frame(Message(i, pd)).hex(),
                pub=key.public_key.hex(),
                channel_xrp="10",
            )
            got.append((ok, r))
    for ok, r in got:
        if not ok:
            assert not r["accepted"] and "invalid signature for proving channel ownership" in r["error"], r
            continue
        assert r["accepted"], r
        assert r["state"] == "ESTABLISHING_CLIENT_CHANNEL"
        reply = tuple(
            ProtocolData(x["name"], x["content_type"], bytes.fromhex(x["data"])) for x in r["reply"]
        )
        assert messages.parse_fund_channel_reply(reply) == "CD" * 32
