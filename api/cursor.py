"""Opaque page cursors: base64url(JSON state) + "." + base64url(HMAC-SHA256), bound to the query.

The state holds, per stream, where the previous page stopped, plus the resolved ``since`` (the default
"24 h ago" moves with the clock, so later pages must reuse the first page's value). The HMAC makes a
cursor tamper-evident (its key: see api.cursor_key), and the query fingerprint stops a cursor from one
filter being replayed on another, which would otherwise silently skip or repeat items.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from coattail.contracts.types import UTC_TEXT_WIDTH
from coattail.errors import CoattailError
from coattail.hotstore import DONE, Position, stored_time, time_key

MAX_CURSOR_CHARS = 4096
MAX_ID_CHARS = 256
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_MAC_BYTES = 16
_MS_FORM_WIDTH = UTC_TEXT_WIDTH - 3  # how times were written before microseconds everywhere


class CursorError(CoattailError, ValueError):
    """A cursor that is malformed, forged or from another query; the message says which."""


@dataclass(frozen=True)
class CursorState:
    since: str  # fixed-width time key
    positions: dict[str, Position]


def fingerprint(alert_type: str | None, symbol: str | None) -> str:
    return hashlib.sha256(f"{alert_type or ''}|{symbol or ''}".encode()).hexdigest()[:12]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode(key: bytes, query: str, state: CursorState) -> str:
    body = orjson.dumps({"v": 1, "q": query, "since": state.since, "p": state.positions})
    mac = hmac.new(key, body, hashlib.sha256).digest()[:_MAC_BYTES]
    return f"{_b64(body)}.{_b64(mac)}"


def decode(key: bytes, query: str, token: str, stream_names: list[str]) -> CursorState:
    """Check and unpack a cursor for the query with these streams; CursorError says what is wrong."""
    if len(token) > MAX_CURSOR_CHARS:
        raise CursorError("is too long; pass the 'next' value of the previous page unchanged")
    body_text, _, mac_text = token.partition(".")
    if not body_text or not mac_text or not _B64URL.fullmatch(body_text) or not _B64URL.fullmatch(mac_text):
        raise CursorError("is not valid base64url; pass the 'next' value unchanged")
    try:
        body, mac = _unb64(body_text), _unb64(mac_text)
    except (binascii.Error, ValueError):
        raise CursorError("is not valid base64url; pass the 'next' value unchanged") from None
    if _b64(body) != body_text or _b64(mac) != mac_text:  # one spelling per cursor (no spare bits)
        raise CursorError("is not valid base64url; pass the 'next' value unchanged")
    expected = hmac.new(key, body, hashlib.sha256).digest()[:_MAC_BYTES]
    if not hmac.compare_digest(mac, expected):
        raise CursorError("was altered or issued by another deployment; start again without one")
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise CursorError("payload is not JSON") from None
    if not isinstance(data, dict) or data.get("v") != 1:
        raise CursorError("version is not supported; start again without one")
    if data.get("q") != query:
        raise CursorError("belongs to a query with other type/symbol filters")
    positions = data.get("p")
    since = data.get("since")
    if not isinstance(since, str) or not is_time_key(since):
        raise CursorError("holds an invalid since; start again without one")
    if not isinstance(positions, dict) or sorted(positions) != sorted(stream_names):
        raise CursorError("no longer matches the registered alert types; start again without one")
    for value in positions.values():
        ok = value is None or value == DONE
        ok = ok or (
            isinstance(value, list)
            and len(value) == 2
            and isinstance(value[0], str)
            and 0 < len(value[0]) <= MAX_ID_CHARS
            and isinstance(value[1], str)
            and is_time_key(value[1])
        )
        if not ok:
            raise CursorError("holds an invalid position")
    return CursorState(since=stored_time(since), positions=positions)


def is_time_key(text: str) -> bool:
    """True for a stored time key: ``2026-01-02T03:04:05.678000Z``, or the older ``...05.678Z``."""
    if len(text) not in (UTC_TEXT_WIDTH, _MS_FORM_WIDTH) or not text.endswith("Z") or not text.isascii():
        return False
    try:
        key = time_key(datetime.fromisoformat(text))
    except (ValueError, OverflowError):
        return False
    return key == text or key == text[:-1] + "000Z"
