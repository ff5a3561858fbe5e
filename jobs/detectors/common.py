"""Small helpers shared by the detectors: epoch-microsecond times and display formats."""

from __future__ import annotations

from datetime import datetime

from coattail.contracts.types import format_utc, from_epoch_us


def from_us(value: int) -> datetime:
    """UTC datetime from epoch microseconds (detectors pass times as integers: no timezone guessing)."""
    return from_epoch_us(value)


def iso(value: datetime) -> str:
    """Times in alert details: the one fixed form (``format_utc``)."""
    return format_utc(value)


def money(value: float) -> str:
    return f"{value:,.0f}"
