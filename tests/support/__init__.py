"""Shared test helpers (imported as tests.support.x): JS peers, ganache, the XRPL emulator, an in-process router, the STREAM harness, the kill loops; and their own tests."""
