"""Validated settings: config/features.yaml + a tier file + COATTAIL_* environment overrides."""

from coattail.settings.errors import ConfigError
from coattail.settings.loader import load_settings
from coattail.settings.models import Settings

__all__ = ["ConfigError", "Settings", "load_settings"]
