"""Tests of moneyd/btp/: the BTP connection and transport, and ILP over BTP."""
