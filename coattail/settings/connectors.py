"""The ``connectors:`` section: a union discriminated by ``type``, whose members the connectors declare.

Each exchange (or chain) module declares its own settings model, a :class:`ConnectorSettingsBase`
with ``type: Literal["<name>"]``; the connectors' registry map lists them (``connectors.registry``,
``SETTINGS_MODELS``). The core imports no component, so it finds that map by name, as ``coattail.cli``
finds the components' commands: where the connectors component is not installed (the API image has
no websockets/httpx), entries are only checked for a ``type`` and kept as they are — the component
that runs a connector validates its settings.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

REGISTRY_MODULE = "connectors.registry"  # its SETTINGS_MODELS: connector type -> settings model


class ConnectorSettingsBase(BaseModel):
    """What every connector's settings share: the discriminator, the kind, the staleness bound."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    # cex: a `coattail connectors run` exchange; onchain: a chain (the chart deploys only cex ones).
    kind: Literal["cex", "onchain"] = "cex"
    stale_after_seconds: float = Field(30, gt=0)


class UncheckedConnectorSettings(ConnectorSettingsBase):
    """An entry kept as written, where the connectors component (and so its models) is not installed."""

    model_config = ConfigDict(extra="allow", frozen=True)


@cache
def settings_models() -> Mapping[str, type[ConnectorSettingsBase]] | None:
    """Connector type -> settings model from the connectors' registry; None where it is not installed."""
    try:
        registry = importlib.import_module(REGISTRY_MODULE)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] in ("coattail", "api", "jobs"):
            raise  # one of ours is missing: a bug, not an image without the connectors extra
        return None
    models: Mapping[str, type[ConnectorSettingsBase]] = registry.SETTINGS_MODELS
    return models


def _connector_entry(value: Any, handler: ValidatorFunctionWrapHandler) -> ConnectorSettingsBase:
    if isinstance(value, ConnectorSettingsBase):
        return value
    models = settings_models()
    kind = value.get("type") if isinstance(value, Mapping) else None
    if models is None:
        return UncheckedConnectorSettings.model_validate(value)
    model = models.get(kind) if isinstance(kind, str) else None
    if model is None:
        known = ", ".join(sorted(models))
        shown = "missing" if kind is None else f"{str(kind)[:40]!r} is unknown"
        error = PydanticCustomError("connector_type", f"{shown}; one of {known}")
        details: list[InitErrorDetails] = [{"type": error, "loc": ("type",), "input": kind}]
        raise ValidationError.from_exception_data("connector", details)
    return model.model_validate(value)


# A ``connectors:`` entry: validated by the model its ``type`` names (errors located inside the entry).
ConnectorEntry = Annotated[ConnectorSettingsBase, WrapValidator(_connector_entry)]
