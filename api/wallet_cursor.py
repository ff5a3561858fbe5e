"""Leaderboard cursors: the wallet store's position, signed and bound to the chain like alert cursors.

``base64url(JSON) + "." + base64url(HMAC-SHA256)`` with the same key as api.cursor, so a cursor cannot
be altered (a forged rank offset) or replayed on another chain's leaderboard.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Any

import orjson

from api.cursor import MAX_CURSOR_CHARS, CursorError

_MAC_BYTES = 16


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def encode(key: bytes, chain: str, position: str) -> str:
    body = orjson.dumps({"v": 1, "w": chain, "c": position})
    return f"{_b64(body)}.{_b64(hmac.new(key, body, hashlib.sha256).digest()[:_MAC_BYTES])}"


def decode(key: bytes, chain: str, token: str) -> str:
    """The store position in a cursor for ``chain``'s leaderboard; CursorError says what is wrong."""
    if len(token) > MAX_CURSOR_CHARS:
        raise CursorError("is too long; pass the 'next_cursor' value of the previous page unchanged")
    body_text, _, mac_text = token.partition(".")
    try:
        body = base64.urlsafe_b64decode(body_text + "=" * (-len(body_text) % 4))
        mac = base64.urlsafe_b64decode(mac_text + "=" * (-len(mac_text) % 4))
    except (binascii.Error, ValueError):
        raise CursorError("is not valid base64url; pass the 'next_cursor' value unchanged") from None
    if not body or _b64(body) != body_text or _b64(mac) != mac_text:
        raise CursorError("is not valid base64url; pass the 'next_cursor' value unchanged")
    if not hmac.compare_digest(mac, hmac.new(key, body, hashlib.sha256).digest()[:_MAC_BYTES]):
        raise CursorError("was altered or issued by another deployment; start again without one")
    data: Any = orjson.loads(body)
    if not isinstance(data, dict) or data.get("v") != 1 or not isinstance(data.get("c"), str):
        raise CursorError("version is not supported; start again without one")
    if data.get("w") != chain:
        raise CursorError("belongs to another chain's leaderboard")
    position: str = data["c"]
    return position
