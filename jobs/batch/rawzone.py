"""The raw landing zone (seed §5.2): Parquet under ``date=YYYY-MM-DD/symbol=BASE-QUOTE/``.

File names carry the exchange and the id range of their rows, so writing the same rows again (a
retry after a crash before the Iceberg commit) replaces the file instead of adding a copy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from coattail.settings import Settings

if TYPE_CHECKING:
    import pyarrow as pa


def root(settings: Settings) -> str:
    explicit = settings.lake.raw_zone
    if explicit:
        return explicit.rstrip("/")
    path = settings.state_path("raw")
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def write(settings: Settings, rows: pa.Table, exchange: str, first_id: int, last_id: int) -> list[str]:
    """Write ``rows`` (raw_trades columns) split by trade date and symbol; returns the paths."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    from pyarrow import fs

    if rows.num_rows == 0:
        return []
    filesystem, base = (
        fs.FileSystem.from_uri(root(settings))
        if "://" in root(settings)
        else (fs.LocalFileSystem(), root(settings))
    )
    dates = pc.strftime(rows["timestamp"], format="%Y-%m-%d")
    keyed = rows.append_column("_date", dates)
    written = []
    for date in sorted(set(dates.to_pylist())):
        for symbol in sorted(set(rows["symbol"].to_pylist())):
            mask = pc.and_(pc.equal(keyed["_date"], date), pc.equal(keyed["symbol"], symbol))
            # Hive layout: the partition keys live in the path only (readers add them back as columns).
            part = keyed.filter(mask).drop_columns(["_date", "symbol"])
            if part.num_rows == 0:
                continue
            folder = f"{base}/date={date}/symbol={symbol}"
            filesystem.create_dir(folder, recursive=True)
            path = f"{folder}/{exchange}-{first_id:012d}-{last_id:012d}.parquet"
            pq.write_table(part, path, filesystem=filesystem, compression="zstd")
            written.append(path)
    return written
