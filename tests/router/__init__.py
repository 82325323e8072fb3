"""Tests of moneyd/router/: each pipeline layer alone, and hostile apps against a whole router."""
