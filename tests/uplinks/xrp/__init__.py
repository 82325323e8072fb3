"""Tests of uplinks/xrp/."""
