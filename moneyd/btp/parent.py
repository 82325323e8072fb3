"""BTP credentials for an uplink's parent, derived from the uplink's secret as the JS moneyd uplinks derive them.

token = hex(HMAC-SHA256(key=HMAC-SHA256(key="parent_btp_uri", msg=host + name), msg=secret)), where ``host`` is the
parent's host as configured (``host`` or ``host:port``) and ``secret`` the uplink's secret as a string (the XRP
seed; the Ethereum key as 0x-prefixed lowercase hex). The same secret and parent always give the same token, so
the parent's mini-accounts store recognises us after a reinstall.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Final
from urllib.parse import urlsplit

PARENT_BTP_HMAC_KEY: Final = b"parent_btp_uri"


class ParentError(ValueError):
    """A parent or account name that cannot make a BTP URL; the message says what to give instead."""


_NAME_RE: Final = re.compile(r"[A-Za-z0-9_~-]{1,128}")
_HOST_RE: Final = re.compile(r"[A-Za-z0-9.\-]+(?::[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?")
_LOOPBACK: Final = ("127.0.0.1", "localhost", "[::1]")


def without_token(url: str) -> str:
    """The BTP URL with its token replaced by ``***``, for messages and status pages."""
    head, sep, tail = url.partition("@")
    if not sep:
        return url
    scheme, _, cred = head.partition("://")
    return f"{scheme}://{cred.split(':')[0]}:***@{tail}"


def btp_token(host: str, name: str, secret: str) -> str:
    """The auth_token the parent at ``host`` expects from account ``name``."""
    inner = hmac.new(PARENT_BTP_HMAC_KEY, (host + name).encode(), hashlib.sha256).digest()
    return hmac.new(inner, secret.encode(), hashlib.sha256).hexdigest()


def check_name(name: str) -> str:
    if not _NAME_RE.fullmatch(name):
        raise ParentError(f"invalid account name {name!r}: use 1-128 of A-Z a-z 0-9 _ ~ - (it becomes part of an ILP address)")
    return name


def split_parent(parent: str) -> tuple[str, str]:
    """(scheme, host) of a configured parent: ``host[:port]`` means btp+wss; ``btp+wss://host[:port]`` too;
    ``btp+ws://`` (no TLS) is allowed only for a loopback host (tests, a parent on this machine)."""
    text = parent.strip()
    if "://" in text:
        parts = urlsplit(text)
        if parts.scheme not in ("btp+ws", "btp+wss"):
            raise ParentError(f"parent {parent!r}: the scheme must be btp+wss:// (or btp+ws:// on 127.0.0.1)")
        if parts.username or parts.password or "@" in parts.netloc:
            raise ParentError(f"parent {parent!r}: give the host only; moneyd derives the name and token itself")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ParentError(f"parent {parent!r}: give scheme and host[:port] only, no path")
        scheme, host = parts.scheme, parts.netloc
    else:
        scheme, host = "btp+wss", text
    if not _HOST_RE.fullmatch(host):
        raise ParentError(f"invalid parent {parent!r}: expected a host such as 'example.com' or 'example.com:7443'")
    if scheme == "btp+ws" and host.rsplit(":", 1)[0] not in _LOOPBACK and not host.startswith("[::1]"):
        raise ParentError(f"parent {parent!r}: btp+ws:// is unencrypted; use btp+wss:// for a parent on another machine")
    return scheme, host


def parent_url(parent: str, name: str, secret: str) -> str:
    """``btp+wss://name:token@host`` (or btp+ws:// for a loopback parent)."""
    scheme, host = split_parent(parent)
    check_name(name)
    return f"{scheme}://{name}:{btp_token(host, name, secret)}@{host}"
