"""OER primitives as Interledger uses them (RFC 30).

Strict on read: canonical lengths only, no leading zeros in a VarUInt, nothing read past the end.
"""

from __future__ import annotations

from .errors import CodecError

UINT64_MAX = (1 << 64) - 1


class Reader:
    """A cursor over bytes; every read checks bounds and raises CodecError, never IndexError."""

    __slots__ = ("_buf", "_end", "_pos")

    def __init__(self, buf: bytes | bytearray | memoryview, start: int = 0, end: int | None = None) -> None:
        self._buf = bytes(buf) if not isinstance(buf, bytes) else buf
        self._pos = start
        self._end = len(self._buf) if end is None else end

    @property
    def remaining(self) -> int:
        return self._end - self._pos

    def at_end(self) -> bool:
        return self._pos >= self._end

    def expect_end(self, what: str) -> None:
        if self._pos != self._end:
            raise CodecError(f"{what}: {self._end - self._pos} unexpected trailing byte(s)")

    def read(self, n: int, what: str = "value") -> bytes:
        pos = self._pos
        if n < 0 or pos + n > self._end:
            raise CodecError(f"{what}: needs {n} byte(s) but only {self._end - pos} remain")
        self._pos = pos + n
        return self._buf[pos : pos + n]

    def peek_uint8(self, what: str = "uint8") -> int:
        if self._pos >= self._end:
            raise CodecError(f"{what}: unexpected end of data")
        return self._buf[self._pos]

    def read_uint8(self, what: str = "uint8") -> int:
        if self._pos >= self._end:
            raise CodecError(f"{what}: unexpected end of data")
        v = self._buf[self._pos]
        self._pos += 1
        return v

    def read_uint(self, size: int, what: str = "uint") -> int:
        return int.from_bytes(self.read(size, what), "big")

    def read_uint16(self, what: str = "uint16") -> int:
        return self.read_uint(2, what)

    def read_uint32(self, what: str = "uint32") -> int:
        return self.read_uint(4, what)

    def read_uint64(self, what: str = "uint64") -> int:
        return self.read_uint(8, what)

    def read_length(self, what: str = "length") -> int:
        first = self.read_uint8(what)
        if first < 0x80:
            return first
        n = first & 0x7F
        if n == 0:
            raise CodecError(f"{what}: indefinite length (0x80) is not allowed")
        if n > 6:
            # 2^48 bytes is far beyond any buffer; refuse before allocating or looping.
            raise CodecError(f"{what}: length of length {n} is too large")
        raw = self.read(n, what)
        if raw[0] == 0:
            raise CodecError(f"{what}: non-canonical length (leading zero byte)")
        value = int.from_bytes(raw, "big")
        if value < 0x80:
            raise CodecError(f"{what}: non-canonical length {value} in long form")
        return value

    def read_var_octets(self, what: str = "octet string") -> bytes:
        return self.read(self.read_length(what), what)

    def read_var_octets_reader(self, what: str = "octet string") -> Reader:
        """A sub-reader over the next variable-length octet string, without copying it."""
        n = self.read_length(what)
        if self._pos + n > self._end:
            raise CodecError(f"{what}: needs {n} byte(s) but only {self._end - self._pos} remain")
        sub = Reader(self._buf, self._pos, self._pos + n)
        self._pos += n
        return sub

    def read_var_uint_bytes(self, what: str) -> bytes:
        raw = self.read_var_octets(what)
        if not raw:
            raise CodecError(f"{what}: empty VarUInt")
        if len(raw) > 1 and raw[0] == 0:
            raise CodecError(f"{what}: non-canonical VarUInt (leading zero byte)")
        return raw

    def read_var_uint(self, what: str = "VarUInt") -> int:
        """A VarUInt that must fit in 64 bits."""
        raw = self.read_var_uint_bytes(what)
        if len(raw) > 8:
            raise CodecError(f"{what}: VarUInt of {len(raw)} bytes does not fit in 64 bits")
        return int.from_bytes(raw, "big")

    def read_var_uint_saturating(self, what: str = "VarUInt") -> int:
        """A VarUInt where anything wider than 64 bits means 2^64-1 (STREAM's rule)."""
        raw = self.read_var_uint_bytes(what)
        return UINT64_MAX if len(raw) > 8 else int.from_bytes(raw, "big")

    def read_ascii(self, n: int, what: str) -> str:
        raw = self.read(n, what)
        if not raw.isascii():
            raise CodecError(f"{what}: not an ASCII (IA5) string")
        return raw.decode("ascii")

    def read_var_ascii(self, what: str) -> str:
        raw = self.read_var_octets(what)
        if not raw.isascii():
            raise CodecError(f"{what}: not an ASCII (IA5) string")
        return raw.decode("ascii")

    def read_var_utf8(self, what: str) -> str:
        try:
            return self.read_var_octets(what).decode("utf-8")
        except UnicodeDecodeError as e:
            raise CodecError(f"{what}: not valid UTF-8 ({e.reason})") from None


def encode_length(n: int) -> bytes:
    if n < 0:
        raise CodecError(f"length {n} is negative")
    if n < 0x80:
        return bytes((n,))
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(raw),)) + raw


def encode_var_octets(data: bytes) -> bytes:
    return encode_length(len(data)) + data


def encode_var_uint(value: int) -> bytes:
    if value < 0:
        raise CodecError(f"VarUInt {value} is negative")
    raw = value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")
    return encode_length(len(raw)) + raw


def encode_uint(value: int, size: int, what: str = "uint") -> bytes:
    if not 0 <= value < (1 << (8 * size)):
        raise CodecError(f"{what}: {value} does not fit in {size * 8} bits")
    return value.to_bytes(size, "big")


def encode_uint64(value: int, what: str = "uint64") -> bytes:
    return encode_uint(value, 8, what)


def encode_var_ascii(text: str, what: str) -> bytes:
    if not text.isascii():
        raise CodecError(f"{what}: {text!r} is not ASCII")
    return encode_var_octets(text.encode("ascii"))
