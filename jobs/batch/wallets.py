"""The daily wallet steps: score the wallets (MOD-004), then refresh the labels (MOD-005).

Both write the lake (``wallet_scores``, ``labeled_wallets``) and then the hot store the API reads
(``coattail.hotstore.wallets``: leaderboard, score history, labels), so the API never scans the lake.
Scoring runs first: with ``smart_money.enabled`` the refresh writes the top wallets of this very scoring
back as ``smart_money`` labels, which the stream's MOD-005 picks up on its next label reload.

A step whose module is not in the tier is skipped (reported, not an error): the small tier's daily
workflow has no wallets to score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from coattail.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

SCORER, LABELS = "MOD-004", "MOD-005"
SMART_MONEY_SOURCE = "coattail wallet-scorer (MOD-004)"


def skipped(settings: Settings, module_id: str) -> dict[str, Any] | None:
    if module_id in settings.active_modules:
        return None
    return {"skipped": f"{module_id} is not in tier {settings.tier!r}"}


def hot_wallets(settings: Settings) -> Any:
    """The hot store's wallet side (DynamoDB), created like the pipeline's."""
    from jobs.sinks.hot import HotStore

    return HotStore(settings)


def score_step(
    spark: SparkSession, settings: Settings, as_of: datetime, snapshot_id: int | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Score every wallet as of ``as_of`` from one onchain_events snapshot; lake, then hot store.
    Returns the summary and the rows scored."""
    if (skip := skipped(settings, SCORER)) is not None:
        return skip, []
    from jobs.batch.scoring import score_wallets

    report = score_wallets(spark, settings, as_of, snapshot_id)
    hot = hot_wallets(settings)
    try:
        published = hot.wallets.put_scores(report.rows)
    finally:
        hot.close()
    return {**report.summary(), "published": published}, list(report.rows)


def smart_money_labels(settings: Settings, rows: Sequence[Mapping[str, Any]], now: datetime) -> list[Any]:
    """The scorer's top wallets as ``smart_money`` labels, when the config switch is on."""
    from coattail.chains.labels import WalletLabel
    from jobs.batch.scoring import top_wallets

    smart = settings.modules[SCORER].params.get("smart_money") or {}
    if not smart.get("enabled"):
        return []
    chosen = top_wallets(rows, float(smart.get("min_percentile", 99)), int(smart.get("max_wallets", 100)))
    return [
        WalletLabel(
            address=r["wallet"],
            blockchain=r["blockchain"],
            label=f"smart money (alpha p{float(r['alpha_percentile']):.0f})",
            entity_type="smart_money",
            source=SMART_MONEY_SOURCE,
            updated_at=now,
        )
        for r in chosen
    ]


def labels_step(
    spark: SparkSession,
    settings: Settings,
    now: datetime,
    scores: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Refresh labeled_wallets from the shipped and operator files (+ smart money from ``scores``, or
    from the latest scoring in the lake when not given); hot store after."""
    if (skip := skipped(settings, LABELS)) is not None:
        return skip
    from coattail.chains.labels import label_rows
    from jobs.batch.labels import refresh_labels

    smart: list[Any] = []
    if SCORER in settings.active_modules:
        if scores is None:
            from jobs.batch.scoring import latest_scores

            scores = latest_scores(spark, settings)
        smart = smart_money_labels(settings, scores, now)
    report = refresh_labels(spark, settings, now, smart)
    hot = hot_wallets(settings)
    try:
        published = hot.wallets.put_labels(label_rows(report.rows))
        hot.wallets.remove_labels(report.removed_keys)
    finally:
        hot.close()
    return {**report.to_json(), "smart_money": len(smart), "published": published}
