"""Solana: settings, the pure jsonParsed normaliser, the JSON-RPC client and the slot-following connector.

Kept apart like an exchange module (DESIGN.md "Style"): ``settings`` (``type: solana``), ``normalize``
(getBlock/getTransaction -> OnchainEvents, no I/O), ``rpc`` (HTTP JSON-RPC with its rate limit and
the skipped-slot errors), ``connector`` (finalized slots in order, WebSocket wake-ups, gap fill).
"""
