"""Exchange connectors (Binance, Coinbase), stream writers (Kafka, Kinesis), the connector manager,
the market simulator and the replay/normalize tools. See README "Connectors"."""
