"""Configuration errors carry one sentence that says what is wrong and how to fix it."""

from coattail.errors import CoattailError


class ConfigError(CoattailError):
    """Raised for a bad or missing configuration; ``str(err)`` is a single line for the user."""
