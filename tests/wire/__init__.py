"""Tests of moneyd/wire/: the codecs against vectors, properties and the JS reference codecs."""
