"""The ETH uplink's pure core: ABI, claim encoding, verification, amounts, and the ClaimBook (no chain here)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import eth_keys
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_keys.backends import NativeECCBackend
from eth_keys.constants import SECPK1_N
from eth_utils.address import to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from web3 import Web3

from tests.support.ethfixture import DETERMINISTIC_KEYS, PLUGIN_DIR
from uplinks.eth.abi import KNOWN_CONTRACTS, unidirectional_abi
from uplinks.eth.book import ClaimBook
from uplinks.eth.chain import resolve_contract
from uplinks.eth.claims import (
    MIN_DISPUTE_PERIOD,
    ZERO_ADDRESS,
    ChannelFacts,
    ChannelState,
    Claim,
    as_signer,
    parse_address,
    parse_claim,
    payment_digest,
    recover_signer,
    recovery_digest,
    sign_claim,
    units_to_wei,
    verify_claim,
    wei_to_units,
)
from uplinks.eth.errors import ClaimRejected, ConfigError, InsufficientCapacity, ProtocolError

ROOT = Path(__file__).parents[3]
CONTRACT = to_checksum_address("0x07a457d878bf363e0bb5aa0b096092f941e19962")
SENDER_KEY, RECEIVER_KEY, OTHER_KEY = DETERMINISTIC_KEYS[0], DETERMINISTIC_KEYS[1], DETERMINISTIC_KEYS[2]
SENDER = "0x90F8bf6A479f320ead074411a4B0e7944Ea8c9C1"
RECEIVER = "0xFFcf8FDEE72ac11b5c542428B35EEF5769C409f0"
CID = bytes(range(32))
GWEI = 10**9


def channel(value: int = 10**18, **kw: Any) -> ChannelState:
    base: dict[str, Any] = {
        "channel_id": CID,
        "sender": SENDER,
        "receiver": RECEIVER,
        "value": value,
        "settling_period": MIN_DISPUTE_PERIOD,
        "settling_until": 0,
    }
    return ChannelState(**{**base, **kw})


def signatures(abi: list[dict[str, Any]]) -> set[tuple[str, str, tuple[str, ...], tuple[str, ...]]]:
    return {
        (
            e["type"],
            e["name"],
            tuple(i["type"] + ("!" if i.get("indexed") else "") for i in e.get("inputs", [])),
            tuple(o["type"] for o in e.get("outputs") or []),
        )
        for e in abi
    }


@pytest.mark.parametrize(("chain_id", "build"), [(1, "mainnet"), (1337, "testnet"), (3, "testnet")])
def test_abi_is_the_npm_packages(chain_id: int, build: str) -> None:
    shipped = json.loads((PLUGIN_DIR / "build" / "abi" / f"Unidirectional-{build}.json").read_text())["abi"]
    assert signatures(unidirectional_abi(chain_id)) == signatures(shipped)


def test_mainnet_open_has_its_own_selector() -> None:
    def signature(chain_id: int) -> str:
        c = Web3().eth.contract(abi=unidirectional_abi(chain_id))
        return str(c.get_function_by_name("open").signature)

    assert signature(1) == "open(bytes32,address,uint32)"
    assert signature(1337) == "open(bytes32,address,uint256)"


def test_known_contracts_are_the_js_plugins() -> None:
    source = (PLUGIN_DIR / "build" / "utils" / "channel.js").read_text()
    unidirectional = source.split("TOKEN_UNIDIRECTIONAL_METADATA")[0]
    for chain_id, address in KNOWN_CONTRACTS.items():
        assert f"    {chain_id}: {{" in unidirectional and f"address: '{address}'" in unidirectional
    assert resolve_contract(1, None) == to_checksum_address(KNOWN_CONTRACTS[1])
    assert resolve_contract(1, KNOWN_CONTRACTS[1].upper().replace("0X", "0x")) == to_checksum_address(KNOWN_CONTRACTS[1])
    assert resolve_contract(1337, CONTRACT.lower()) == CONTRACT
    with pytest.raises(ConfigError, match="could never settle"):
        resolve_contract(1, CONTRACT)
    with pytest.raises(ConfigError, match="pass --contract"):
        resolve_contract(1337, None)


def test_amounts_are_gwei() -> None:
    assert units_to_wei(1) == GWEI and wei_to_units(GWEI) == 1
    assert wei_to_units(2 * GWEI - 1) == 1  # rounded down, like the JS ROUND_DOWN
    with pytest.raises(ValueError):
        units_to_wei(-1)


def test_addresses() -> None:
    assert parse_address(SENDER.lower()) == SENDER
    assert parse_address("0x" + SENDER[2:].upper()) == SENDER
    i = next(i for i, ch in enumerate(SENDER) if i > 1 and ch.isalpha())
    bad_checksum = SENDER[:i] + SENDER[i].swapcase() + SENDER[i + 1 :]
    for bad in (bad_checksum, SENDER[:-1], SENDER[2:], 5, None, "0x" + "g" * 40):
        with pytest.raises(ConfigError):
            parse_address(bad)


def test_claim_json_is_the_js_shape() -> None:
    claim = sign_claim(SENDER_KEY, CONTRACT.lower(), CID, 10**18)
    text = claim.to_json().decode()
    assert text == (
        '{"channelId":"0x' + CID.hex() + '","signature":"0x' + claim.signature.hex() + '","value":"'
        + str(10**18) + '","contractAddress":"' + CONTRACT + '"}'
    )  # fmt: skip
    assert claim.signature[64] in (27, 28) and text.count('"signature":"0x') == 1
    assert parse_claim(text) == claim == parse_claim(claim.to_json())
    assert recover_signer(claim) == SENDER == claim.signer


def test_claims_are_signed_and_recovered_on_libsecp256k1() -> None:
    # coincurve is a dependency: eth-keys (under eth-account and web3) takes it as its backend by itself.
    assert type(eth_keys.KeyAPI().backend).__name__ == "CoinCurveECCBackend"
    assert type(as_signer(SENDER_KEY)).__module__ == "uplinks.eth._ecc"


@given(st.integers(min_value=0, max_value=2**256 - 1), st.binary(min_size=32, max_size=32))
@settings(max_examples=60, deadline=None)
def test_the_fast_path_agrees_with_eth_account_to_the_byte(value: int, cid: bytes) -> None:
    """Our signatures are eth-account's personal_sign to the byte, and recovery agrees with its recover_message;
    both also with eth-keys' pure-Python backend (RFC 6979 there too), which shares no code with libsecp256k1."""
    digest = payment_digest(CONTRACT, cid, value)
    theirs = bytes(Account.from_key(SENDER_KEY).sign_message(encode_defunct(primitive=digest)).signature)
    ours = sign_claim(SENDER_KEY, CONTRACT, cid, value)
    assert ours.signature == theirs
    assert recover_signer(ours) == SENDER == Account.recover_message(encode_defunct(primitive=digest), signature=theirs)
    native = eth_keys.KeyAPI(NativeECCBackend)
    signed = native.PrivateKey(bytes.fromhex(SENDER_KEY[2:])).sign_msg_hash(recovery_digest(CONTRACT, cid, value))
    assert signed.to_bytes() == ours.signature[:64] + bytes((ours.signature[64] - 27,))
    # The other s of the same signature (s -> n - s, v flipped) also recovers to the sender, as the contract's
    # ecrecover and eth-account both accept it.
    s = int.from_bytes(theirs[32:64], "big")
    twin = theirs[:32] + (SECPK1_N - s).to_bytes(32, "big") + bytes((55 - theirs[64],))
    assert recover_signer(Claim(cid, value, twin, CONTRACT)) == SENDER


def test_malformed_signatures_recover_to_nothing() -> None:
    good = sign_claim(SENDER_KEY, CONTRACT, CID, 5).signature
    r_s_v = [
        bytes(32) + good[32:],  # r = 0
        good[:32] + bytes(32) + good[64:],  # s = 0
        SECPK1_N.to_bytes(32, "big") + good[32:],  # r = n
        good[:32] + (2**256 - 1).to_bytes(32, "big") + good[64:],  # s above n
        good[:64] + b"\x00",  # v 0/1 is not what personal_sign produces
        good[:64] + b"\x1d",
        good[:64],
        b"\xff" * 64 + b"\x1b",  # r beyond the field: no point
    ]
    for sig in r_s_v:
        assert recover_signer(Claim(CID, 5, sig, CONTRACT)) is None, sig.hex()
    # x = 5 is no point of the curve (5³ + 7 = 132 is not a square mod p): recovery finds nothing.
    assert recover_signer(Claim(CID, 5, (5).to_bytes(32, "big") + good[32:], CONTRACT)) is None


def test_channel_facts_are_reused_only_within_value_age_and_while_open() -> None:
    facts = ChannelFacts(max_age=5.0)
    claim = sign_claim(SENDER_KEY, CONTRACT, CID, 5 * GWEI)
    assert facts.fresh_for(claim, 100.0) is None  # nothing read yet
    facts.remember(channel(value=5 * GWEI), 100.0)
    assert facts.fresh_for(claim, 100.0) == channel(value=5 * GWEI) == facts.fresh_for(claim, 105.0)
    assert facts.fresh_for(claim, 105.01) is None  # too old
    assert facts.fresh_for(claim, 99.0) is None  # a clock that went back is no proof of freshness
    above = sign_claim(SENDER_KEY, CONTRACT, CID, 5 * GWEI + 1)
    assert facts.fresh_for(above, 101.0) is None  # above the value read: maybe a deposit, maybe a lie
    other = sign_claim(SENDER_KEY, CONTRACT, b"\x07" * 32, GWEI)
    assert facts.fresh_for(other, 101.0) is None
    for state in (channel(settling_until=77), channel(sender=ZERO_ADDRESS)):
        facts.remember(state, 100.0)
        assert facts.fresh_for(claim, 100.0) is None  # settling or gone: always read again
    facts.remember(channel(), 100.0)
    facts.forget()
    assert facts.fresh_for(claim, 100.0) is None


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda c: {**c, "value": 5}, "schema"),
        (lambda c: {**c, "value": "-5"}, "schema"),
        (lambda c: {**c, "value": "1e18"}, "schema"),
        (lambda c: {**c, "value": "0x10"}, "schema"),
        (lambda c: {**c, "value": str(2**256)}, "schema"),
        (lambda c: {**c, "value": " 5"}, "schema"),
        (lambda c: {k: v for k, v in c.items() if k != "signature"}, "schema"),
        (lambda c: {**c, "signature": c["signature"][:-2]}, "schema"),
        (lambda c: {**c, "signature": c["signature"][2:] + "00"}, "schema"),
        (lambda c: {**c, "channelId": c["channelId"][:-2]}, "schema"),
        (lambda c: {**c, "channelId": None}, "schema"),
        (lambda c: {**c, "contractAddress": "0x1234"}, "schema"),
        (lambda c: {**c, "tokenContract": CONTRACT}, "token"),
        (lambda c: [c], "schema"),
    ],
)
def test_malformed_claims_are_refused(mutate: Any, reason: str) -> None:
    good = json.loads(sign_claim(SENDER_KEY, CONTRACT, CID, 7).to_json())
    with pytest.raises(ClaimRejected) as e:
        parse_claim(json.dumps(mutate(good)))
    assert e.value.reason == reason


def test_token_contract_null_is_ether() -> None:
    good = json.loads(sign_claim(SENDER_KEY, CONTRACT, CID, 7).to_json())
    assert parse_claim(json.dumps({**good, "tokenContract": None})).value == 7


@given(st.binary(max_size=400))
def test_garbage_bytes_never_crash(data: bytes) -> None:
    with contextlib.suppress(ClaimRejected):
        parse_claim(data)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=80),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)


@given(st.fixed_dictionaries({}, optional={k: _json for k in ("channelId", "signature", "value", "contractAddress", "tokenContract")}))
def test_hostile_json_never_crashes(obj: dict[str, Any]) -> None:
    with contextlib.suppress(ClaimRejected):
        parse_claim(json.dumps(obj))


def test_verify_claim_rules() -> None:
    ok = sign_claim(SENDER_KEY, CONTRACT, CID, 5 * GWEI)
    kw: dict[str, Any] = {"receiver": RECEIVER, "contract": CONTRACT, "best": None}
    assert verify_claim(ok, channel(), **kw) == 5 * GWEI
    assert verify_claim(ok, channel(), **{**kw, "best": 2 * GWEI}) == 3 * GWEI
    cases: list[tuple[Claim, ChannelState, dict[str, Any], str]] = [
        (ok, channel(), {"contract": SENDER}, "contract"),
        (ok, channel(), {"linked_channel": b"\x01" * 32}, "channel"),
        (ok, channel(sender=ZERO_ADDRESS, receiver=ZERO_ADDRESS, value=0), {}, "no_channel"),
        (ok, channel(receiver=SENDER), {}, "not_ours"),
        (ok, channel(settling_period=MIN_DISPUTE_PERIOD - 1), {}, "dispute_period"),
        (ok, channel(settling_until=99), {}, "settling"),
        (sign_claim(OTHER_KEY, CONTRACT, CID, 5 * GWEI), channel(), {}, "signature"),
        (ok, channel(value=5 * GWEI - 1), {}, "above_value"),
        (ok, channel(), {"best": 5 * GWEI}, "not_increasing"),
        (sign_claim(SENDER_KEY, CONTRACT, CID, 0), channel(), {"best": 0}, "not_increasing"),
    ]
    for claim, ch, extra, reason in cases:
        with pytest.raises(ClaimRejected) as e:
            verify_claim(claim, ch, **{**kw, **extra})
        assert e.value.reason == reason, (reason, e.value)
    # Only the first claim on a channel may be the value-0 link.
    assert verify_claim(sign_claim(SENDER_KEY, CONTRACT, CID, 0), channel(), **kw) == 0


def test_receive_credits_whole_units_without_losing_remainders() -> None:
    book = ClaimBook(RECEIVER_KEY, CONTRACT)
    credited = [book.receive(sign_claim(SENDER_KEY, CONTRACT, CID, v), channel()) for v in (GWEI // 2, 3 * GWEI // 2, 2 * GWEI)]
    assert credited == [0, 1, 1] and book.received == 2
    with pytest.raises(ClaimRejected):
        book.receive(sign_claim(SENDER_KEY, CONTRACT, b"\x09" * 32, 3 * GWEI), channel(channel_id=b"\x09" * 32))
    assert book.best_incoming is not None and book.best_incoming.value == 2 * GWEI


def test_prefunding() -> None:
    book = ClaimBook(SENDER_KEY, CONTRACT)
    with pytest.raises(InsufficientCapacity, match="no outgoing channel"):
        book.prepare(1)
    assert book.charged == 0
    link = book.open_outgoing(CID, RECEIVER, 100 * GWEI)
    assert link.value == 0 and recover_signer(link) == SENDER
    with pytest.raises(ProtocolError):
        book.open_outgoing(b"\x01" * 32, RECEIVER, 1)
    c1 = book.prepare(30)
    assert c1 is not None and c1.value == 30 * GWEI and book.credit() == 0
    book.rejected(30)  # the server credits a reject back: the credit pays the next Prepare
    assert book.prepare(10) is None and book.credit() == 20
    c2 = book.prepare(25)  # 20 of it is credit: the claim adds 5
    assert c2 is not None and c2.value == 35 * GWEI and book.credit() == 0
    with pytest.raises(InsufficientCapacity):
        book.prepare(66)  # 65 gwei left in the channel
    assert book.charged == 35 and book.outgoing is not None and book.outgoing.spent == 35 * GWEI
    assert book.needs_topup(66 * GWEI) and not book.needs_topup(65 * GWEI)
    book.deposited(200 * GWEI)
    with pytest.raises(ProtocolError):
        book.deposited(100 * GWEI)
    c3 = book.prepare(66)
    assert c3 is not None and c3.value == 101 * GWEI


def test_should_claim() -> None:
    book = ClaimBook(RECEIVER_KEY, CONTRACT)
    assert not book.should_claim(0, channel(), force=True)
    book.receive(sign_claim(SENDER_KEY, CONTRACT, CID, 0), channel())
    assert book.claimable() is None
    book.receive(sign_claim(SENDER_KEY, CONTRACT, CID, 10 * GWEI), channel())
    assert not book.should_claim(GWEI, channel())  # not disputed
    assert book.should_claim(GWEI, channel(settling_until=5))
    assert not book.should_claim(10 * GWEI, channel(settling_until=5))  # the fee would eat it all
    assert book.should_claim(GWEI, channel(), force=True)
    assert not book.should_claim(GWEI, channel(sender=ZERO_ADDRESS), force=True)  # already closed
    book.incoming_claimed()
    assert book.claimable() is None and book.received == 10


def test_snapshot_round_trip_and_corruption() -> None:
    book = ClaimBook(SENDER_KEY, CONTRACT)
    book.open_outgoing(CID, RECEIVER, 100 * GWEI)
    book.prepare(7)
    book.receive(sign_claim(RECEIVER_KEY, CONTRACT, b"\x05" * 32, 3 * GWEI), channel(
        channel_id=b"\x05" * 32, sender=RECEIVER, receiver=SENDER))  # fmt: skip
    snap = json.loads(json.dumps(book.to_json()))
    again = ClaimBook.from_json(SENDER_KEY, snap)
    assert again.to_json() == snap
    assert again.prepare(1) == sign_claim(SENDER_KEY, CONTRACT, CID, 8 * GWEI)
    for corrupt in ({}, {**snap, "paid": "x"}, {**snap, "outgoing": {"channelId": "0x12"}}, {**snap, "contract": 5}):
        with pytest.raises(ProtocolError):
            ClaimBook.from_json(SENDER_KEY, corrupt)


class PrefundMachine(RuleBasedStateMachine):
    """Random Prepares, rejects, deposits and restarts: the parent is always prepaid and our claims are exact."""

    def __init__(self) -> None:
        super().__init__()
        self.book = ClaimBook(SENDER_KEY, CONTRACT)
        self.book.open_outgoing(CID, RECEIVER, 1000 * GWEI)
        self.in_flight: list[int] = []
        self.fulfilled = 0
        self.value = 1000 * GWEI
        self.unsigned = False  # a reserve promised more than the last claim signed
        self.sent = 0  # the value of the last claim handed out to send

    @rule(amount=st.integers(0, 300), sign_now=st.booleans())
    def prepare(self, amount: int, sign_now: bool) -> None:
        try:
            if sign_now:
                claim = self.book.prepare(amount)
                if claim is not None:
                    self.unsigned = False
                    assert claim.value > self.sent
                    self.sent = claim.value
            elif self.book.reserve(amount):
                self.unsigned = True
        except InsufficientCapacity:
            return
        self.in_flight.append(amount)

    @rule()
    def sign(self) -> None:
        """What the uplink does once per batch of reserves: one claim covers them all."""
        claim = self.book.sign_promised()
        assert (claim is not None) == self.unsigned
        if claim is not None:
            assert claim.value > self.sent
            self.sent = claim.value
        self.unsigned = False

    @rule(fulfil=st.booleans())
    def reply(self, fulfil: bool) -> None:
        if self.in_flight:
            amount = self.in_flight.pop(0)
            if fulfil:
                self.fulfilled += amount
            else:
                self.book.rejected(amount)

    @rule(extra=st.integers(1, 500))
    def deposit(self, extra: int) -> None:
        self.value += extra * GWEI
        self.book.deposited(self.value)

    @rule()
    def restart(self) -> None:
        self.book = ClaimBook.from_json(SENDER_KEY, json.loads(json.dumps(self.book.to_json())))

    @invariant()
    def prepaid_and_exact(self) -> None:
        book = self.book
        assert book.charged == self.fulfilled + sum(self.in_flight) <= book.paid  # the server never goes over 0
        assert book.outgoing is not None and book.outgoing.spent == book.paid * GWEI <= book.outgoing.value
        if book.paid and not self.unsigned:
            assert book.last_sent is not None and book.last_sent.value == book.outgoing.spent == self.sent
            assert recover_signer(book.last_sent) == SENDER


TestPrefundMachine = PrefundMachine.TestCase
TestPrefundMachine.settings = settings(
    max_examples=25, stateful_step_count=20, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def test_fixture_paths_exist() -> None:
    assert Path(PLUGIN_DIR / "build" / "abi" / "Unidirectional-testnet.json").is_file()


def test_importing_the_uplink_keeps_deep_json_a_clean_error() -> None:
    # py_ecc (under eth-account) raises the recursion limit to 100000 on import; a nested JSON claim from a
    # peer then segfaulted the process. uplinks.eth puts the limit back.
    code = (
        "import sys, json; before = sys.getrecursionlimit()\n"
        "import uplinks.eth.chain, web3, eth_account\n"
        "assert sys.getrecursionlimit() == before, sys.getrecursionlimit()\n"
        "from uplinks.eth.claims import parse_claim\n"
        "from uplinks.eth.errors import ClaimRejected\n"
        "try:\n    parse_claim('[' * 200000)\nexcept ClaimRejected:\n    print('clean')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.strip() == "clean", out.stderr
