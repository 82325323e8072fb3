"""Direct tests of the STREAM engine's parts (moneyd/stream/): congestion, probing, stream state, events."""
