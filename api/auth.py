"""Optional API keys (header ``X-API-Key``): off when no key is configured (the embedded profile).

Keys come from ``api.api_keys`` and from ``api.api_keys_file`` (a mounted Secret, one key per line,
``#`` comments). Configured keys fail closed: a blank key, or a keys file without a key, is a config
error (see coattail.settings.secrets), never "authentication off". Comparison is constant-time and
checks every key, so timing reveals nothing.
"""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request, Security
from fastapi.security import APIKeyHeader

from coattail.settings import Settings
from coattail.settings.secrets import read_api_keys

api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="Required when the service is configured with API keys."
)


def load_api_keys(settings: Settings) -> tuple[bytes, ...]:
    """The keys to accept; ConfigError (one line) when keys are configured but none is usable."""
    return tuple(k.encode() for k in read_api_keys(settings.api))


async def require_api_key(request: Request, key: str | None = Security(api_key_header)) -> None:
    keys: tuple[bytes, ...] = request.app.state.api_keys
    if not keys:
        return
    if not key:
        raise HTTPException(401, "missing X-API-Key header", headers={"WWW-Authenticate": "APIKey"})
    given = key.encode()
    matched = False
    for candidate in keys:
        matched |= hmac.compare_digest(given, candidate)
    if not matched:
        raise HTTPException(401, "invalid API key", headers={"WWW-Authenticate": "APIKey"})
