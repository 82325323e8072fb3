"""Uplinks shipped with moneyd, one subpackage each, registered under the entry-point group ``moneyd.uplinks``."""
