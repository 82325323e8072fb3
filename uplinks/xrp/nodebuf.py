"""Node.js ``Buffer.from(string, 'base64')``, byte for byte, leniency included.

The asym server proves channel ownership over ``Buffer.from(account, 'base64')`` where ``account`` is an ILP
address such as ``g.example.alice``: not base64 at all. Node decodes it anyway (it skips characters outside the
alphabet, stops at ``=``, accepts both the standard and URL-safe alphabets, truncates UTF-16 code units to their
low byte and sizes the output from the string length), so our ``channel_signature`` must sign exactly those bytes
or the server refuses our channel. This is a port of Node 20's decoder (``lib/buffer.js`` ``base64ByteLength`` and
``src/base64-inl.h``), checked against node itself in tests/uplinks/xrp/test_oracle.py.
"""

from __future__ import annotations

from typing import Final

_EQ: Final = 0x3D
# JS's Buffer pool: strings whose decoded size estimate reaches poolSize >>> 1 are decoded by C++ directly,
# which sizes the output differently.
_POOL_HALF: Final = 8 * 1024 >> 1


def _table() -> tuple[int, ...]:
    t = [255] * 256
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    for i, ch in enumerate(alphabet):
        t[ord(ch)] = i
    t[ord("+")] = t[ord("-")] = 62
    t[ord("/")] = t[ord("_")] = 63
    return tuple(t)


_UNBASE64: Final = _table()


def utf16_units(s: str) -> list[int]:
    """The UTF-16 code units of s, as a JS string holds them (lone surrogates stay as they are)."""
    units: list[int] = []
    for ch in s:
        cp = ord(ch)
        if cp > 0xFFFF:
            cp -= 0x10000
            units.append(0xD800 + (cp >> 10))
            units.append(0xDC00 + (cp & 0x3FF))
        else:
            units.append(cp)
    return units


def _js_byte_length(units: list[int]) -> int:
    n = len(units)
    if n and units[n - 1] == _EQ:
        n -= 1
    if n > 1 and units[n - 1] == _EQ:
        n -= 1
    return (n * 3) >> 2


def _decoded_size_fast(size: int) -> int:
    return (size // 4) * 3 + (size % 4 + 1) // 2 if size > 1 else 0


def _decoded_size(units: list[int]) -> int:
    size = len(units)
    if size < 2:
        return 0
    if units[size - 1] == _EQ:
        size -= 1
        if units[size - 1] == _EQ:
            size -= 1
    return _decoded_size_fast(size)


class _Decoder:
    """src/base64-inl.h: a fast path over aligned groups of four, a slow path that skips junk."""

    def __init__(self, src: list[int], dstlen: int) -> None:
        self.src = [u & 0xFF for u in src]  # static_cast<uint8_t>(src[i])
        self.dstlen = dstlen
        self.dst = bytearray()
        self.i = 0

    def _slow_group(self) -> bool:
        src, srclen, dst = self.src, len(self.src), self.dst
        hi = 0
        for step in range(4):
            while True:
                c = src[self.i]
                lo = _UNBASE64[c]
                self.i += 1
                if lo < 64:
                    break
                if c == _EQ or self.i >= srclen:
                    return False
            if step == 1:
                dst.append(((hi & 0x3F) << 2 | (lo & 0x30) >> 4) & 0xFF)
            elif step == 2:
                dst.append(((hi & 0x0F) << 4 | (lo & 0x3C) >> 2) & 0xFF)
            elif step == 3:
                dst.append(((hi & 0x03) << 6 | lo) & 0xFF)
            if self.i >= srclen or len(dst) >= self.dstlen:
                return False
            hi = lo
        return True

    def run(self, decoded_size: int) -> bytes:
        src, srclen = self.src, len(self.src)
        available = min(self.dstlen, decoded_size)
        max_k = available // 3 * 3
        max_i = srclen // 4 * 4
        while self.i < max_i and len(self.dst) < max_k:
            a, b, c, d = (_UNBASE64[x] for x in src[self.i : self.i + 4])
            if (a | b | c | d) & 0x80:
                if not self._slow_group():
                    return bytes(self.dst)
                max_i = self.i + (srclen - self.i) // 4 * 4
            else:
                self.dst += bytes(((a << 2 | b >> 4) & 0xFF, (b << 4 | c >> 2) & 0xFF, (c << 6 | d) & 0xFF))
                self.i += 4
        if self.i < srclen and len(self.dst) < self.dstlen:
            self._slow_group()
        return bytes(self.dst)


def base64_decode(s: str) -> bytes:
    """Exactly the bytes of Node's ``Buffer.from(s, 'base64')`` (also what ``'base64url'`` gives)."""
    units = utf16_units(s)
    if not units:
        return b""
    dstlen = _js_byte_length(units)
    if dstlen >= _POOL_HALF:
        dstlen = _decoded_size_fast(len(units))  # StringBytes::Size, the non-pooled path
    if dstlen == 0:
        return b""
    return _Decoder(units, dstlen).run(_decoded_size(units))
