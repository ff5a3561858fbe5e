"""Local Kafka broker and DynamoDB Local as background JVM processes (embedded profile, tests, demo)."""

from coattail.devservices.manager import DevServices, ServiceError, ServiceInfo

__all__ = ["DevServices", "ServiceError", "ServiceInfo"]
