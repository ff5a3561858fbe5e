"""The analytics store: the latest back-test (MOD-011) and the predictive scores (MOD-010) per symbol.

The API answers ``GET /backtests/latest`` and ``GET /predictions/{symbol}`` from here (a key lookup
and one Query, never the lake). Like the wallet store, items live in the alerts table as partitions of
their own and carry neither ``alert_type`` nor ``symbol``, so no GSI and no alert listing sees them:

* ``backtest#latest``: one item (sort key ``latest``) naming the run the API shows;
* ``backtest#run#<run_id>``: ``run`` (the run summary) and ``row#<backtest_date>#<module>#<symbol>#
  <horizon>`` (one per ``backtest_results`` row); a run written again replaces its rows, old ones
  it no longer has included;
* ``prediction#<symbol>``: ``score#<scored_at>`` per ``predictive_scores`` row, newest last in key
  order, so a reverse Query with a Limit is the newest N.

Rows come from Spark and pandas with datetimes, dates, Decimals, numpy numbers, None and NaN in them;
each is stored as one JSON text (:func:`encode_row`: times in the contract's UTC form, Decimal and
numpy as numbers, NaN and infinities as null), which DynamoDB holds whatever the columns are.
Everything expires ``retention`` after it was written (or scored, if later).
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

import orjson

from coattail.contracts.trade import SYMBOL_PATTERN
from coattail.contracts.types import format_utc
from coattail.errors import CoattailError
from coattail.hotstore.codec import Item
from coattail.hotstore.dynamodb import DynamoAlertStore, is_transient

log = logging.getLogger(__name__)

LATEST_PARTITION = "backtest#latest"
RUN_PREFIX = "backtest#run#"
PREDICTION_PREFIX = "prediction#"
LATEST, RUN, ROW, SCORE = "latest", "run", "row#", "score#"
BACKTEST_RETENTION = timedelta(days=30)  # the trailing rates that matter are a week; a month to look back
PREDICTION_RETENTION = timedelta(days=7)
MAX_ROUNDS = 50  # Query calls per read (1 MB each): far more than one run's rows
_SYMBOL = re.compile(SYMBOL_PATTERN)
_HORIZON = re.compile(r"(\d+)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class AnalyticsStoreError(CoattailError, ValueError):
    """A malformed symbol, run or row given to the analytics store; one sentence."""


def check_symbol(symbol: str) -> str:
    if not _SYMBOL.fullmatch(symbol):
        raise AnalyticsStoreError(f"symbol {symbol[:40]!r} is not BASE-QUOTE in capitals, e.g. BTC-USDT")
    return symbol


# -- encoding ------------------------------------------------------------------------------------------
def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_utc(value if value.tzinfo else value.replace(tzinfo=UTC))
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return _finite(float(value))
    if hasattr(value, "item"):  # numpy / pandas scalars
        return _finite(value.item())
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot store a {type(value).__name__}")


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _clean(value: Any) -> Any:
    """NaN and infinities (plain floats included, which orjson would write as null anyway) -> None."""
    if isinstance(value, float):
        return _finite(value)
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def encode_row(row: Mapping[str, Any]) -> str:
    """One row as JSON text; TypeError for a value no row should hold (an object of ours, bytes)."""
    return orjson.dumps(_clean(dict(row)), default=_default, option=orjson.OPT_PASSTHROUGH_DATETIME).decode()


def _time_text(value: Any, field: str) -> str:
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, str):
        when = datetime.fromisoformat(value)
    else:
        raise ValueError(f"{field} {value!r} is not a time")
    return format_utc(when if when.tzinfo else when.replace(tzinfo=UTC))


def _date_text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return date.fromisoformat(str(value)[:10]).isoformat()


def horizon_seconds(horizon: str) -> int:
    """``1h`` -> 3600 (results order by it); an odd text sorts last."""
    match = _HORIZON.fullmatch(str(horizon))
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)] if match else 10**12


def _ttl(when: datetime, retention: timedelta) -> int:
    return int((when + retention).timestamp())


def _key(item: Mapping[str, Any]) -> tuple[str, str]:
    return item["alert_id"]["S"], item["detected_at"]["S"]


def _live(item: Mapping[str, Any], now: datetime) -> bool:
    return int(item["ttl_epoch"]["N"]) > int(now.timestamp())


def _body(item: Mapping[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads(item["body"]["S"])
    return body


# -- the store -----------------------------------------------------------------------------------------
class AnalyticsStore(Protocol):
    """Write side (the back-test step, MOD-010's publish) and read side (the API)."""

    def put_backtest(self, run: Mapping[str, Any], rows: Iterable[Mapping[str, Any]]) -> int:
        """Store a run summary and its ``backtest_results`` rows; the run becomes the latest."""
        ...

    def latest_backtest(self) -> dict[str, Any] | None:
        """``{"run": {...}, "results": [rows...]}`` of the latest run; None when none was stored."""
        ...

    def put_predictions(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Store ``predictive_scores`` rows (replays overwrite); how many were stored."""
        ...

    def predictions(self, symbol: str, limit: int = 50) -> list[dict[str, Any]]:
        """The symbol's unexpired scores, newest first."""
        ...


class _Items:
    """The store's logic over four primitives of one table; the backends implement only those."""

    backtest_retention: timedelta
    prediction_retention: timedelta

    def _get(self, key: tuple[str, str]) -> Item | None:
        raise NotImplementedError

    def _put(self, items: list[Item], what: str) -> None:
        raise NotImplementedError

    def _delete(self, keys: list[tuple[str, str]], what: str) -> None:
        raise NotImplementedError

    def _query(self, partition: str, prefix: str, limit: int | None, now: datetime) -> list[Item]:
        """Up to ``limit`` (None: all) unexpired items of ``partition`` whose sort key starts with
        ``prefix``, highest sort key first."""
        raise NotImplementedError

    # -- back-tests ---------------------------------------------------------------------------------
    def put_backtest(
        self, run: Mapping[str, Any], rows: Iterable[Mapping[str, Any]], now: datetime | None = None
    ) -> int:
        now = now or datetime.now(UTC)
        run_id = str(run.get("run_id") or "").strip()
        if not run_id or len(run_id) > 200:
            raise AnalyticsStoreError("a back-test run needs a run_id (at most 200 characters)")
        partition = RUN_PREFIX + run_id
        ttl = {"N": str(_ttl(now, self.backtest_retention))}
        items: dict[tuple[str, str], Item] = {}
        for row in rows:
            try:
                sort = ROW + "#".join(
                    (
                        _date_text(row["backtest_date"]),
                        str(row["module_id"]),
                        str(row["symbol"]),
                        str(row["horizon"]),
                    )
                )
                body = encode_row(row)
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("back-test row %s skipped: %s", dict(row).get("module_id"), exc)
                continue
            items[(partition, sort)] = {
                "alert_id": {"S": partition},
                "detected_at": {"S": sort},
                "body": {"S": body},
                "ttl_epoch": ttl,
            }
        summary = {**run, "results": len(items)}
        try:
            encoded_run = encode_row(summary)
        except TypeError as exc:
            raise AnalyticsStoreError(f"back-test run {run_id[:60]!r} cannot be stored: {exc}") from None
        old = {_key(i) for i in self._query(partition, ROW, None, now)}
        self._put(list(items.values()), "back-test row(s)")
        self._delete(sorted(old - set(items)), "old back-test row(s)")
        self._put(
            [
                {
                    "alert_id": {"S": partition},
                    "detected_at": {"S": RUN},
                    "body": {"S": encoded_run},
                    "ttl_epoch": ttl,
                },
                # Last: the latest pointer names a run whose rows are all in place.
                {
                    "alert_id": {"S": LATEST_PARTITION},
                    "detected_at": {"S": LATEST},
                    "run_id": {"S": run_id},
                    "ttl_epoch": ttl,
                },
            ],
            "back-test run",
        )
        return len(items)

    def latest_backtest(self, now: datetime | None = None) -> dict[str, Any] | None:
        now = now or datetime.now(UTC)
        pointer = self._get((LATEST_PARTITION, LATEST))
        if pointer is None or not _live(pointer, now):
            return None
        partition = RUN_PREFIX + pointer["run_id"]["S"]
        run = self._get((partition, RUN))
        if run is None or not _live(run, now):
            return None
        results = [_body(i) for i in self._query(partition, ROW, None, now)]
        results.sort(
            key=lambda r: (
                str(r.get("module_id")),
                str(r.get("symbol")),
                horizon_seconds(str(r.get("horizon"))),
                str(r.get("backtest_date")),
            )
        )
        return {"run": _body(run), "results": results}

    # -- predictions --------------------------------------------------------------------------------
    def put_predictions(self, rows: Iterable[Mapping[str, Any]], now: datetime | None = None) -> int:
        now = now or datetime.now(UTC)
        items: dict[tuple[str, str], Item] = {}
        for row in rows:
            try:
                symbol = check_symbol(str(row["symbol"]))
                scored_at = _time_text(row["scored_at"], "scored_at")
                body = encode_row(row)
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("predictive score row %s skipped: %s", dict(row).get("symbol"), exc)
                continue
            written = max(datetime.fromisoformat(scored_at), now)
            partition, sort = PREDICTION_PREFIX + symbol, SCORE + scored_at
            items[(partition, sort)] = {
                "alert_id": {"S": partition},
                "detected_at": {"S": sort},
                "body": {"S": body},
                "ttl_epoch": {"N": str(_ttl(written, self.prediction_retention))},
            }
        self._put(list(items.values()), "predictive score(s)")
        return len(items)

    def predictions(self, symbol: str, limit: int = 50, now: datetime | None = None) -> list[dict[str, Any]]:
        """Newest first."""
        if limit < 1:
            raise AnalyticsStoreError(f"limit {limit} is not a positive count")
        items = self._query(PREDICTION_PREFIX + check_symbol(symbol), SCORE, limit, now or datetime.now(UTC))
        return [_body(i) for i in items]


class DynamoAnalyticsStore(_Items):
    """The analytics store in the alerts table on DynamoDB, through the alert store's client.

    Every call waits out transient failures under the alert store's retry deadline: the pipeline's
    store has one, the API's has none, so its reads fail fast (503).
    """

    def __init__(
        self,
        store: DynamoAlertStore,
        backtest_retention: timedelta = BACKTEST_RETENTION,
        prediction_retention: timedelta = PREDICTION_RETENTION,
    ) -> None:
        self.store = store
        self.client = store.client
        self.table = store.table
        self.backtest_retention = backtest_retention
        self.prediction_retention = prediction_retention

    def _get(self, key: tuple[str, str]) -> Item | None:
        keys = {"alert_id": {"S": key[0]}, "detected_at": {"S": key[1]}}
        response = self.store._retried(  # fails fast in the API (no retry time), waits in the pipeline
            "get_item",
            lambda: self.client.get_item(TableName=self.table, Key=keys, ConsistentRead=True),
            is_transient,
        )
        item: Item | None = response.get("Item")
        return item

    def _put(self, items: list[Item], what: str) -> None:
        self.store.write_items(items, what)

    def _delete(self, keys: list[tuple[str, str]], what: str) -> None:
        self.store.delete_keys(keys, what)

    def _query(self, partition: str, prefix: str, limit: int | None, now: datetime) -> list[Item]:
        args: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "alert_id = :p AND begins_with(detected_at, :prefix)",
            "FilterExpression": "ttl_epoch > :now",
            "ExpressionAttributeValues": {
                ":p": {"S": partition},
                ":prefix": {"S": prefix},
                ":now": {"N": str(int(now.timestamp()))},
            },
            "ScanIndexForward": False,
        }
        if limit is not None:
            args["Limit"] = limit
        out: list[Item] = []
        for _ in range(MAX_ROUNDS):
            response = self.store._retried("query", lambda: self.client.query(**args), is_transient)
            out += response.get("Items", [])
            last = response.get("LastEvaluatedKey")
            if last is None or (limit is not None and len(out) >= limit):
                break
            args["ExclusiveStartKey"] = last
        return out[:limit] if limit is not None else out


class MemoryAnalyticsStore(_Items):
    """The same items and semantics in a dict, for handler-level tests and ``coattail detect``."""

    def __init__(
        self,
        backtest_retention: timedelta = BACKTEST_RETENTION,
        prediction_retention: timedelta = PREDICTION_RETENTION,
    ) -> None:
        self.backtest_retention = backtest_retention
        self.prediction_retention = prediction_retention
        self._items: dict[tuple[str, str], Item] = {}
        self._lock = threading.Lock()

    def _get(self, key: tuple[str, str]) -> Item | None:
        with self._lock:
            return self._items.get(key)

    def _put(self, items: list[Item], what: str) -> None:
        with self._lock:
            self._items.update((_key(i), i) for i in items)

    def _delete(self, keys: list[tuple[str, str]], what: str) -> None:
        with self._lock:
            for key in keys:
                self._items.pop(key, None)

    def _query(self, partition: str, prefix: str, limit: int | None, now: datetime) -> list[Item]:
        with self._lock:
            keys = sorted(
                (sk for p, sk in self._items if p == partition and sk.startswith(prefix)), reverse=True
            )
            live = [self._items[(partition, sk)] for sk in keys if _live(self._items[(partition, sk)], now)]
        return live[:limit] if limit is not None else live


__all__ = [
    "AnalyticsStore",
    "AnalyticsStoreError",
    "DynamoAnalyticsStore",
    "MemoryAnalyticsStore",
    "check_symbol",
    "encode_row",
]
