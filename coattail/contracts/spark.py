"""Spark schemas derived from the pydantic contracts, so there is no second hand-written copy.

Decimals map to DecimalType(38, 18) (Spark's JSON reader parses the decimal strings exactly),
timestamps to TimestampType, dict-valued fields (alert ``details``) to a JSON string column.
"""

from __future__ import annotations

import types
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

if TYPE_CHECKING:
    from pyspark.sql.types import DataType, StructType

DECIMAL_PRECISION = 38
DECIMAL_SCALE = 18


def _spark_type(annotation: Any) -> tuple[DataType, bool]:
    """Spark type for one annotation and whether it is nullable."""
    from pyspark.sql import types as T

    origin = get_origin(annotation)
    if origin is Annotated:  # an optional ExactDecimal / UtcDatetime: the metadata is pydantic's business
        return _spark_type(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        inner = [a for a in get_args(annotation) if a is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"cannot map union {annotation!r} to a Spark type")
        dtype, _ = _spark_type(inner[0])
        return dtype, True
    if origin is Literal:
        return T.StringType(), False
    if origin is dict or annotation is dict:
        return T.StringType(), False
    mapping: dict[Any, DataType] = {
        str: T.StringType(),
        int: T.LongType(),
        float: T.DoubleType(),
        bool: T.BooleanType(),
        Decimal: T.DecimalType(DECIMAL_PRECISION, DECIMAL_SCALE),
        datetime: T.TimestampType(),
    }
    if annotation in mapping:
        return mapping[annotation], False
    raise TypeError(f"no Spark type for {annotation!r}")


def spark_schema(model: type[BaseModel]) -> StructType:
    """StructType with one field per model field, in declaration order."""
    from pyspark.sql import types as T

    fields = []
    for name, info in model.model_fields.items():
        dtype, nullable = _spark_type(info.annotation)
        fields.append(T.StructField(name, dtype, nullable=nullable or not info.is_required()))
    return T.StructType(fields)


def ddl_columns(model: type[BaseModel]) -> str:
    """Spark SQL column list (``CREATE TABLE`` DDL) of a model, e.g. ``"symbol string, n bigint"``."""
    return ", ".join(f"{f.name} {f.dataType.simpleString()}" for f in spark_schema(model).fields)
