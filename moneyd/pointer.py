"""Payment pointers (RFC 26): ``$host/path`` is shorthand for ``https://host/path``."""

from __future__ import annotations

import re

from .wire.errors import CodecError

# RFC 26 host: a DNS name (no userinfo, no port). We accept the characters a hostname may hold.
_HOST = re.compile(r"\A[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\Z")
# RFC 3986 path characters (pchar and "/"), minus what would start a query or fragment.
_PATH = re.compile(r"\A(?:/(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})*)*\Z")


def resolve(pointer: str) -> str:
    """The https URL a payment pointer stands for, or CodecError saying what is wrong with it."""
    if not pointer.startswith("$"):
        raise CodecError(f"payment pointer {pointer!r} must start with '$'")
    rest = pointer[1:]
    if not rest:
        raise CodecError("payment pointer '$' has no host")
    for bad, what in (("?", "a query"), ("#", "a fragment")):
        if bad in rest:
            raise CodecError(f"payment pointer {pointer!r} must not contain {what} ('{bad}')")
    host, slash, path = rest.partition("/")
    if "@" in host:
        raise CodecError(f"payment pointer {pointer!r} must not contain user info ('user@')")
    if ":" in host:
        raise CodecError(f"payment pointer {pointer!r} must not contain a port or scheme ('{host}')")
    if not _HOST.match(host):
        raise CodecError(f"payment pointer {pointer!r} has an invalid host {host!r}")
    path = slash + path
    if path in ("", "/"):
        path = "/.well-known/pay"
    elif not _PATH.match(path):
        raise CodecError(f"payment pointer {pointer!r} has an invalid path {path!r}")
    return f"https://{host}{path}"
