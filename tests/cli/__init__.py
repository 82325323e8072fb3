"""The command line as real processes: help and completions, pay/receive, hostile environments."""
