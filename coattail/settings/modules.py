"""Typed parameters of the implemented detector modules, validated when the config loads.

A module that has no entry here takes free-form params (its detector validates them when it lands).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

SeverityName = Literal["low", "medium", "high", "critical"]


class SeverityBand(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    above: float = Field(ge=0, description="the measure must be strictly above this")
    severity: SeverityName


def _check_bands(bands: list[SeverityBand]) -> list[SeverityBand]:
    if not bands:
        raise ValueError("at least one severity band is needed")
    thresholds = [b.above for b in bands]
    if thresholds != sorted(thresholds) or len(set(thresholds)) != len(thresholds):
        raise ValueError("severity bands must have strictly increasing 'above' thresholds")
    return bands


def severity_for(bands: list[SeverityBand], measure: float) -> SeverityName | None:
    """Severity of the highest band whose threshold ``measure`` is strictly above, else None."""
    chosen: SeverityName | None = None
    for band in bands:
        if measure > band.above:
            chosen = band.severity
    return chosen


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VolumeAnomalyParams(_Params):
    window_seconds: int = Field(60, gt=0, le=3600)
    watermark_seconds: int = Field(30, ge=0, le=3600)
    baseline_minutes: int = Field(60, gt=0, le=24 * 60)
    min_history_minutes: int = Field(10, ge=0, le=24 * 60)
    z_threshold: float = Field(2.5, gt=0)
    severity_bands: list[SeverityBand]

    _bands = field_validator("severity_bands")(_check_bands)


class WhaleParams(_Params):
    severity_bands: list[SeverityBand]

    _bands = field_validator("severity_bands")(_check_bands)


class SpreadParams(_Params):
    window_seconds: int = Field(30, gt=0, le=3600)
    watermark_seconds: int = Field(15, ge=0, le=3600)
    threshold_pct: float = Field(0.5, gt=0, lt=100)
    severity_bands: list[SeverityBand]

    _bands = field_validator("severity_bands")(_check_bands)


PARAM_MODELS: dict[str, type[_Params]] = {
    "MOD-001": VolumeAnomalyParams,
    "MOD-002": WhaleParams,
    "MOD-003": SpreadParams,
}


def validate_params(module_id: str, params: dict[str, Any]) -> dict[str, Any]:
    """Validated params as plain data (typed models for implemented modules, as-is otherwise)."""
    model = PARAM_MODELS.get(module_id)
    return params if model is None else model.model_validate(params).model_dump()
