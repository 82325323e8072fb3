"""STREAM (RFC 29): packets, crypto, a sans-I/O connection and thin asyncio adapters."""
