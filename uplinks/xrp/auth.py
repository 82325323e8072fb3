"""BTP credentials for the parent, derived from the XRP secret exactly as the JS moneyd-uplink-xrp does.

token = hex(HMAC-SHA256(key=HMAC-SHA256(key="parent_btp_uri", msg=parent + name), msg=xrp_secret)), where
``parent`` is the configured BTP host string as typed (``host`` or ``host:port``). The same secret and parent
always give the same token, so the parent's mini-accounts store recognises us after a reinstall.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Final

from .errors import ConfigError

PARENT_BTP_HMAC_KEY: Final = b"parent_btp_uri"

# The name becomes an ILP address segment at the parent (prefix + name) and the user part of a URL.
_NAME_RE: Final = re.compile(r"[A-Za-z0-9_~-]+")
# host, host:port, optionally a path; no scheme, no user info, no whitespace.
_PARENT_RE: Final = re.compile(r"[A-Za-z0-9.\-\[\]:]+(?:/[!-~]*)?")


def hmac_sha256(key: bytes | str, message: bytes | str) -> bytes:
    """Node's ``crypto.createHmac('sha256', key).update(message).digest()`` (strings are UTF-8)."""
    k = key.encode("utf-8") if isinstance(key, str) else key
    m = message.encode("utf-8") if isinstance(message, str) else message
    return hmac.new(k, m, hashlib.sha256).digest()


def check_name(name: str) -> str:
    if not _NAME_RE.fullmatch(name) or len(name) > 128:
        raise ConfigError(
            f"invalid account name {name!r}: use 1-128 of A-Z a-z 0-9 _ ~ - (it becomes part of an ILP address)"
        )
    return name


def check_parent(parent: str) -> str:
    if not parent or not _PARENT_RE.fullmatch(parent) or "@" in parent or "://" in parent:
        raise ConfigError(
            f"invalid parent {parent!r}: expected a BTP host such as 'example.com' or 'host:7443'"
        )
    return parent


def btp_token(parent: str, name: str, xrp_secret: str) -> str:
    """The auth_token the parent expects from account ``name``."""
    return hmac_sha256(hmac_sha256(PARENT_BTP_HMAC_KEY, parent + name), xrp_secret).hex()


def parent_url(parent: str, name: str, xrp_secret: str, scheme: str = "btp+wss") -> str:
    """``btp+wss://name:token@parent``, the server option the JS uplink writes into its config."""
    check_parent(parent)
    check_name(name)
    return f"{scheme}://{name}:{btp_token(parent, name, xrp_secret)}@{parent}"
