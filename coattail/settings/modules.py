"""Module parameters: severity bands shared by every module, and the hook through which a module's own
params model validates its config entry when the config loads.

A module declares its params model next to its detector (``BaseDetector.params_model``); a module
without one (or without code yet) takes free-form params.
"""

from __future__ import annotations

import importlib
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from coattail.contracts.alert import Severity

SeverityName = Severity  # one severity type: the Alert contract's


class SeverityBand(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    above: float = Field(ge=0, description="the measure must be strictly above this")
    severity: SeverityName


def check_bands(bands: list[SeverityBand]) -> list[SeverityBand]:
    if not bands:
        raise ValueError("at least one severity band is needed")
    thresholds = [b.above for b in bands]
    if thresholds != sorted(thresholds) or len(set(thresholds)) != len(thresholds):
        raise ValueError("severity bands must have strictly increasing 'above' thresholds")
    return bands


# A params field of severity bands, checked: ``severity_bands: SeverityBands``.
SeverityBands = Annotated[list[SeverityBand], AfterValidator(check_bands)]


def severity_for(bands: list[SeverityBand], measure: float) -> SeverityName | None:
    """Severity of the highest band whose threshold ``measure`` is strictly above, else None."""
    chosen: SeverityName | None = None
    for band in bands:
        if measure > band.above:
            chosen = band.severity
    return chosen


class ModuleParams(BaseModel):
    """Base of a module's params model (declared by the module itself, next to its detector)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# Filled by the modules themselves when their code is imported (BaseDetector registers its
# ``params_model``); nothing here lists modules.
PARAMS_MODELS: dict[str, type[BaseModel]] = {}


def register_params(module_id: str, model: type[BaseModel]) -> None:
    PARAMS_MODELS[module_id] = model


def params_model(module_id: str, code: str) -> type[BaseModel] | None:
    """The params model ``module_id`` declares, importing its ``code`` on first use.

    None when the module has no code yet, or when this component does not ship the code's top
    package at all (e.g. a connector image without ``jobs``): the component that runs it validates.
    """
    if code and module_id not in PARAMS_MODELS:
        try:
            importlib.import_module(code)
        except ModuleNotFoundError as exc:
            if exc.name != code.split(".", 1)[0]:
                raise ValueError(f"cannot import its code {code!r} ({exc})") from None
        except ImportError as exc:
            raise ValueError(f"cannot import its code {code!r} ({exc})") from None
    return PARAMS_MODELS.get(module_id)


def validate_params(module_id: str, params: dict[str, Any], code: str = "") -> dict[str, Any]:
    """Validated params as plain data (the module's own model when it declares one, as-is otherwise)."""
    model = params_model(module_id, code)
    return params if model is None else model.model_validate(params).model_dump()
