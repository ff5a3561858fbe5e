"""Newest-first, cursor-paged listings over the alerts table's GSI partitions (seed §9.1/§9.2).

Every listing is a merge of one or more *streams*; a stream is one GSI partition (``alert_type = X``
on type-time-index, or ``symbol = Y`` on symbol-time-index) read from ``detected_at >= since``
downwards, newest first, expired items (``ttl_epoch <= now``) left out:

* ``type`` → one stream on type-time-index; ``symbol`` → one stream on symbol-time-index;
* ``type`` + ``symbol`` → the type stream filtered on ``symbol``;
* no filter → one type stream per alert type of the active tier, merged newest first (a Scan
  cannot return newest first, so seed §9.1's "Scan with limit" would page in arbitrary order).
  Alerts of types the tier does not register are reachable only with ``type=``.

A page takes at most ``limit`` items from the merge. The cursor records, per stream, the key of the
last item handed out (or that the stream is finished), so walking the pages returns every item once.
A store may stop reading a stream early (DynamoDB: filters can leave a Query almost empty); its last
evaluated key is then a *frontier*: other streams' items at or below it wait for a later page, so a
page can be short (and still carry a cursor) but never skips an item.

Everything here is pure; the stores only implement :meth:`fetch` (one stream from a position).
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from coattail.hotstore.codec import Item, item_key, item_to_json, time_key
from coattail.hotstore.table import ALERTS_TABLE, SYMBOL_INDEX, TYPE_INDEX

log = logging.getLogger(__name__)
DONE = "done"

# A stream's position in a cursor: [alert_id, detected_at] of the last item handed out, "done", or None.
Position = list[str] | str | None


@dataclass(frozen=True)
class StreamSpec:
    """One source of a listing: a GSI partition, optionally filtered on a second attribute."""

    name: str  # stable id used in cursors, e.g. "type:whale_trade"
    index: str
    hash_attr: str
    hash_value: str
    filter_attr: str | None = None
    filter_value: str | None = None

    def matches(self, item: Item) -> bool:
        """Whether an item belongs to this stream (by value; time and TTL are checked separately)."""
        if item.get(self.hash_attr, {}).get("S") != self.hash_value:
            return False
        return self.filter_attr is None or item.get(self.filter_attr, {}).get("S") == self.filter_value


@dataclass
class Page:
    items: list[dict[str, Any]]
    positions: dict[str, Position] | None  # None: no further page
    skipped: int = 0  # items that were not alerts (bad data) and were left out


@dataclass
class Fetched:
    """What a store read of one stream: items newest first, and where it stopped."""

    items: list[Item] = field(default_factory=list)
    frontier: Item | None = None  # the last evaluated key when the stream stopped early
    exhausted: bool = False  # nothing further in this stream


def stream_for_type(alert_type: str) -> StreamSpec:
    return StreamSpec(f"type:{alert_type}", TYPE_INDEX, ALERTS_TABLE.index(TYPE_INDEX).hash_key, alert_type)


def stream_for_symbol(symbol: str) -> StreamSpec:
    return StreamSpec(f"symbol:{symbol}", SYMBOL_INDEX, ALERTS_TABLE.index(SYMBOL_INDEX).hash_key, symbol)


def streams_for(alert_type: str | None, symbol: str | None, all_types: Sequence[str]) -> list[StreamSpec]:
    """The streams that answer a listing with these filters (see the module docstring)."""
    if alert_type and symbol:
        base = stream_for_type(alert_type)
        return [StreamSpec(base.name, base.index, base.hash_attr, base.hash_value, "symbol", symbol)]
    if alert_type:
        return [stream_for_type(alert_type)]
    if symbol:
        return [stream_for_symbol(symbol)]
    return [stream_for_type(t) for t in all_types]


def start_key(stream: StreamSpec, position: Position) -> Item | None:
    """The exclusive start key of a stream at ``position`` (None: from the newest item)."""
    if not isinstance(position, list):
        return None
    alert_id, detected_at = position
    return {
        "alert_id": {"S": alert_id},
        "detected_at": {"S": detected_at},
        stream.hash_attr: {"S": stream.hash_value},
    }


FetchFn = Callable[[StreamSpec, Item | None, str, datetime, int], Fetched]


def read_page(
    fetch: FetchFn,
    streams: Sequence[StreamSpec],
    since: datetime,
    limit: int,
    now: datetime,
    positions: dict[str, Position] | None = None,
    *,
    fan_out: Callable[[Callable[[Any], Fetched], Iterable[Any]], Iterable[Fetched]] = map,
) -> Page:
    """Up to ``limit`` alerts newest first, continuing from ``positions`` (from the previous page).

    ``fan_out`` maps the per-stream reads (``map`` by default; a thread pool's ``map`` in parallel).
    """
    positions = positions or {}
    since_key = time_key(since)
    live = [s for s in streams if positions.get(s.name) != DONE]
    jobs = [(s, start_key(s, positions.get(s.name))) for s in live]
    if len(jobs) == 1:
        fetched = [fetch(jobs[0][0], jobs[0][1], since_key, now, limit)]
    else:
        fetched = list(fan_out(lambda job: fetch(job[0], job[1], since_key, now, limit), jobs))
    return merge(live, fetched, positions, limit, streams)


def walk(
    page: Callable[[datetime, int, dict[str, Position] | None], Page],
    since: datetime,
    max_items: int,
    chunk: int = 500,
) -> Iterator[dict[str, Any]]:
    """Every alert from successive pages, newest first, stopping after ``max_items``."""
    positions: dict[str, Position] | None = None
    produced = 0
    while produced < max_items:
        got = page(since, min(chunk, max_items - produced), positions)
        yield from got.items
        produced += len(got.items)
        if got.positions is None:
            return
        positions = got.positions


def merge(
    live: Sequence[StreamSpec],
    fetched: Sequence[Fetched],
    positions: dict[str, Position],
    limit: int,
    streams: Sequence[StreamSpec],
) -> Page:
    """One page from each live stream's read, newest first, and the positions to continue from."""
    # A stream that stopped at a frontier may still hold items at or below the frontier's time, so
    # another stream's item is only safe to hand out when it is strictly newer than that frontier.
    frontiers = {i: f.frontier["detected_at"]["S"] for i, f in enumerate(fetched) if f.frontier is not None}

    def floor_for(i: int) -> str:
        return max((t for j, t in frontiers.items() if j != i), default="")

    floors = [floor_for(i) for i in range(len(fetched))]
    merged = heapq.merge(
        *[[(item["detected_at"]["S"], i, item) for item in f.items] for i, f in enumerate(fetched)],
        key=lambda entry: entry[0],
        reverse=True,
    )
    emitted_per_stream = [0] * len(fetched)
    last: list[Item | None] = [None] * len(fetched)
    items: list[dict[str, Any]] = []
    skipped = 0
    for detected_at, i, item in merged:
        if len(items) >= limit:
            break
        if floors[i] and detected_at <= floors[i]:
            continue  # eligibility is a prefix of each stream, so the rest of stream i waits too
        emitted_per_stream[i] += 1
        last[i] = item
        try:
            items.append(item_to_json(item))
        except (KeyError, ValueError):
            skipped += 1
            log.warning("item %s is not an alert; left out", item.get("alert_id"))

    new_positions: dict[str, Position] = {s.name: positions.get(s.name) for s in streams}
    for i, stream in enumerate(live):
        f = fetched[i]
        all_out = emitted_per_stream[i] == len(f.items)
        if all_out and f.exhausted:
            new_positions[stream.name] = DONE
        elif all_out and f.frontier is not None:
            new_positions[stream.name] = list(item_key(f.frontier))
        elif (last_item := last[i]) is not None:
            new_positions[stream.name] = list(item_key(last_item))
    finished = all(p == DONE for p in new_positions.values())
    return Page(items=items, positions=None if finished else new_positions, skipped=skipped)
