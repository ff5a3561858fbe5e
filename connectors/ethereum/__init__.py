"""Ethereum, all of it: settings (``settings``), ABI decoding (``abi``), the pure normaliser
(``normalize``), JSON-RPC clients (``rpc``) and the connector (``connector``).

Kept light on purpose: every settings load imports ``settings`` through the registry map
(``connectors.registry.CHAINS``), and the connector's imports (eth-abi, web3's helpers) are slow.
"""
