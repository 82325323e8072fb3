"""Sans-I/O codecs for everything moneyd puts on the wire. Decoders raise CodecError and nothing else."""

from .errors import CodecError

__all__ = ["CodecError"]
