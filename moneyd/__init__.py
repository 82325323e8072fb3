"""moneyd: the Interledger home router."""

__version__ = "0.1.0"
