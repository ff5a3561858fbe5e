"""API keys from the settings and the mounted keys file; configured keys fail closed.

A keys file that is set but holds no key (empty, blank lines, only comments) is a config error, as is
a blank entry in ``api.api_keys`` (see validators.check_api_key): either would otherwise turn
authentication off without a word.
"""

from __future__ import annotations

from pathlib import Path

from coattail.settings.errors import ConfigError
from coattail.settings.models import ApiSettings


def read_api_keys(api: ApiSettings) -> tuple[str, ...]:
    """Every configured key (settings first, then the file); empty only when none is configured."""
    keys = list(api.api_keys)
    if api.api_keys_file:
        path = Path(api.api_keys_file)
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise ConfigError(
                f"api.api_keys_file {path} cannot be read ({exc.strerror}); mount the keys Secret there"
            ) from None
        from_file = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
        if not from_file:
            raise ConfigError(
                f"api.api_keys_file {path} holds no API key (one key per line); refusing to run "
                "without authentication - put the keys there or unset api.api_keys_file"
            )
        keys += from_file
    return tuple(keys)
