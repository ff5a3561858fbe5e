"""`coattail batch fit-predictor`: MOD-010's logistic regressions fitted on lake history.

Samples are the ``predictive_scores`` rows of [start, end) — each window's feature values as the stream
(or ``coattail detect``) computed them, its close price and time. The label of a sample at horizon h is
whether the symbol's price moved more than ``move_pct`` % either way within h after the window closed:
max |p / p0 − 1| over the trades of ``raw_trades`` (read at one snapshot, Iceberg time travel) in
[scored_at, scored_at + h), at minute resolution (per-minute highs and lows). A sample whose horizon
had not elapsed by the last trade read has no label and is left out, never counted as "no move".

No look-ahead (the point of the exercise — a model that has seen the future looks great until it is
used): the split is in time, train = the earliest ``train_fraction`` of the samples, test = the rest,
and a training sample whose label window reaches into the test period is dropped (purged), because its
label was made of prices the test samples are judged on. Out-of-sample AUC and a 5-bin calibration
curve per horizon say how good the fit is; they go into the coefficients file next to the weights.

:func:`fit_rows` is the pure part (crafted samples in the tests); :func:`fit_predictor` reads the lake.
"""

from __future__ import annotations

import bisect
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coattail.errors import CoattailError
from coattail.settings import Settings
from jobs.batch import lake
from jobs.detectors.common import from_us
from jobs.predict_logic import FEATURES, HORIZONS, HorizonModel, coefficients_json
from jobs.sinks.iceberg import qualified

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

PREDICTOR = "MOD-010"
SCORES_TABLE, TRADES_TABLE = "predictive_scores", "raw_trades"
MINUTE_MS = 60_000
TRAIN_FRACTION = 0.7
MIN_TRAIN, MIN_TEST = 20, 10  # fewer samples at a horizon: no fit (the numbers would mean nothing)
CALIBRATION_BINS = 5


class FitError(CoattailError, ValueError):
    """The fit cannot be made from what the lake holds; says what is missing."""


@dataclass(frozen=True)
class Sample:
    """One scored window: when, which symbol, its close and its feature values."""

    symbol: str
    scored_at: datetime
    price: float
    features: Mapping[str, float]

    def vector(self) -> list[float]:
        return [float(self.features[f]) for f in FEATURES]


Labels = Mapping[str, bool | None]  # horizon -> moved (None: the horizon had not elapsed)


@dataclass
class HorizonFit:
    horizon: str
    model: HorizonModel
    n_train: int
    n_test: int
    purged: int  # training samples dropped: their label window reached into the test period
    train_range: tuple[datetime, datetime]
    test_range: tuple[datetime, datetime]
    train_positive: float  # share of moves
    test_positive: float
    auc: float | None  # None: the test samples hold one class only (AUC undefined)
    calibration: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return {
            "n_train": self.n_train,
            "n_test": self.n_test,
            "purged": self.purged,
            "train": {"start": _iso(self.train_range[0]), "end": _iso(self.train_range[1])},
            "test": {"start": _iso(self.test_range[0]), "end": _iso(self.test_range[1])},
            "train_positive_rate": round(self.train_positive, 6),
            "test_positive_rate": round(self.test_positive, 6),
            "auc": None if self.auc is None else round(self.auc, 6),
            "auc_note": None
            if self.auc is not None
            else "the test period holds one class only: AUC undefined",
            "calibration": self.calibration,
        }


@dataclass
class FitReport:
    version: str
    fitted_at: datetime
    output: Path
    samples: int
    labeled: dict[str, int]
    fits: dict[str, HorizonFit] = field(default_factory=dict)
    snapshot_id: int | None = None
    move_pct: float = 2.0

    def document(self, start: datetime, end: datetime) -> dict[str, Any]:
        """The coefficients file (the shipped file's format plus the fit's provenance and quality)."""
        doc = coefficients_json(
            self.version,
            {h: f.model for h, f in self.fits.items()},
            description=f"Fitted by `coattail batch fit-predictor` on predictive_scores of [{_iso(start)}, "
            f"{_iso(end)}) and raw_trades snapshot {self.snapshot_id}; time-ordered split "
            f"({TRAIN_FRACTION:.0%} train, purged), out-of-sample AUC and calibration per horizon.",
            fitted_at=_iso(self.fitted_at),
            move_pct=self.move_pct,
            range={"start": _iso(start), "end": _iso(end)},
            snapshot_id=self.snapshot_id,
            samples=self.samples,
        )
        for h, fit in self.fits.items():
            doc["horizons"][h].update(fit.to_json())
        return doc

    def summary(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "output": str(self.output),
            "snapshot_id": self.snapshot_id,
            "samples": self.samples,
            "labeled": self.labeled,
            "horizons": {
                h: {"n_train": f.n_train, "n_test": f.n_test, "purged": f.purged, "auc": f.to_json()["auc"]}
                for h, f in self.fits.items()
            },
        }


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- labels -----------------------------------------------------------------------------------------

Bars = Mapping[str, Sequence[tuple[int, float, float]]]  # symbol -> (minute start ms, high, low), in order


def minute_bars(prices: Iterable[tuple[str, datetime, float]]) -> dict[str, list[tuple[int, float, float]]]:
    """Per-minute (start ms, high, low) per symbol from (symbol, time, price) trades — what
    :func:`read_bars` computes in Spark, for callers holding trades in memory (``coattail detect``)."""
    found: dict[str, dict[int, list[float]]] = defaultdict(dict)
    for symbol, ts, price in prices:
        ms = int(ts.timestamp() * 1000)
        minute = ms - ms % MINUTE_MS
        bar = found[symbol].setdefault(minute, [price, price])
        bar[0], bar[1] = max(bar[0], price), min(bar[1], price)
    return {s: [(m, hi, lo) for m, (hi, lo) in sorted(v.items())] for s, v in found.items()}


def move_labels(
    samples: Sequence[Sample], bars: Bars, data_end: datetime | None, move_pct: float
) -> list[dict[str, bool | None]]:
    """Per sample and horizon: did the price move more than ``move_pct`` % from the sample's price
    within [scored_at, scored_at + h)? None when scored_at + h is after ``data_end`` (the last trade
    read: the outcome is not known yet) or the symbol has no price then."""
    starts = {s: [b[0] for b in v] for s, v in bars.items()}
    out: list[dict[str, bool | None]] = []
    for sample in samples:
        labels: dict[str, bool | None] = {}
        t0 = int(sample.scored_at.timestamp() * 1000)
        for h, span in HORIZONS.items():
            if data_end is None or sample.scored_at + span > data_end or not sample.price > 0:
                labels[h] = None
                continue
            series, keys = bars.get(sample.symbol, ()), starts.get(sample.symbol, [])
            lo = bisect.bisect_left(keys, t0)
            hi = bisect.bisect_left(keys, t0 + int(span.total_seconds() * 1000))
            window = series[lo:hi]
            if not window:
                labels[h] = None
                continue
            high, low = max(b[1] for b in window), min(b[2] for b in window)
            move = max(high / sample.price - 1, 1 - low / sample.price)
            labels[h] = move * 100 > move_pct
        out.append(labels)
    return out


# -- the fit (pure) ---------------------------------------------------------------------------------


def fit_rows(
    samples: Sequence[Sample],
    labels: Sequence[Labels],
    *,
    train_fraction: float = TRAIN_FRACTION,
    min_train: int = MIN_TRAIN,
    min_test: int = MIN_TEST,
) -> dict[str, HorizonFit]:
    """One logistic regression per horizon on the labelled samples, split in time (see the module
    docstring); FitError with one line when a horizon has too few samples or one class in training."""
    import numpy as np
    from sklearn.calibration import calibration_curve
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    if len(samples) != len(labels):
        raise ValueError("one label mapping per sample")
    fits: dict[str, HorizonFit] = {}
    for h, span in HORIZONS.items():
        rows = sorted(
            ((s, bool(lab[h])) for s, lab in zip(samples, labels, strict=True) if lab.get(h) is not None),
            key=lambda r: (r[0].scored_at, r[0].symbol),
        )
        if len(rows) < min_train + min_test:
            raise FitError(
                f"{h}: only {len(rows)} scored windows whose {h} outcome is known; need at least "
                f"{min_train + min_test} (a longer --start/--end range, or more MOD-010 history)"
            )
        cut = rows[min(len(rows) - 1, int(len(rows) * train_fraction))][0].scored_at
        test = [r for r in rows if r[0].scored_at >= cut]
        before = [r for r in rows if r[0].scored_at < cut]
        train = [r for r in before if r[0].scored_at + span < cut]  # purge: no label made of test prices
        if len(train) < min_train or len(test) < min_test:
            raise FitError(
                f"{h}: {len(train)} training windows after purging the {len(before) - len(train)} whose "
                f"label reaches into the test period, and {len(test)} test windows; need at least "
                f"{min_train} and {min_test}"
            )
        y_train = np.array([int(y) for _, y in train])
        if len(set(y_train.tolist())) < 2:
            kind = "moves" if y_train[0] else "non-moves"
            raise FitError(
                f"{h}: every training window is one of the {kind} (no class to tell apart); a longer range "
                "with both moves and quiet periods is needed"
            )
        x_train = np.array([s.vector() for s, _ in train])
        x_test = np.array([s.vector() for s, _ in test])
        y_test = np.array([int(y) for _, y in test])
        model = LogisticRegression(C=1.0, max_iter=1000).fit(x_train, y_train)
        p_test = model.predict_proba(x_test)[:, 1]
        both = len(set(y_test.tolist())) == 2
        calibration = None
        if both:
            frac, mean = calibration_curve(y_test, p_test, n_bins=CALIBRATION_BINS, strategy="uniform")
            calibration = {
                "bins": CALIBRATION_BINS,
                "strategy": "uniform",
                "mean_predicted": [round(float(v), 6) for v in mean],
                "fraction_positive": [round(float(v), 6) for v in frac],
            }
        fits[h] = HorizonFit(
            horizon=h,
            model=HorizonModel(float(model.intercept_[0]), tuple(float(w) for w in model.coef_[0])),
            n_train=len(train),
            n_test=len(test),
            purged=len(before) - len(train),
            train_range=(train[0][0].scored_at, train[-1][0].scored_at),
            test_range=(test[0][0].scored_at, test[-1][0].scored_at),
            train_positive=float(y_train.mean()),
            test_positive=float(y_test.mean()),
            auc=float(roc_auc_score(y_test, p_test)) if both else None,
            calibration=calibration,
        )
    return fits


# -- the lake ---------------------------------------------------------------------------------------


def move_pct_of(settings: Settings) -> float:
    entry = settings.modules.get(PREDICTOR)
    return float((entry.params if entry else {}).get("move_pct", 2.0))


def default_output(settings: Settings) -> Path:
    """The configured coefficients file: the pipeline's next start loads what was fitted."""
    from jobs.detectors.predictive import PredictiveParams, coefficients_path

    if PREDICTOR not in settings.modules:
        raise FitError(f"{PREDICTOR} (predictive-scorer) is not in config/features.yaml `modules`")
    return coefficients_path(settings, settings.module_params(PREDICTOR, PredictiveParams))


def resolve_snapshot(settings: Settings, snapshot_id: int | None) -> int:
    """The raw_trades snapshot to read (checked), else the current one; the scores table must exist."""
    if lake.existing_table(settings, SCORES_TABLE) is None:
        raise FitError(
            f"{SCORES_TABLE} does not exist yet; run the pipeline with {PREDICTOR} (large tier) first"
        )
    table = lake.existing_table(settings, TRADES_TABLE)
    if table is None:
        raise FitError(
            f"{TRADES_TABLE} does not exist yet; run the pipeline or `coattail batch backfill` first"
        )
    if snapshot_id is not None:
        if table.snapshot_by_id(snapshot_id) is None:
            known = ", ".join(str(s.snapshot_id) for s in table.snapshots()[-5:]) or "none"
            raise FitError(f"{TRADES_TABLE} has no snapshot {snapshot_id}; latest snapshots: {known}")
        return snapshot_id
    current = table.current_snapshot()
    if current is None:
        raise FitError(f"{TRADES_TABLE} is empty; nothing to label the scores with")
    return int(current.snapshot_id)


def read_samples(spark: SparkSession, settings: Settings, start: datetime, end: datetime) -> list[Sample]:
    """predictive_scores rows scored in [start, end) with all the model's features."""
    from pyspark.sql import functions as F

    rows = (
        spark.table(qualified(settings, SCORES_TABLE))
        .where((F.col("scored_at") >= F.lit(start)) & (F.col("scored_at") < F.lit(end)))
        .select("symbol", F.unix_micros("scored_at").alias("us"), F.col("price").cast("double"), "features")
        .dropDuplicates(["symbol", "us"])
        .collect()
    )
    samples = []
    for r in rows:
        try:
            values = json.loads(r["features"] or "{}")
        except ValueError:
            continue
        if r["price"] is None or not all(isinstance(values.get(f), int | float) for f in FEATURES):
            continue  # a row of another feature set (older model) or without a close: not this model's
        if not all(math.isfinite(float(values[f])) for f in FEATURES):
            continue
        samples.append(
            Sample(r["symbol"], from_us(r["us"]), float(r["price"]), {f: float(values[f]) for f in FEATURES})
        )
    return samples


def read_bars(
    spark: SparkSession,
    settings: Settings,
    symbols: Sequence[str],
    start: datetime,
    end: datetime,
    snapshot_id: int,
) -> tuple[dict[str, list[tuple[int, float, float]]], datetime | None]:
    """Per-minute high and low price of each symbol in [start, end) at one raw_trades snapshot, and the
    time of the last trade read."""
    from pyspark.sql import functions as F

    trades = (
        spark.read.option("versionAsOf", str(snapshot_id))
        .table(qualified(settings, TRADES_TABLE))
        .where(
            (F.col("timestamp") >= F.lit(start))
            & (F.col("timestamp") < F.lit(end))
            & F.col("symbol").isin(*symbols)
        )
        .select(
            "symbol", F.unix_micros("timestamp").alias("us"), F.col("price").cast("double").alias("price")
        )
    )
    minute = (F.floor(F.col("us") / 1000 / MINUTE_MS) * MINUTE_MS).cast("long")
    rows = (
        trades.groupBy("symbol", minute.alias("m"))
        .agg(F.max("price").alias("hi"), F.min("price").alias("lo"), F.max("us").alias("last_us"))
        .collect()
    )
    bars: dict[str, list[tuple[int, float, float]]] = defaultdict(list)
    last = None
    for r in rows:
        bars[r["symbol"]].append((int(r["m"]), float(r["hi"]), float(r["lo"])))
        last = r["last_us"] if last is None else max(last, r["last_us"])
    return {s: sorted(v) for s, v in bars.items()}, None if last is None else from_us(last)


def fit_predictor(
    spark: SparkSession,
    settings: Settings,
    start: datetime,
    end: datetime,
    output: Path | None = None,
    snapshot_id: int | None = None,
) -> FitReport:
    """Fit on [start, end), write the coefficients file (``output``, default: the configured one)."""
    if start >= end:
        raise FitError(f"--start ({_iso(start)}) must be before --end ({_iso(end)})")
    target = output or default_output(settings)
    sid = resolve_snapshot(settings, snapshot_id)
    move_pct = move_pct_of(settings)
    samples = read_samples(spark, settings, start, end)
    if not samples:
        raise FitError(f"{SCORES_TABLE} holds no scored window in [{_iso(start)}, {_iso(end)})")
    horizon = max(HORIZONS.values())
    bars, last = read_bars(spark, settings, sorted({s.symbol for s in samples}), start, end + horizon, sid)
    data_end = None if last is None else min(last, end + horizon)
    labels = move_labels(samples, bars, data_end, move_pct)
    fits = fit_rows(samples, labels)
    fitted_at = datetime.now(UTC).replace(microsecond=0)
    report = FitReport(
        version=f"fit-{fitted_at:%Y%m%dT%H%M%SZ}",
        fitted_at=fitted_at,
        output=target,
        samples=len(samples),
        labeled={h: sum(1 for lab in labels if lab[h] is not None) for h in HORIZONS},
        fits=fits,
        snapshot_id=sid,
        move_pct=move_pct,
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report.document(start, end), indent=2) + "\n")
    return report


def sample_of(record: Mapping[str, Any]) -> Sample:
    """A predictive_scores row (as MOD-010's finish() returns it) as a fit sample."""
    values = json.loads(record["features"])
    return Sample(
        record["symbol"], record["scored_at"], float(record["price"]), {f: float(values[f]) for f in FEATURES}
    )
