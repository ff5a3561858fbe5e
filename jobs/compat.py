"""Compatibility shim: PySpark 4.1.1's applyInPandasWithState with pyarrow ≥ 26.

pyarrow 26 turns the integer fields of a struct column into floats when some rows of the struct are
null. PySpark pads the per-group bookkeeping column (``startOffset``/``numRows``) of every Arrow batch
with null rows, so ``RecordBatch.slice(0.0, 2.0)`` fails inside the worker before any user code runs.
The shim converts exactly that bookkeeping column through ``to_pylist`` (ints stay ints). It is applied
on import of the detector module, which the Python worker imports while unpickling the function,
i.e. before the serializer reads the first batch. Remove when PySpark/pyarrow fix it upstream.
"""

from __future__ import annotations

from typing import Any

_PATCHED = False


def patch_apply_in_pandas_with_state() -> None:
    global _PATCHED
    if _PATCHED:
        return
    import pandas as pd
    import pyarrow as pa
    from pyspark.sql.pandas import serializers

    cls = serializers.ApplyInPandasWithStateSerializer
    original = cls.arrow_to_pandas

    def arrow_to_pandas(self: Any, arrow_column: Any, idx: int, *args: Any, **kwargs: Any) -> Any:
        kind = arrow_column.type
        if pa.types.is_struct(kind) and kind.get_field_index("startOffset") >= 0:
            return pd.Series(arrow_column.to_pylist(), dtype=object)
        return original(self, arrow_column, idx, *args, **kwargs)

    cls.arrow_to_pandas = arrow_to_pandas
    _PATCHED = True
