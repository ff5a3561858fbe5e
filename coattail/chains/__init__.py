"""Chain knowledge shared by the on-chain connectors and the pipeline: the token registry and valuation."""
