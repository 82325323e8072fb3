"""STREAM (RFC 29): packets, crypto, a sans-I/O connection and thin asyncio adapters.

- ``packet``: frames and packets (encode/decode, CodecError on bad input).
- ``crypto``: keys, AES-256-GCM envelope, fulfillments, the JS server's tokens, receipts.
- ``connection.Connection``: the pure state machine (``poll``/``handle_reply``/``handle_prepare``/events); it
  coordinates ``congestion`` (window of packets in flight, packet amount, backoff), ``probing`` (the exchange
  rate), ``streams`` (each stream's state table, its send and receive halves, the table of streams) and
  ``events`` (what it tells its owner).
- ``aio``: ``StreamClient(send_prepare, destination, shared_secret, source_account=...)`` with ``connect()``,
  ``send_money(amount) -> PaymentResult``, ``open_stream()``/``accept_stream()``, ``handle_prepare(prepare)`` for
  Prepares addressed to the client, ``close()``; ``StreamServer(base_address, send_prepare)`` with
  ``generate_address_and_secret()``, ``handle_prepare(prepare)``, ``accept()`` for each new connection.
"""
