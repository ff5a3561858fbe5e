"""The wallet store: alpha leaderboards, score history, labels and alert references per wallet.

The API answers ``GET /wallets/top`` and ``GET /wallets/{chain}/{address}`` from here in milliseconds
(no lake scan per request). Like the recent-windows store, items live in the alerts table as
partitions of their own and carry neither ``alert_type`` nor ``symbol``, so no GSI and no alert
listing ever sees them:

* ``wallets#rank#<chain>``: the leaderboard, one item per wallet, sort key ``<alpha key>#<address>``
  where the alpha key is a fixed-width hex text whose string order is the float order; a Query in
  reverse with a Limit is the top N.
* ``wallet#<chain>#<address>``: ``latest`` (the newest score and its leaderboard key), ``score#<time>``
  (history), ``label``, and ``alert#<detected_at>#<alert_id>`` (references to alerts naming the wallet,
  expiring with the alert).

Scores expire ``retention`` after they were written (or scored, if later): a wallet that is no longer
scored drops off the leaderboard instead of holding its place for ever. Labels do not expire; the label
refresh removes them (:meth:`remove_labels`). Addresses are stored as ``normalize_address`` spells them.
Two writers rescoring one wallet at the same moment (the stream and the daily batch could) can leave
a stale leaderboard item beside the new one until it expires; each write replaces the item it read.
"""

from __future__ import annotations

import logging
import math
import re
import struct
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from coattail.chains.labels import LabelError, normalize_address
from coattail.contracts import Alert
from coattail.contracts.onchain import BLOCKCHAINS
from coattail.contracts.types import format_utc
from coattail.errors import CoattailError
from coattail.hotstore.codec import Item, time_key
from coattail.hotstore.dynamodb import DynamoAlertStore, UnprocessedItemsError, is_transient

log = logging.getLogger(__name__)

RANK_PREFIX = "wallets#rank#"
WALLET_PREFIX = "wallet#"
LATEST, LABEL, SCORE, ALERT = "latest", "label", "score#", "alert#"
REF_FIELDS = ("wallet", "trader", "from_address", "to_address")  # details naming a wallet
SCORE_FIELDS = ("alpha", "alpha_percentile", "win_rate", "avg_return", "max_drawdown")
LABEL_FIELDS = ("label", "entity_type", "source")
DEFAULT_RETENTION = timedelta(days=30)  # MOD-004's rolling window: older scores say nothing current
MAX_ROUNDS = 20  # Query calls per read before a page is cut short (filters can empty a call)
GET_BATCH = 100  # BatchGetItem's limit
WRITE_BATCH = 25  # BatchWriteItem's limit
_RANK_KEY = re.compile(r"[0-9a-f]{16}#[1-9A-HJ-NP-Za-km-z0-9x]{1,64}")
# What normalize_address accepts per chain, as the API documents it in its OpenAPI paths.
ADDRESS_PATTERNS = {"ethereum": r"^0x[0-9a-fA-F]{40}$", "solana": r"^[1-9A-HJ-NP-Za-km-z]{32,44}$"}


class WalletStoreError(CoattailError, ValueError):
    """A malformed chain or leaderboard cursor given to the wallet store; one sentence."""


def check_chain(blockchain: str) -> str:
    if blockchain not in BLOCKCHAINS:
        raise WalletStoreError(f"unknown chain {blockchain[:40]!r}; known: {', '.join(BLOCKCHAINS)}")
    return blockchain


def wallet_partition(blockchain: str, address: str) -> str:
    return f"{WALLET_PREFIX}{blockchain}#{address}"


def rank_partition(blockchain: str) -> str:
    return RANK_PREFIX + blockchain


def alpha_key(alpha: float) -> str:
    """16 hex digits whose string order is the order of the floats (IEEE 754 bits, sign-folded)."""
    (bits,) = struct.unpack(">Q", struct.pack(">d", alpha + 0.0))  # + 0.0: -0.0 sorts as 0.0
    return f"{bits ^ 0xFFFFFFFFFFFFFFFF if bits >> 63 else bits | 1 << 63:016x}"


def wallet_refs(alert: Alert) -> list[tuple[str, str]]:
    """(blockchain, address) of every wallet the alert's details name (MOD-004/005/008/009 alerts)."""
    chain = alert.details.get("blockchain")
    if chain not in BLOCKCHAINS:
        return []
    out: list[tuple[str, str]] = []
    for field in REF_FIELDS:
        value = alert.details.get(field)
        if not isinstance(value, str) or not value:
            continue
        try:
            ref = (chain, normalize_address(chain, value))
        except LabelError:
            continue  # a pool or contract in an odd form is no wallet page
        if ref not in out:
            out.append(ref)
    return out


# -- rows -> items ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Score:
    blockchain: str
    address: str
    scored_at: str  # fixed-width time key
    trade_count: int
    figures: tuple[float, ...]  # SCORE_FIELDS, in order

    @property
    def rank_key(self) -> str:
        return f"{alpha_key(self.figures[0])}#{self.address}"


def _time_text(value: Any) -> str:
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if when.tzinfo is None:
        raise ValueError("a time without a UTC offset")
    return format_utc(when)


def parse_score(row: Mapping[str, Any]) -> Score:
    """A score from a ``wallet_scores`` row; ValueError/KeyError/TypeError on a malformed row."""
    chain = str(row["blockchain"])
    figures = tuple(float(row[name]) for name in SCORE_FIELDS)
    if not all(math.isfinite(f) for f in figures):
        raise ValueError("a figure is not finite")
    count = row["trade_count"]
    if isinstance(count, bool) or int(count) != count or count < 0:
        raise ValueError(f"trade_count {count!r} is not a count")
    return Score(
        chain, normalize_address(chain, str(row["wallet"])), _time_text(row["scored_at"]), int(count), figures
    )


def _score_attrs(score: Score, ttl_epoch: int) -> Item:
    item: Item = {
        "blockchain": {"S": score.blockchain},
        "address": {"S": score.address},
        "scored_at": {"S": score.scored_at},
        "trade_count": {"N": str(score.trade_count)},
        "ttl_epoch": {"N": str(ttl_epoch)},
    }
    for name, value in zip(SCORE_FIELDS, score.figures, strict=True):
        item[name] = {"N": repr(value)}
    return item


def score_json(item: Mapping[str, Any]) -> dict[str, Any]:
    """The API form of a score item."""
    out: dict[str, Any] = {"scored_at": item["scored_at"]["S"], "trade_count": int(item["trade_count"]["N"])}
    for name in SCORE_FIELDS:
        out[name] = float(item[name]["N"])
    return out


def label_json(item: Mapping[str, Any]) -> dict[str, Any]:
    out = {name: item[name]["S"] for name in LABEL_FIELDS}
    out["updated_at"] = item["updated_at"]["S"]
    return out


def _label_item(row: Mapping[str, Any]) -> Item:
    chain = str(row["blockchain"])
    address = normalize_address(chain, str(row["address"]))
    item: Item = {
        "alert_id": {"S": wallet_partition(chain, address)},
        "detected_at": {"S": LABEL},
        "blockchain": {"S": chain},
        "address": {"S": address},
        "updated_at": {"S": _time_text(row["updated_at"])},
    }
    for name in LABEL_FIELDS:
        text = str(row[name]).strip()
        if not text:
            raise ValueError(f"{name} is empty")
        item[name] = {"S": text}
    return item


def _ref_items(alerts: Iterable[Alert]) -> list[Item]:
    unique: dict[tuple[str, str], Item] = {}
    for alert in alerts:
        for chain, address in wallet_refs(alert):
            sk = f"{ALERT}{time_key(alert.detected_at)}#{alert.alert_id}"
            item: Item = {
                "alert_id": {"S": wallet_partition(chain, address)},
                "detected_at": {"S": sk},
                "ref_alert_id": {"S": alert.alert_id},  # not alert_type/symbol: those are GSI keys
                "ref_type": {"S": alert.alert_type},
                "ttl_epoch": {"N": str(alert.ttl_epoch)},
            }
            unique[(item["alert_id"]["S"], sk)] = item
    return list(unique.values())


def _key(item: Mapping[str, Any]) -> tuple[str, str]:
    return item["alert_id"]["S"], item["detected_at"]["S"]


def _epoch(now: datetime) -> int:
    return int(now.timestamp())


# -- the store ----------------------------------------------------------------------------------------
class WalletStore(Protocol):
    """Write side (scorer, label refresh, alert sink) and read side (the API) of the wallet store."""

    def put_scores(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Store ``wallet_scores`` rows (history; the newest per wallet leads); idempotent."""
        ...

    def top(self, blockchain: str, limit: int, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        """Up to ``limit`` wallets by alpha, highest first, after ``cursor``; and the next cursor."""
        ...

    def history(self, blockchain: str, address: str, limit: int) -> list[dict[str, Any]]:
        """The wallet's unexpired scores, newest first."""
        ...

    def latest(self, blockchain: str, address: str) -> dict[str, Any] | None: ...

    def put_labels(self, labels: Iterable[Mapping[str, Any]]) -> int:
        """Store ``labeled_wallets`` rows (one label per wallet; replays overwrite)."""
        ...

    def remove_labels(self, wallets: Iterable[tuple[str, str]]) -> int:
        """Forget the labels of these (blockchain, address) wallets (a refresh removed them)."""
        ...

    def label(self, blockchain: str, address: str) -> dict[str, Any] | None: ...

    def put_alert_refs(self, alerts: Iterable[Alert]) -> int:
        """Reference each alert from every wallet its details name; returns how many references."""
        ...

    def alerts(self, blockchain: str, address: str, limit: int) -> list[str]:
        """Ids of the unexpired alerts naming the wallet, newest first."""
        ...


class _Items:
    """The store's logic over four primitives of one table; the backends implement only those."""

    retention: timedelta

    def _get(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Item]:
        raise NotImplementedError

    def _put(self, items: list[Item], what: str) -> None:
        raise NotImplementedError

    def _delete(self, keys: list[tuple[str, str]], what: str) -> None:
        raise NotImplementedError

    def _query(
        self, partition: str, prefix: str, after: str | None, limit: int, now: datetime
    ) -> tuple[list[Item], str | None]:
        """Up to ``limit`` unexpired items of ``partition`` whose sort key starts with ``prefix``,
        highest sort key first, strictly below ``after``; and the key to continue below (None: end)."""
        raise NotImplementedError

    # -- writes -------------------------------------------------------------------------------------
    def put_scores(self, rows: Iterable[Mapping[str, Any]], now: datetime | None = None) -> int:
        now = now or datetime.now(UTC)
        scores: dict[tuple[str, str, str], Score] = {}
        for row in rows:
            try:
                score = parse_score(row)
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("wallet score row %s skipped: %s", dict(row).get("wallet"), exc)
                continue
            scores[(score.blockchain, score.address, score.scored_at)] = score
        newest: dict[str, Score] = {}  # per wallet partition: the score its `latest` and rank become
        for score in scores.values():
            partition = wallet_partition(score.blockchain, score.address)
            if partition not in newest or score.scored_at > newest[partition].scored_at:
                newest[partition] = score
        old = self._get([(p, LATEST) for p in newest])

        def ttl(score: Score) -> int:
            written = max(datetime.fromisoformat(score.scored_at), now)
            return _epoch(written + self.retention)

        puts: list[Item] = []
        stale: list[tuple[str, str]] = []
        for score in scores.values():  # the history keeps every scoring
            partition = wallet_partition(score.blockchain, score.address)
            attrs = _score_attrs(score, ttl(score))
            puts.append(
                {"alert_id": {"S": partition}, "detected_at": {"S": SCORE + score.scored_at}, **attrs}
            )
        for partition, score in newest.items():
            previous = old.get((partition, LATEST))
            if previous is not None and previous["scored_at"]["S"] > score.scored_at:
                continue  # a replay of an older scoring: history only
            attrs = _score_attrs(score, ttl(score))
            puts.append(
                {
                    "alert_id": {"S": partition},
                    "detected_at": {"S": LATEST},
                    "rank_key": {"S": score.rank_key},
                    **attrs,
                }
            )
            puts.append(
                {
                    "alert_id": {"S": rank_partition(score.blockchain)},
                    "detected_at": {"S": score.rank_key},
                    **attrs,
                }
            )
            if previous is not None and previous["rank_key"]["S"] != score.rank_key:
                stale.append((rank_partition(score.blockchain), previous["rank_key"]["S"]))
        self._put(puts, "wallet score item(s)")
        self._delete(stale, "old leaderboard item(s)")  # after the new place exists: never a gap
        return len(scores)

    def put_labels(self, labels: Iterable[Mapping[str, Any]]) -> int:
        items: dict[tuple[str, str], Item] = {}
        for row in labels:
            try:
                item = _label_item(row)
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("wallet label row %s skipped: %s", dict(row).get("address"), exc)
                continue
            items[_key(item)] = item
        self._put(list(items.values()), "wallet label(s)")
        return len(items)

    def remove_labels(self, wallets: Iterable[tuple[str, str]]) -> int:
        keys = list(dict.fromkeys((wallet_partition(c, normalize_address(c, a)), LABEL) for c, a in wallets))
        self._delete(keys, "wallet label(s)")
        return len(keys)

    def put_alert_refs(self, alerts: Iterable[Alert]) -> int:
        items = _ref_items(alerts)
        self._put(items, "wallet alert reference(s)")
        return len(items)

    # -- reads --------------------------------------------------------------------------------------
    def top(
        self, blockchain: str, limit: int, cursor: str | None = None, now: datetime | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        check_chain(blockchain)
        offset, after = parse_cursor(cursor) if cursor else (0, None)
        items, resume = self._query(rank_partition(blockchain), "", after, limit, now or datetime.now(UTC))
        labels = self._get([(wallet_partition(blockchain, i["address"]["S"]), LABEL) for i in items])
        out: list[dict[str, Any]] = []
        for n, item in enumerate(items):
            label = labels.get((wallet_partition(blockchain, item["address"]["S"]), LABEL))
            out.append(
                {
                    "rank": offset + n + 1,
                    "address": item["address"]["S"],
                    **score_json(item),
                    "label": label_json(label) if label else None,
                }
            )
        return out, None if resume is None else f"{offset + len(items)}|{resume}"

    def latest(self, blockchain: str, address: str, now: datetime | None = None) -> dict[str, Any] | None:
        partition = wallet_partition(blockchain, normalize_address(blockchain, address))
        item = self._get([(partition, LATEST)]).get((partition, LATEST))
        if item is None or int(item["ttl_epoch"]["N"]) <= _epoch(now or datetime.now(UTC)):
            return None
        return score_json(item)

    def history(
        self, blockchain: str, address: str, limit: int, now: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Newest first."""
        partition = wallet_partition(blockchain, normalize_address(blockchain, address))
        items, _ = self._query(partition, SCORE, None, limit, now or datetime.now(UTC))
        return [score_json(i) for i in items]

    def label(self, blockchain: str, address: str) -> dict[str, Any] | None:
        partition = wallet_partition(blockchain, normalize_address(blockchain, address))
        item = self._get([(partition, LABEL)]).get((partition, LABEL))
        return label_json(item) if item else None

    def alerts(self, blockchain: str, address: str, limit: int, now: datetime | None = None) -> list[str]:
        partition = wallet_partition(blockchain, normalize_address(blockchain, address))
        items, _ = self._query(partition, ALERT, None, limit, now or datetime.now(UTC))
        return [i["ref_alert_id"]["S"] for i in items]


def parse_cursor(cursor: str) -> tuple[int, str]:
    """(wallets before this page, leaderboard key to continue below) of a :meth:`top` cursor."""
    count, _, key = cursor.partition("|")
    if not count.isdigit() or len(count) > 9 or not _RANK_KEY.fullmatch(key):
        raise WalletStoreError("the leaderboard cursor is malformed; start again without one")
    return int(count), key


class DynamoWalletStore(_Items):
    """The wallet store in the alerts table on DynamoDB, through the alert store's client.

    Writes (and the reads they need) wait out transient failures under the alert store's retry
    deadline; API reads fail fast (503).
    """

    def __init__(self, store: DynamoAlertStore, retention: timedelta = DEFAULT_RETENTION) -> None:
        self.store = store
        self.client = store.client
        self.table = store.table
        self.retention = retention

    def _get(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Item]:
        found: dict[tuple[str, str], Item] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), GET_BATCH):
            pending = [
                {"alert_id": {"S": p}, "detected_at": {"S": s}} for p, s in unique[start : start + GET_BATCH]
            ]

            def attempt(pending: list[Any] = pending) -> None:
                while pending:
                    response = self.client.batch_get_item(RequestItems={self.table: {"Keys": pending}})
                    for item in response.get("Responses", {}).get(self.table, []):
                        found[_key(item)] = item
                    unprocessed: dict[str, Any] = dict(response.get("UnprocessedKeys") or {})
                    left = list(unprocessed.get(self.table, {}).get("Keys", []))
                    pending[:] = left
                    if left:
                        raise UnprocessedItemsError(f"{len(left)} key(s) left unprocessed")

            self._run(f"reading {len(pending)} wallet item(s)", attempt)
        return found

    def _put(self, items: list[Item], what: str) -> None:
        self.store.write_items(items, what)

    def _delete(self, keys: list[tuple[str, str]], what: str) -> None:
        self.store.delete_keys(keys, what)

    def _run(self, what: str, fn: Any) -> None:
        self.store._retried(what, fn, is_transient)  # package-private: the alert store's deadline

    def _query(
        self, partition: str, prefix: str, after: str | None, limit: int, now: datetime
    ) -> tuple[list[Item], str | None]:
        condition = "alert_id = :p" + (" AND begins_with(detected_at, :prefix)" if prefix else "")
        values: dict[str, Any] = {":p": {"S": partition}, ":now": {"N": str(_epoch(now))}}
        if prefix:
            values[":prefix"] = {"S": prefix}
        args: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": condition,
            "FilterExpression": "ttl_epoch > :now",
            "ExpressionAttributeValues": values,
            "ScanIndexForward": False,
            "Limit": limit + 1,  # one more: an exactly-full page then knows there is no next one
        }
        if after is not None:
            args["ExclusiveStartKey"] = {"alert_id": {"S": partition}, "detected_at": {"S": after}}
        out: list[Item] = []
        for _ in range(MAX_ROUNDS):
            response = self.store._translate("query", lambda: self.client.query(**args))
            out += response.get("Items", [])
            if len(out) > limit:
                return out[:limit], out[limit - 1]["detected_at"]["S"]
            last = response.get("LastEvaluatedKey")
            if last is None:
                return out, None
            args["ExclusiveStartKey"] = last
        # Expired items filled every call: a short page, continuing where the reads stopped.
        return out, args["ExclusiveStartKey"]["detected_at"]["S"]


class MemoryWalletStore(_Items):
    """The same items and semantics in a dict, for handler-level tests and ``coattail detect``."""

    def __init__(self, retention: timedelta = DEFAULT_RETENTION) -> None:
        self.retention = retention
        self._items: dict[tuple[str, str], Item] = {}
        self._lock = threading.Lock()

    def _get(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Item]:
        with self._lock:
            return {k: self._items[k] for k in keys if k in self._items}

    def _put(self, items: list[Item], what: str) -> None:
        with self._lock:
            self._items.update((_key(i), i) for i in items)

    def _delete(self, keys: list[tuple[str, str]], what: str) -> None:
        with self._lock:
            for key in keys:
                self._items.pop(key, None)

    def _query(
        self, partition: str, prefix: str, after: str | None, limit: int, now: datetime
    ) -> tuple[list[Item], str | None]:
        with self._lock:
            keys = sorted(
                (sk for p, sk in self._items if p == partition and sk.startswith(prefix)), reverse=True
            )
            live = [
                self._items[(partition, sk)]
                for sk in keys
                if (after is None or sk < after)
                and int(self._items[(partition, sk)]["ttl_epoch"]["N"]) > _epoch(now)
            ]
        if len(live) > limit:
            return live[:limit], live[limit - 1]["detected_at"]["S"]
        return live, None
