"""Tests of uplinks/eth/."""
