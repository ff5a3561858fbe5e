"""Fast JSON for the contracts (orjson), exact both ways.

Decimals travel as JSON strings ("67432.50"): JSON numbers would be parsed as binary floats by most
readers, including orjson, and lose digits. Spark reads the same strings straight into DecimalType.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from coattail.contracts.alert import Alert
from coattail.contracts.onchain import OnchainEvent
from coattail.contracts.trade import TradeEvent
from coattail.errors import CoattailError, first_problem

M = TypeVar("M", bound=BaseModel)


class ContractError(CoattailError, ValueError):
    """A payload that does not satisfy a contract; the message is one line that says why."""


def dumps(model: BaseModel) -> bytes:
    """Serialise a contract model to compact JSON bytes."""
    return orjson.dumps(model.model_dump(mode="json"))


def _loads(model: type[M], payload: bytes | str) -> M:
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise ContractError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ContractError(f"expected a JSON object, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ContractError(one_line(exc)) from None


def loads_trade(payload: bytes | str) -> TradeEvent:
    return _loads(TradeEvent, payload)


def loads_onchain(payload: bytes | str) -> OnchainEvent:
    return _loads(OnchainEvent, payload)


def loads_alert(payload: bytes | str) -> Alert:
    return _loads(Alert, payload)


def one_line(exc: ValidationError) -> str:
    """First validation problem as ``field: message`` (plus a count of the others)."""
    return first_problem(exc.errors()).line()


def check_json_value(value: Any, where: str) -> None:
    """Reject values that would not survive a JSON round trip (e.g. NaN, sets, objects)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where}: keys must be strings")
            check_json_value(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_json_value(item, f"{where}[{i}]")
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{where}: NaN/infinity is not JSON")
    elif isinstance(value, Decimal):
        raise ValueError(f"{where}: store decimals in details as strings or floats")
    elif value is not None and not isinstance(value, str | int | bool):
        raise ValueError(f"{where}: {type(value).__name__} is not a JSON value")
