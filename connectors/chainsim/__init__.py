"""Chain simulator: real Uniswap V2 contracts on a local anvil node, driven by simulated wallets.

``artifacts`` reads the npm build JSONs set-up installed, ``deploy`` puts the world on a chain,
``drive`` trades on it along a CEX price path and ``truth`` records every planted event exactly;
``wallets`` plants informed, noise and labelled whale wallets, ``clock`` runs block time fast (event
time) and ``cextrades`` writes the CEX reference trades of those block times.
"""
