"""Optional API keys (header ``X-API-Key``): off when no key is configured (the embedded profile).

Keys come from ``api.api_keys`` and from ``api.api_keys_file`` (a mounted Secret, one key per line,
``#`` comments). Comparison is constant-time and checks every key, so timing reveals nothing.
"""

from __future__ import annotations

import hmac
from pathlib import Path

from fastapi import HTTPException, Request, Security
from fastapi.security import APIKeyHeader

from coattail.settings import ConfigError, Settings

api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="Required when the service is configured with API keys."
)


def load_api_keys(settings: Settings) -> tuple[bytes, ...]:
    keys = [k.strip() for k in settings.api.api_keys if k.strip()]
    if settings.api.api_keys_file:
        path = Path(settings.api.api_keys_file)
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise ConfigError(
                f"api.api_keys_file {path} cannot be read ({exc.strerror}); mount the keys Secret there"
            ) from None
        keys += [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return tuple(k.encode() for k in keys)


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
