"""Tests of uplinks/btp/."""
