"""The alert service: FastAPI REST API, SSE live stream and dashboard over the hot alert store."""

__version__ = "0.1.0"
