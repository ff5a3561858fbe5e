"""The batch flow's Spark session: the pipeline's builder plus one batch-specific setting."""

from __future__ import annotations

from typing import TYPE_CHECKING

from coattail.settings import Settings
from jobs.session import CATALOG, build_session

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# pyiceberg (the loader) commits to the same tables while this session lives; Spark's catalog cache
# would otherwise hide those snapshots for its expiry interval and time travel would miss them.
BATCH_CONF = {f"spark.sql.catalog.{CATALOG}.cache-enabled": "false"}


def batch_session(
    settings: Settings, *, master: str | None = None, app_name: str = "coattail-batch"
) -> SparkSession:
    return build_session(settings, app_name=app_name, master=master, shuffle_partitions=4, extra=BATCH_CONF)
