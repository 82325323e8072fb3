"""Tests of moneyd/admin/: the admin API, monitor and dashboard, and `moneyd status`."""
