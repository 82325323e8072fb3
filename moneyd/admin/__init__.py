"""What moneyd is doing, for people and tools: the admin API (compatible with ilp-connector 23's, as the JS moneyd
exposes it), Prometheus metrics, a live event stream, the dashboard, and ``moneyd status``.

``monitor`` is pure and cheap (the router feeds it); ``snapshot`` is the one place that reads balances and channel
facts; ``api`` (aiohttp) is imported only by a running moneyd, so the CLI starts fast.
"""
