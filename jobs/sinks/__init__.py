"""Sinks: the Iceberg lake tables and the DynamoDB hot alert store."""
