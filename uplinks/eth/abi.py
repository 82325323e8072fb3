"""The Machinomy Unidirectional contract, as far as the ETH uplink uses it.

Written from the function signatures in ilp-plugin-ethereum 3.0.0-beta.20 (``build/abi/Unidirectional-*.json``).
The mainnet deployment is an older build whose settling period is a ``uint32`` (so ``open`` has another selector);
every other chain, including any chain reached with an explicit contract address, uses the ``uint256`` build,
exactly as the JS plugin chooses.
"""

from __future__ import annotations

from typing import Any, Final

MAINNET_CHAIN_ID: Final = 1

# The deployments the JS plugin knows (utils/channel.js UNIDIRECTIONAL_METADATA), by chain id.
KNOWN_CONTRACTS: Final[dict[int, str]] = {
    1: "0x08e4f70109ccc5135f50cc359d24cb7686247df4",  # mainnet
    3: "0x8ffdea290f4dcdc553841a432e56aa26c91ab777",  # ropsten
    4: "0x71ed284ea8e26e14b8f2d9b98ce4eff5a1f25120",  # rinkeby
    42: "0x481029bf134710832f5b9debdd10275fb7816f59",  # kovan
}


def _param(type_: str, name: str, indexed: bool | None = None) -> dict[str, Any]:
    p: dict[str, Any] = {"type": type_, "name": name}
    if indexed is not None:
        p["indexed"] = indexed
    return p


def _fn(name: str, inputs: list[dict[str, Any]], outputs: list[dict[str, Any]], mutability: str) -> dict[str, Any]:
    return {
        "type": "function",
        "name": name,
        "inputs": inputs,
        "outputs": outputs,
        "stateMutability": mutability,
        "payable": mutability == "payable",
        "constant": mutability == "view",
    }


def _event(name: str, inputs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "event", "name": name, "inputs": inputs, "anonymous": False}


def unidirectional_abi(chain_id: int) -> list[dict[str, Any]]:
    """The ABI of the Unidirectional contract deployed on ``chain_id``."""
    period = "uint32" if chain_id == MAINNET_CHAIN_ID else "uint256"
    cid = _param("bytes32", "channelId")
    ok = [_param("bool", "")]
    return [
        _fn(
            "channels",
            [_param("bytes32", "")],
            [
                _param("address", "sender"),
                _param("address", "receiver"),
                _param("uint256", "value"),
                _param(period, "settlingPeriod"),
                _param("uint256", "settlingUntil"),
            ],
            "view",
        ),
        _fn("open", [cid, _param("address", "receiver"), _param(period, "settlingPeriod")], [], "payable"),
        _fn("deposit", [cid], [], "payable"),
        _fn("claim", [cid, _param("uint256", "payment"), _param("bytes", "signature")], [], "nonpayable"),
        _fn("startSettling", [cid], [], "nonpayable"),
        _fn("settle", [cid], [], "nonpayable"),
        _fn("canDeposit", [cid, _param("address", "origin")], ok, "view"),
        _fn("canStartSettling", [cid, _param("address", "origin")], ok, "view"),
        _fn("canSettle", [cid], ok, "view"),
        _fn(
            "canClaim",
            [cid, _param("uint256", "payment"), _param("address", "origin"), _param("bytes", "signature")],
            ok,
            "view",
        ),
        _fn("isPresent", [cid], ok, "view"),
        _fn("isAbsent", [cid], ok, "view"),
        _fn("isSettling", [cid], ok, "view"),
        _fn("isOpen", [cid], ok, "view"),
        _fn("paymentDigest", [cid, _param("uint256", "payment")], [_param("bytes32", "")], "view"),
        _event(
            "DidOpen",
            [
                _param("bytes32", "channelId", True),
                _param("address", "sender", True),
                _param("address", "receiver", True),
                _param("uint256", "value", False),
            ],
        ),
        _event("DidDeposit", [_param("bytes32", "channelId", True), _param("uint256", "deposit", False)]),
        _event("DidClaim", [_param("bytes32", "channelId", True)]),
        _event("DidStartSettling", [_param("bytes32", "channelId", True)]),
        _event("DidSettle", [_param("bytes32", "channelId", True)]),
    ]
