"""The XRP ledger emulator (tests/support/xrpl_emulator) behaves like rippled for what the XRP uplink needs.

Three layers: the pure state engine (signed blobs in, rippled's engine results out), the WebSocket API driven by
xrpl-py 5.2, and the same API driven by ripple-lib 0.21 through the very modules ilp-plugin-xrp-asym-server 1.8.1
loads (its tx submitter, its channel ids, its native-sodium claim signing).
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from xrpl.asyncio.clients import AsyncWebsocketClient
from xrpl.asyncio.transaction import submit_and_wait
from xrpl.core.binarycodec import encode, encode_for_signing, encode_for_signing_claim
from xrpl.core.keypairs import sign
from xrpl.models.requests import AccountChannels, AccountInfo, Fee, LedgerEntry, ServerInfo, SubmitOnly, Tx
from xrpl.models.transactions import (
    Payment,
    PaymentChannelClaim,
    PaymentChannelClaimFlag,
    PaymentChannelCreate,
    PaymentChannelFund,
)
from xrpl.transaction import XRPLReliableSubmissionException
from xrpl.wallet import Wallet

from tests.support.jsnode import JS_DIR, NodeProcess, NodeRunner, free_port
from tests.support.xrpl_emulator import (
    GENESIS_ADDRESS,
    InvalidTransaction,
    Ledger,
    XrplEmulator,
    channel_id,
)

XRP = 1_000_000
FEE = 10


# -- helpers ----------------------------------------------------------------------------------------------


def signed(ledger: Ledger, wallet: Wallet, tx: dict[str, Any], **overrides: Any) -> str:
    """A signed tx blob, autofilled like a client would (next sequence, base fee)."""
    acct = ledger.account(wallet.address)
    full = {
        "Account": wallet.address,
        "Fee": str(FEE),
        "Flags": 0,
        "Sequence": acct.sequence if acct else 1,
        "SigningPubKey": wallet.public_key,
        **tx,
        **overrides,
    }
    full["TxnSignature"] = sign(bytes.fromhex(encode_for_signing(full)), wallet.private_key)
    return encode(full)


def submit(ledger: Ledger, wallet: Wallet, tx: dict[str, Any], **overrides: Any) -> str:
    return ledger.submit(signed(ledger, wallet, tx, **overrides)).engine_result


def claim_signature(wallet: Wallet, channel: str, drops: int) -> str:
    return sign(bytes.fromhex(encode_for_signing_claim({"channel": channel, "amount": str(drops)})),
                wallet.private_key)


def funded(ledger: Ledger, drops: int, algorithm: str = "ed25519") -> Wallet:
    from xrpl import CryptoAlgorithm

    wallet = Wallet.create(CryptoAlgorithm.ED25519 if algorithm == "ed25519" else CryptoAlgorithm.SECP256K1)
    ledger.fund(wallet.address, drops)
    ledger.close()
    return wallet


def open_channel(ledger: Ledger, src: Wallet, dst: Wallet, drops: int, settle_delay: int = 3600,
                 **extra: Any) -> str:
    seq = ledger.account(src.address).sequence  # type: ignore[union-attr]
    tx = {"TransactionType": "PaymentChannelCreate", "Destination": dst.address, "Amount": str(drops),
          "SettleDelay": settle_delay, "PublicKey": src.public_key, **extra}
    assert submit(ledger, src, tx) == "tesSUCCESS"
    ledger.close()
    return channel_id(src.address, dst.address, seq)


def claim_tx(channel: str, balance: int, signer: Wallet | None = None, **extra: Any) -> dict[str, Any]:
    tx: dict[str, Any] = {"TransactionType": "PaymentChannelClaim", "Channel": channel, "Balance": str(balance),
                          **extra}
    if signer is not None:
        tx["Signature"] = claim_signature(signer, channel, int(extra.get("Amount", balance)))
        tx["PublicKey"] = signer.public_key
    return tx


# -- the pure engine ----------------------------------------------------------------------------------------


def test_genesis_and_funding_are_real_payments() -> None:
    ledger = Ledger()
    start = ledger.balance(GENESIS_ADDRESS)
    alice = funded(ledger, 50 * XRP)
    assert ledger.balance(alice.address) == 50 * XRP
    assert ledger.balance(GENESIS_ADDRESS) == start - 50 * XRP - FEE
    # a new account starts at the sequence of the ledger that created it (DeletableAccounts)
    acct = ledger.account(alice.address)
    assert acct is not None and acct.sequence == 2 and acct.owner_count == 0
    assert ledger.account(alice.address, ledger.validated) == acct


def test_sequence_fee_last_ledger_and_auth_checks() -> None:
    ledger = Ledger()
    alice, bob = funded(ledger, 100 * XRP), funded(ledger, 100 * XRP)
    pay = {"TransactionType": "Payment", "Destination": bob.address, "Amount": "1000"}
    seq = ledger.account(alice.address).sequence  # type: ignore[union-attr]
    assert submit(ledger, alice, pay, Sequence=seq + 1) == "terPRE_SEQ"
    assert submit(ledger, alice, pay, Fee="9") == "telINSUF_FEE_P"
    assert submit(ledger, alice, pay, LastLedgerSequence=ledger.validated.index) == "tefMAX_LEDGER"
    assert submit(ledger, alice, pay, LastLedgerSequence=ledger.open_index) == "tesSUCCESS"
    assert submit(ledger, alice, pay, Sequence=seq) == "tefPAST_SEQ"
    # bob's key cannot sign for alice (no regular keys in the emulator)
    forged = {"Account": alice.address, "SigningPubKey": bob.public_key, "Sequence": seq + 1}
    assert submit(ledger, bob, pay, **forged) == "tefBAD_AUTH"
    assert ledger.balance(bob.address) == 100 * XRP + 1000
    assert ledger.balance(alice.address) == 100 * XRP - 1000 - FEE


def test_every_transaction_signature_is_verified() -> None:
    ledger = Ledger()
    alice, bob = funded(ledger, 100 * XRP), funded(ledger, 100 * XRP)
    blob = signed(ledger, alice, {"TransactionType": "Payment", "Destination": bob.address, "Amount": "1000"})
    # flip one byte of the amount: the signature no longer covers the transaction
    tampered = blob.replace(f"{1000:016X}"[-4:], f"{1001:016X}"[-4:], 1)
    assert tampered != blob
    with pytest.raises(InvalidTransaction, match="Invalid signature"):
        ledger.submit(tampered)
    with pytest.raises(InvalidTransaction):
        ledger.submit("DEADBEEF")
    assert ledger.balance(bob.address) == 100 * XRP
    assert ledger.submit(blob).engine_result == "tesSUCCESS"


def test_secp256k1_accounts_work_too() -> None:
    ledger = Ledger()
    alice, bob = funded(ledger, 100 * XRP, "secp256k1"), funded(ledger, 100 * XRP, "secp256k1")
    assert submit(ledger, alice, {"TransactionType": "Payment", "Destination": bob.address,
                                  "Amount": "5"}) == "tesSUCCESS"
    chan = open_channel(ledger, alice, bob, 10 * XRP)
    assert submit(ledger, bob, claim_tx(chan, 123, alice)) == "tesSUCCESS"
    assert ledger.channel(chan).balance == 123  # type: ignore[union-attr]


def test_payment_rules_and_reserves() -> None:
    ledger = Ledger()
    alice = funded(ledger, 30 * XRP)
    newcomer, other = Wallet.create(), Wallet.create()
    pay = {"TransactionType": "Payment"}
    assert submit(ledger, alice, pay, Destination=newcomer.address, Amount=str(10 * XRP - 1)) == "tecNO_DST_INSUF_XRP"
    assert submit(ledger, alice, pay, Destination=newcomer.address, Amount=str(10 * XRP)) == "tesSUCCESS"
    assert ledger.balance(newcomer.address) == 10 * XRP
    # alice has 20 XRP minus two fees; she must keep her 10 XRP reserve
    left = 30 * XRP - 10 * XRP - 2 * FEE
    assert ledger.balance(alice.address) == left
    assert submit(ledger, alice, pay, Destination=newcomer.address, Amount=str(left - 10 * XRP + 1)) == "tecUNFUNDED_PAYMENT"
    assert submit(ledger, alice, pay, Destination=alice.address, Amount="1") == "temREDUNDANT"
    assert submit(ledger, alice, pay, Destination=other.address, Amount="0") == "temBAD_AMOUNT"
    iou = {"currency": "USD", "issuer": GENESIS_ADDRESS, "value": "1"}
    assert submit(ledger, alice, pay, Destination=newcomer.address, Amount=iou) == "tecPATH_DRY"
    # each tec claimed its fee and its sequence number, nothing else
    assert ledger.balance(alice.address) == left - 2 * FEE
    everything = ledger.balance(alice.address) - FEE - 10 * XRP
    assert submit(ledger, alice, pay, Destination=newcomer.address, Amount=str(everything)) == "tesSUCCESS"
    assert ledger.balance(alice.address) == 10 * XRP


def test_channel_create_id_reserve_and_funding_rules() -> None:
    ledger = Ledger()
    alice, bob = funded(ledger, 25 * XRP), funded(ledger, 20 * XRP)
    create = {"TransactionType": "PaymentChannelCreate", "Destination": bob.address, "SettleDelay": 3600,
              "PublicKey": alice.public_key}
    # reserve with one more object is 12 XRP: 25 - 12 leaves 13 XRP (minus nothing: the fee is checked apart)
    assert submit(ledger, alice, create, Amount=str(13 * XRP + 1)) == "tecUNFUNDED"
    assert submit(ledger, alice, create, Amount="0") == "temBAD_AMOUNT"
    assert submit(ledger, alice, create, Destination=alice.address, Amount="1") == "temDST_IS_SRC"
    assert submit(ledger, alice, create, Destination=Wallet.create().address, Amount="1") == "tecNO_DST"
    seq = ledger.account(alice.address).sequence  # type: ignore[union-attr]
    assert submit(ledger, alice, create, Amount=str(5 * XRP), DestinationTag=7, CancelAfter=2**31) == "tesSUCCESS"
    chan = ledger.channel(channel_id(alice.address, bob.address, seq))
    assert chan is not None
    assert (chan.account, chan.destination, chan.amount, chan.balance) == (alice.address, bob.address, 5 * XRP, 0)
    assert (chan.settle_delay, chan.public_key, chan.destination_tag, chan.cancel_after) == (
        3600, alice.public_key, 7, 2**31)
    assert ledger.account(alice.address).owner_count == 1  # type: ignore[union-attr]
    assert ledger.balance(alice.address) == 25 * XRP - 5 * XRP - 3 * FEE
    # now the owner reserve is 12 XRP: funding more than balance - 12 XRP is unfunded
    fund = {"TransactionType": "PaymentChannelFund", "Channel": chan.channel_id}
    assert submit(ledger, alice, fund, Amount=str(ledger.balance(alice.address) - FEE - 12 * XRP + 1)) == "tecUNFUNDED"
    top_up = ledger.balance(alice.address) - FEE - 13 * XRP  # leaves her exactly 13 XRP
    assert submit(ledger, alice, fund, Amount=str(top_up)) == "tesSUCCESS"
    assert ledger.balance(alice.address) == 13 * XRP
    assert submit(ledger, bob, fund, Amount=str(XRP)) == "tecNO_PERMISSION"
    assert submit(ledger, alice, fund, Channel="AB" * 32, Amount="1") == "tecNO_ENTRY"
    assert ledger.channel(chan.channel_id).amount == 5 * XRP + top_up  # type: ignore[union-attr]
    # a second channel needs two objects' worth of reserve: 14 XRP
    assert submit(ledger, alice, create, Amount="1") == "tecINSUFFICIENT_RESERVE"
    assert ledger.account(alice.address).owner_count == 1  # type: ignore[union-attr]


def test_fund_expiration_rules() -> None:
    ledger = Ledger()
    alice, bob = funded(ledger, 100 * XRP), funded(ledger, 20 * XRP)
    chan = open_channel(ledger, alice, bob, 10 * XRP, settle_delay=100)
    now = ledger.validated.close_time
    fund = {"TransactionType": "PaymentChannelFund", "Channel": chan, "Amount": "1"}
    assert submit(ledger, alice, fund, Expiration=now + 99) == "temBAD_EXPIRATION"
    assert submit(ledger, alice, fund, Expiration=now + 500) == "tesSUCCESS"
    assert ledger.channel(chan).expiration == now + 500  # type: ignore[union-attr]
    # the owner may pull a pending expiration in, but never below close time + SettleDelay
    assert submit(ledger, alice, fund, Expiration=now + 100) == "tesSUCCESS"
    assert ledger.channel(chan).expiration == now + 100  # type: ignore[union-attr]
    assert ledger.channel(chan).amount == 10 * XRP + 2  # type: ignore[union-attr]


def test_claims_signature_amount_and_monotonic_balance() -> None:
    ledger = Ledger()
    alice, bob, eve = funded(ledger, 100 * XRP), funded(ledger, 20 * XRP), funded(ledger, 20 * XRP)
    chan = open_channel(ledger, alice, bob, 10 * XRP)
    bob_start = ledger.balance(bob.address)

    assert submit(ledger, bob, claim_tx(chan, 2 * XRP, alice)) == "tesSUCCESS"
    assert ledger.channel(chan).balance == 2 * XRP  # type: ignore[union-attr]
    assert ledger.balance(bob.address) == bob_start + 2 * XRP - FEE

    bad = claim_tx(chan, 3 * XRP, alice) | {"Signature": claim_signature(alice, chan, 4 * XRP)}
    assert submit(ledger, bob, bad) == "temBAD_SIGNATURE"
    assert submit(ledger, bob, claim_tx(chan, 3 * XRP, eve)) == "temBAD_SIGNER"  # valid, but not the channel key
    assert submit(ledger, bob, claim_tx(chan, 3 * XRP)) == "temBAD_SIGNATURE"  # the destination needs a signature
    assert submit(ledger, bob, claim_tx(chan, 11 * XRP, alice)) == "tecUNFUNDED_PAYMENT"  # above the amount
    assert submit(ledger, bob, claim_tx(chan, 1 * XRP, alice)) == "tecUNFUNDED_PAYMENT"  # decreasing
    assert submit(ledger, bob, claim_tx(chan, 2 * XRP, alice)) == "tecUNFUNDED_PAYMENT"  # not increasing
    assert submit(ledger, eve, claim_tx(chan, 3 * XRP, alice)) == "tecNO_PERMISSION"  # a third party
    assert submit(ledger, bob, claim_tx("CD" * 32, 3 * XRP, alice)) == "tecNO_TARGET"
    # a claim signed for 5 XRP may be redeemed partially (Amount = what the signature covers)
    assert submit(ledger, bob, claim_tx(chan, 4 * XRP, alice, Amount=str(5 * XRP))) == "tesSUCCESS"
    # the source pays out without a signature
    assert submit(ledger, alice, claim_tx(chan, 5 * XRP)) == "tesSUCCESS"
    assert ledger.channel(chan).balance == 5 * XRP  # type: ignore[union-attr]
    assert ledger.balance(bob.address) == bob_start + 5 * XRP - 6 * FEE  # tem costs nothing, tec a fee


def test_source_close_waits_settle_delay_then_refunds() -> None:
    ledger = Ledger()
    alice, bob = funded(ledger, 100 * XRP), funded(ledger, 20 * XRP)
    chan = open_channel(ledger, alice, bob, 10 * XRP, settle_delay=3600)
    assert submit(ledger, bob, claim_tx(chan, 3 * XRP, alice)) == "tesSUCCESS"
    ledger.close()
    alice_before = ledger.balance(alice.address)

    close = {"TransactionType": "PaymentChannelClaim", "Channel": chan, "Flags": 0x00020000}
    assert submit(ledger, alice, close) == "tesSUCCESS"
    expiration = ledger.validated.close_time + 3600
    assert ledger.channel(chan).expiration == expiration  # type: ignore[union-attr]
    assert ledger.account(alice.address).owner_count == 1  # type: ignore[union-attr]
    # during the settle delay the destination still claims
    ledger.clock.advance(3000)
    ledger.close()
    assert submit(ledger, bob, claim_tx(chan, 4 * XRP, alice)) == "tesSUCCESS"
    # renew clears it (only the source), then close again
    assert submit(ledger, bob, close | {"Flags": 0x00010000}) == "tecNO_PERMISSION"
    assert submit(ledger, alice, close | {"Flags": 0x00010000}) == "tesSUCCESS"
    assert ledger.channel(chan).expiration is None  # type: ignore[union-attr]
    assert submit(ledger, alice, close) == "tesSUCCESS"
    assert ledger.channel(chan).expiration == ledger.validated.close_time + 3600  # type: ignore[union-attr]
    # past the expiration, any transaction touching the channel removes it and refunds the source
    ledger.clock.advance(3601)
    ledger.close()
    bob_before = ledger.balance(bob.address)
    assert submit(ledger, bob, claim_tx(chan, 5 * XRP, alice)) == "tesSUCCESS"
    assert ledger.channel(chan) is None
    assert ledger.balance(bob.address) == bob_before - FEE  # the late claim paid nothing
    assert ledger.balance(alice.address) == alice_before - 3 * FEE + 6 * XRP
    assert ledger.account(alice.address).owner_count == 0  # type: ignore[union-attr]


def test_destination_close_is_immediate_and_cancel_after_expires() -> None:
    ledger = Ledger()
    alice, bob = funded(ledger, 100 * XRP), funded(ledger, 20 * XRP)
    chan = open_channel(ledger, alice, bob, 10 * XRP)
    before = ledger.balance(alice.address)
    assert submit(ledger, bob, claim_tx(chan, 1 * XRP, alice, Flags=0x00020000)) == "tesSUCCESS"
    assert ledger.channel(chan) is None
    assert ledger.balance(alice.address) == before + 9 * XRP

    # a fully paid channel closes at once when its source asks
    chan2 = open_channel(ledger, alice, bob, 2 * XRP)
    assert submit(ledger, alice, claim_tx(chan2, 2 * XRP, Flags=0x00020000)) == "tesSUCCESS"
    assert ledger.channel(chan2) is None

    cancel_at = ledger.validated.close_time + 60
    chan3 = open_channel(ledger, alice, bob, 3 * XRP, CancelAfter=cancel_at)
    ledger.clock.advance(61)
    ledger.close()
    before = ledger.balance(alice.address)
    fund = {"TransactionType": "PaymentChannelFund", "Channel": chan3, "Amount": str(XRP)}
    assert submit(ledger, alice, fund) == "tesSUCCESS"
    assert ledger.channel(chan3) is None
    assert ledger.balance(alice.address) == before + 3 * XRP - FEE
    assert ledger.account(alice.address).owner_count == 0  # type: ignore[union-attr]
    # a channel cannot be created already cancelled
    tx = {"TransactionType": "PaymentChannelCreate", "Destination": bob.address, "Amount": "1",
          "SettleDelay": 1, "PublicKey": alice.public_key, "CancelAfter": ledger.validated.close_time}
    assert submit(ledger, alice, tx) == "tecEXPIRED"


def test_metadata_and_hash_match_xrpl_py() -> None:
    ledger = Ledger()
    alice, bob = funded(ledger, 100 * XRP), funded(ledger, 20 * XRP)
    blob = signed(ledger, alice, {"TransactionType": "Payment", "Destination": bob.address, "Amount": "777"})
    outcome = ledger.submit(blob)
    assert outcome.hash == Payment.from_blob(blob).get_hash()
    closed, records = ledger.close()
    (rec,) = records
    assert rec.hash == outcome.hash and rec.validated and rec.ledger_index == closed.index
    changes = {n["ModifiedNode"]["FinalFields"]["Account"]: n["ModifiedNode"] for n in rec.meta["AffectedNodes"]}
    assert changes[bob.address]["PreviousFields"]["Balance"] == str(20 * XRP)
    assert changes[bob.address]["FinalFields"]["Balance"] == str(20 * XRP + 777)
    assert changes[alice.address]["PreviousFields"]["Sequence"] == rec.tx_json["Sequence"]
    assert rec.meta["TransactionResult"] == "tesSUCCESS" and rec.meta["delivered_amount"] == "777"


# -- the WebSocket API with xrpl-py -------------------------------------------------------------------------


async def test_a_client_that_stalls_within_ripple_libs_window_gets_its_transaction_in(xrpl_emulator: XrplEmulator) -> None:
    # ripple-lib (the JS parent's tx submitter) sets LastLedgerSequence = last validated ledger it saw + 3, then
    # fetches the sequence and fee, signs and submits. A process stalled for a second on a busy machine in
    # between must still get in, as it would against rippled (a ledger every 3-4 s): only ledgers with
    # transactions close at the fast pace.
    emu = xrpl_emulator
    alice, bob = Wallet.create(), Wallet.create()
    emu.fund(alice.address, 100 * XRP)
    emu.fund(bob.address, 100 * XRP)
    seen = emu.ledger.validated.index
    blob = signed(emu.ledger, alice, {"TransactionType": "Payment", "Destination": bob.address, "Amount": "5"},
                  LastLedgerSequence=seen + 3)
    time.sleep(1.0)  # the stall: five 0.2 s ledgers before the fix
    async with AsyncWebsocketClient(emu.url) as client:
        result = (await client.request(SubmitOnly(tx_blob=blob))).result
    assert result["engine_result"] == "tesSUCCESS", result
    deadline = time.monotonic() + 10
    while not emu.ledger.transactions[result["tx_json"]["hash"]].validated:
        assert time.monotonic() < deadline, "a waiting transaction was not validated"
        time.sleep(0.05)


def test_ledgers_close_fast_only_with_transactions_waiting(xrpl_emulator: XrplEmulator) -> None:
    emu = xrpl_emulator
    start = emu.ledger.validated.index
    time.sleep(1.0)
    assert emu.ledger.validated.index - start <= 1  # idle: one close per idle_close_interval (2 s) at most
    alice = Wallet.create()
    before = emu.ledger.validated.index
    emu.call(lambda: emu.ledger.fund(alice.address, 50 * XRP))
    deadline = time.monotonic() + 10
    while emu.ledger.validated.index == before:
        assert time.monotonic() < deadline, "the ledger with a waiting transaction did not close"
        time.sleep(0.02)


async def test_xrpl_py_payments_and_channels(xrpl_emulator: XrplEmulator) -> None:
    emu = xrpl_emulator
    alice, bob = Wallet.create(), Wallet.create()
    emu.fund(alice.address, 100 * XRP)
    async with AsyncWebsocketClient(emu.url) as client:
        info = await client.request(AccountInfo(account=bob.address))
        assert info.result["error"] == "actNotFound"
        assert (await client.request(ServerInfo())).result["info"]["validated_ledger"]["reserve_base_xrp"] == 10
        assert (await client.request(Fee())).result["drops"]["base_fee"] == "10"

        r = await submit_and_wait(Payment(account=alice.address, destination=bob.address, amount=str(30 * XRP)),
                                  client, alice)
        assert r.result["validated"] and r.result["meta"]["TransactionResult"] == "tesSUCCESS"
        tx = await client.request(Tx(transaction=r.result["hash"]))
        assert tx.result["validated"] and tx.result["tx_json"]["Destination"] == bob.address

        seq = emu.ledger.account(alice.address).sequence  # type: ignore[union-attr]
        await submit_and_wait(PaymentChannelCreate(account=alice.address, destination=bob.address,
                                                   amount=str(10 * XRP), settle_delay=3600,
                                                   public_key=alice.public_key), client, alice)
        chan = channel_id(alice.address, bob.address, seq)
        channels = (await client.request(AccountChannels(account=alice.address))).result["channels"]
        assert [(c["channel_id"], c["amount"], c["balance"], c["public_key_hex"]) for c in channels] == [
            (chan, str(10 * XRP), "0", alice.public_key)]
        await submit_and_wait(PaymentChannelFund(account=alice.address, channel=chan, amount=str(XRP)),
                              client, alice)
        entry = await client.request(LedgerEntry(index=chan))
        assert entry.result["node"]["Amount"] == str(11 * XRP)
        missing = await client.request(LedgerEntry(index="EF" * 32))
        assert missing.result["error"] == "entryNotFound"

        bob_before = emu.ledger.balance(bob.address)
        signature = claim_signature(alice, chan, 4 * XRP)
        await submit_and_wait(PaymentChannelClaim(account=bob.address, channel=chan, balance=str(4 * XRP),
                                                  signature=signature, public_key=alice.public_key), client, bob)
        assert emu.ledger.channel(chan).balance == 4 * XRP  # type: ignore[union-attr]
        assert emu.ledger.balance(bob.address) == bob_before + 4 * XRP - FEE

        bad = PaymentChannelClaim(account=bob.address, channel=chan, balance=str(5 * XRP),
                                  signature=claim_signature(bob, chan, 5 * XRP), public_key=alice.public_key)
        with pytest.raises(XRPLReliableSubmissionException, match="temBAD_SIGNATURE"):
            await submit_and_wait(bad, client, bob)
        too_much = PaymentChannelClaim(account=bob.address, channel=chan, balance=str(12 * XRP),
                                       signature=claim_signature(alice, chan, 12 * XRP),
                                       public_key=alice.public_key)
        with pytest.raises(XRPLReliableSubmissionException, match="tecUNFUNDED_PAYMENT"):
            await submit_and_wait(too_much, client, bob)

        # the source closes; after SettleDelay (the clock jumps) the next touch refunds the rest
        await submit_and_wait(PaymentChannelClaim(account=alice.address, channel=chan,
                                                  flags=PaymentChannelClaimFlag.TF_CLOSE), client, alice)
        assert emu.ledger.channel(chan).expiration is not None  # type: ignore[union-attr]
        emu.advance_time(3600)
        alice_before = emu.ledger.balance(alice.address)
        await submit_and_wait(PaymentChannelClaim(account=alice.address, channel=chan), client, alice)
        assert emu.ledger.channel(chan) is None
        assert emu.ledger.balance(alice.address) == alice_before + 7 * XRP - FEE
        assert (await client.request(AccountInfo(account=alice.address))).result["account_data"]["OwnerCount"] == 0


async def test_bad_requests_get_rippled_errors(xrpl_emulator: XrplEmulator) -> None:
    import websockets

    async with websockets.connect(xrpl_emulator.url) as ws:
        for request, error in (
            ("not json", "jsonInvalid"),
            (json.dumps([1]), "jsonInvalid"),
            (json.dumps({"id": 1, "command": "nope"}), "unknownCmd"),
            (json.dumps({"id": 2, "command": "account_info", "account": "rXYZ"}), "actMalformed"),
            (json.dumps({"id": 3, "command": "submit", "tx_blob": "00"}), "invalidTransaction"),
            (json.dumps({"id": 4, "command": "tx", "transaction": "AB" * 32}), "txnNotFound"),
            (json.dumps({"id": 5, "command": "subscribe", "streams": ["nonsense"]}), "malformedStream"),
        ):
            await ws.send(request)
            reply = json.loads(await ws.recv())
            assert reply["status"] == "error" and reply["error"] == error, reply
        await ws.send(json.dumps({"id": 6, "command": "subscribe", "streams": ["ledger"]}))
        reply = json.loads(await ws.recv())
        assert reply["id"] == 6 and reply["result"]["validated_ledgers"].startswith("1-")
        event = json.loads(await ws.recv())
        assert event["type"] == "ledgerClosed"
        assert event["validated_ledgers"] == f"1-{event['ledger_index']}"


# -- the WebSocket API with ripple-lib 0.21, as the asym server uses it ------------------------------------


def _command(p: NodeProcess, cmd: str, **args: Any) -> dict[str, Any]:
    p.send({"cmd": cmd, **args})
    m = p.expect_sync(r'^\{"event":"(?:result|error)","cmd":"' + cmd + '".*$', timeout=20)
    reply: dict[str, Any] = json.loads(m.group(0))
    return reply


def _ripple_lib(node: NodeRunner, emu: XrplEmulator, wallet: Wallet) -> tuple[NodeProcess, dict[str, Any]]:
    assert wallet.seed is not None
    p = node.start("xrpl-ripple-lib-client.js", emu.url, wallet.seed, stream_fix=False)
    ready = p.event_sync("ready")
    assert ready["address"] == wallet.address
    assert 3 <= ready["ledgerVersion"] <= emu.ledger.validated.index  # the funding ledgers are validated
    return p, ready


def test_ripple_lib_does_what_the_asym_server_does(node: NodeRunner, xrpl_emulator: XrplEmulator) -> None:
    emu = xrpl_emulator
    server, client = Wallet.create(), Wallet.create()
    emu.fund(server.address, 100 * XRP)
    emu.fund(client.address, 20 * XRP)
    p, _ = _ripple_lib(node, emu, server)

    info = _command(p, "getAccountInfo")["result"]
    assert info["xrpBalance"] == "100" and info["ownerCount"] == 0
    assert _command(p, "getServerInfo")["result"]["validatedLedger"]["reserveIncrementXRP"] == "2"
    assert _command(p, "getFee")["result"] == "0.000012"

    seq = emu.ledger.account(server.address).sequence  # type: ignore[union-attr]
    created = _command(p, "submit", fn="preparePaymentChannelCreate", params={
        "amount": "10", "destination": client.address, "settleDelay": 3600,
        "publicKey": client.public_key, "sourceTag": 42})
    assert created["event"] == "result", created
    result = created["result"]
    # the submitter resolved on the validated transaction event, with the real hash and the channel ripple-lib
    # computes (paychan-shared's computeChannelId) is the one the ledger created
    assert result["engineResult"] == "tesSUCCESS" and result["validated"] is True
    chan = channel_id(server.address, client.address, seq)
    assert result["channelId"] == chan
    assert emu.ledger.transactions[result["transaction"]["hash"]].validated
    assert result["paychan"]["amount"] == "10" and result["paychan"]["settleDelay"] == 3600
    assert result["paychan"]["sourceTag"] == 42 and "expiration" not in result["paychan"]
    assert emu.ledger.channel(chan).amount == 10 * XRP  # type: ignore[union-attr]

    missing = _command(p, "getPaymentChannel", id="12" * 32)
    assert missing["event"] == "error" and missing["message"] == "entryNotFound"
    tx = _command(p, "getTransaction", id=result["transaction"]["hash"])["result"]
    assert tx["outcome"]["result"] == "tesSUCCESS"
    assert tx["outcome"]["balanceChanges"][server.address] == [{"currency": "XRP", "value": "-10.000012"}]

    funded_ev = _command(p, "submit", fn="preparePaymentChannelFund", params={"channel": chan, "amount": "1"})
    assert funded_ev["result"]["engineResult"] == "tesSUCCESS"
    # a failing transaction rejects the submitter's promise (the source cannot exceed the channel amount)
    failed = _command(p, "submit", fn="preparePaymentChannelClaim", params={"channel": chan, "balance": "12"})
    assert failed["event"] == "error" and "tecUNFUNDED_PAYMENT" in failed["message"]
    assert _command(p, "getPaymentChannel", id=chan)["result"]["amount"] == "11"

    # ledger history stays complete, so the submitter never needs its fallback server
    seen = _command(p, "ledgersSeen")["result"]
    assert len(seen) >= 2 and seen == sorted(seen)
    assert _command(p, "hasLedgerVersion", version=2)["result"] is True

    # the real IlpPluginAsymServer connects to the emulator and sees its balance and reserve
    admin = _command(p, "asymAdminInfo", port=free_port())
    assert admin["event"] == "result", admin
    assert admin["result"]["xrpAddress"] == server.address
    expected_total = emu.ledger.balance(server.address) / XRP
    assert float(admin["result"]["xrpBalance"]["total"]) == expected_total
    assert admin["result"]["xrpBalance"]["reserved"] == "2"  # one owned channel x 2 XRP


def test_native_sodium_claims_verify_and_settle(node: NodeRunner, xrpl_emulator: XrplEmulator) -> None:
    # build-native.sh is idempotent: quick when sodium-native is already built
    build = subprocess.run([str(JS_DIR / "build-native.sh")], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout + build.stderr

    emu = xrpl_emulator
    server, client = Wallet.create(), Wallet.create()
    emu.fund(server.address, 100 * XRP)
    emu.fund(client.address, 20 * XRP)
    p, ready = _ripple_lib(node, emu, server)
    assert ready["nativeSodium"] is True, "sodium-universal fell back to sodium-javascript"

    # the channel key exactly as the asym server derives it for a client account name
    key = _command(p, "sodiumClaim", account="test.alice", channel="00" * 32, drops="1")["result"]["publicKey"]
    created = _command(p, "submit", fn="preparePaymentChannelCreate", params={
        "amount": "10", "destination": client.address, "settleDelay": 3600, "publicKey": key})["result"]
    chan = created["channelId"]
    claim = _command(p, "sodiumClaim", account="test.alice", channel=chan, drops="2500000")["result"]
    assert claim["message"] == (b"CLM\x00" + bytes.fromhex(chan) + (2_500_000).to_bytes(8, "big")).hex().upper()
    Ed25519PublicKey.from_public_bytes(bytes.fromhex(key[2:])).verify(
        bytes.fromhex(claim["signature"]), bytes.fromhex(claim["message"]))

    # and the ledger pays it out to the destination, to the drop
    before = emu.ledger.balance(client.address)
    tx = {"TransactionType": "PaymentChannelClaim", "Channel": chan, "Balance": "2500000",
          "Signature": claim["signature"], "PublicKey": key}
    assert emu.call(lambda: submit(emu.ledger, client, tx)) == "tesSUCCESS"
    assert emu.ledger.balance(client.address) == before + 2_500_000 - FEE
    assert emu.ledger.channel(chan).balance == 2_500_000  # type: ignore[union-attr]

