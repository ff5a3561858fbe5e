"""Pages of the hot store for the event loop: each stream's reads in a worker thread, merged on the loop.

One thread hop per stream and back, rather than a hop into a worker that then fans out again: on a
busy node every extra thread wake-up costs scheduler latency. (The store itself is synchronous and
knows nothing of the event loop; this adapter is the API's concern.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

from anyio import to_thread

from coattail.hotstore import AlertReader, Page, Position, StreamSpec, time_key
from coattail.hotstore.paging import DONE, merge, start_key


async def page_async(
    store: AlertReader,
    streams: Sequence[StreamSpec],
    since: datetime,
    limit: int,
    now: datetime,
    positions: dict[str, Position] | None = None,
) -> Page:
    """``store.page(...)`` without blocking the event loop."""
    positions = positions or {}
    since_key = time_key(since)
    live = [s for s in streams if positions.get(s.name) != DONE]
    fetched = await asyncio.gather(
        *(
            to_thread.run_sync(store.fetch, s, start_key(s, positions.get(s.name)), since_key, now, limit)
            for s in live
        )
    )
    return merge(live, fetched, positions, limit, streams)
