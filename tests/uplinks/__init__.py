"""Tests of the shipped uplinks (uplinks/), one package each."""
