"""The large tier's feedback loop on a simulated market with planted price moves (issue 16).

Two markets from the simulator (``coattail simulate --moves``): moves of 3-5 % on every venue of a base,
two of three preceded by an hour of informed whale flow and volume bursts on each venue, the rest
unannounced. Background flow episodes are off: they are random-direction signals by design, and this
test wants the planted signal alone (random alerts staying near 0.5 is tests/batch/test_backtest.py's).

* ``coattail detect --tier large --tables`` on the first market ends with MOD-011's back-test: the
  modules that carry the planted signal (MOD-006 flow, MOD-007 consensus) hit >= 0.6 at 1 h.
* The predictor fitted on that run's predictive_scores (time-ordered split, purged) has an
  out-of-sample 1 h AUC >= 0.7.
* With the fitted coefficients, ``coattail detect`` on a second market (another seed: data the fit never
  saw) raises high_probability_move before >= 80 % of its predictable moves, and its 1 h probabilities
  are higher in the informed hours than elsewhere (the alerts are not simply everywhere).

Every step runs as its own process, as a user runs it (no Spark session shared with the suite).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from jobs.backtest_logic import HORIZONS as BACKTEST_HORIZONS
from jobs.batch.predictor import fit_rows, minute_bars, move_labels, sample_of
from jobs.predict_logic import coefficients_json

pytestmark = pytest.mark.spark
REPO = Path(__file__).resolve().parents[2]
# A move per base about every 5 h. In so eventful a market a 2 % move within 4 h is nearly always
# likely (p_4h is high everywhere, so high_probability_move fires on most windows); the 1 h model is the
# one that separates, which is what the last test checks besides the alerts. Sparser markets of this
# length leave too few moves in the fit's test period for a stable AUC.
TRAIN = {"seed": 21, "minutes": 2400, "moves": 8}  # 40 h
HOLDOUT = {"seed": 22, "minutes": 1200, "moves": 4}  # 20 h
RATE = 0.45  # background trades per second over all instruments (the planted flow comes on top)
START = "2026-06-01T00:00:00Z"


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _run(argv: list[str], env: dict[str, str], stdin: Path | None = None, stdout: Path | None = None) -> str:
    with (
        stdin.open("rb") if stdin else open(os.devnull, "rb") as src,
        stdout.open("wb") if stdout else open(os.devnull, "wb") as dst,
    ):
        done = subprocess.run(
            [sys.executable, "-m", "coattail", *argv],
            stdin=src,
            stdout=dst if stdout else subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=REPO,
            timeout=900,
            check=False,
        )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    return done.stderr.decode()


def _market(
    folder: Path, env: dict[str, str], seed: int, minutes: int, moves: int
) -> tuple[Path, dict[str, Any]]:
    """Simulated raw messages normalised to TradeEvents, and the simulator's truth."""
    folder.mkdir(parents=True)
    raw, trades = folder / "raw.jsonl", folder / "trades.jsonl"
    _run(
        ["simulate", "--seed", str(seed), "--minutes", str(minutes), "--rate", str(RATE),
         "--moves", str(moves), "--no-flow-episodes", "--start", START, "--tier", "large", "--out", str(raw)],
        env,
    )  # fmt: skip
    _run(["normalize"], env, stdin=raw, stdout=trades)
    return trades, json.loads((folder / "raw.jsonl.truth.json").read_text())


def _detect(folder: Path, env: dict[str, str], trades: Path) -> tuple[list[dict[str, Any]], Path]:
    out, tables = folder / "alerts.jsonl", folder / "tables"
    _run(
        ["detect", "--tier", "large", "--input", str(trades), "--output", str(out), "--tables", str(tables)],
        env,
    )
    return [json.loads(x) for x in out.read_text().splitlines()], tables


def _rows(tables: Path, table: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (tables / f"{table}.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    state = tmp_path_factory.mktemp("planted-state")
    return {**os.environ, "COATTAIL_STATE_DIR": str(state), "PYSPARK_PYTHON": sys.executable}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> dict[str, Any]:
    """The first market through detect, then the predictor fitted on its scores (as fit-predictor does
    on the lake: labels from per-minute highs and lows of the same trades)."""
    folder = tmp_path_factory.mktemp("planted") / "train"
    trades, truth = _market(folder, env, **TRAIN)
    alerts, tables = _detect(folder, env, trades)
    samples = [
        sample_of({**r, "scored_at": _time(r["scored_at"])}) for r in _rows(tables, "predictive_scores")
    ]
    prices, last = [], None
    for line in trades.read_text().splitlines():
        e = json.loads(line)
        at = _time(e["timestamp"])
        prices.append((e["symbol"], at, float(e["price"])))
        last = at if last is None or at > last else last
    fits = fit_rows(samples, move_labels(samples, minute_bars(prices), last, 2.0))
    coefficients = folder / "coefficients.json"
    coefficients.write_text(
        json.dumps(coefficients_json("planted-test", {h: f.model for h, f in fits.items()}))
    )
    return {"alerts": alerts, "tables": tables, "truth": truth, "fits": fits, "coefficients": coefficients}


def test_planted_signal_backtests_above_chance(trained: dict[str, Any]) -> None:
    rows = _rows(trained["tables"], "backtest_results")
    assert {r["horizon"] for r in rows} == set(BACKTEST_HORIZONS)
    rates = {}
    for module in ("MOD-006", "MOD-007"):
        ones = [r for r in rows if r["module_id"] == module and r["horizon"] == "1h" and r["n"]]
        n = sum(r["n"] for r in ones)
        rates[module] = (sum(r["n"] * r["hit_rate"] for r in ones) / n, n)
    print("1 h hit rates (rate, n):", rates)
    for module, (rate, n) in rates.items():
        assert n >= 50, (module, n)
        assert rate >= 0.6, (module, rate)
    (complete,) = [a for a in trained["alerts"] if a["alert_type"] == "backtest_complete"]
    assert complete["module_id"] == "MOD-011"


def test_fitted_predictor_separates_moves_out_of_sample(trained: dict[str, Any]) -> None:
    fits = trained["fits"]
    print({h: (round(f.auc, 3) if f.auc else None, f.n_train, f.n_test) for h, f in fits.items()})
    assert fits["1h"].auc is not None
    assert fits["1h"].auc >= 0.7
    assert fits["1h"].train_range[1] + timedelta(hours=1) < fits["1h"].test_range[0]  # purged: no overlap


def test_high_probability_alerts_precede_predictable_moves(
    trained: dict[str, Any], env: dict[str, str], tmp_path: Path
) -> None:
    fitted = {**env, "COATTAIL_MODULES__MOD_010__PARAMS__COEFFICIENTS_FILE": str(trained["coefficients"])}
    trades, truth = _market(tmp_path / "holdout", fitted, **HOLDOUT)
    alerts, tables = _detect(tmp_path / "holdout", fitted, trades)
    calls = [a for a in alerts if a["alert_type"] == "high_probability_move"]
    predictable = [m for m in truth["moves"] if m["predictable"]]
    assert len(predictable) >= 8

    def informed(symbol: str, at: datetime) -> bool:  # inside a predictable move's informed hour
        return any(
            symbol.split("-")[0] == m["base"] and _time(m["informed_start"]) < at <= _time(m["start"])
            for m in predictable
        )

    preceded = [
        m
        for m in predictable
        if any(
            a["symbol"].split("-")[0] == m["base"] and informed(a["symbol"], _time(a["detected_at"]))
            for a in calls
        )
    ]
    scores = _rows(tables, "predictive_scores")
    inside = [s["p_1h"] for s in scores if informed(s["symbol"], _time(s["scored_at"]))]
    outside = [s["p_1h"] for s in scores if not informed(s["symbol"], _time(s["scored_at"]))]
    mean_in, mean_out = sum(inside) / len(inside), sum(outside) / len(outside)
    print(
        f"{len(preceded)}/{len(predictable)} predictable moves preceded; {len(calls)} calls on "
        f"{len(scores)} windows; mean p_1h in informed hours {mean_in:.2f}, elsewhere {mean_out:.2f}"
    )
    assert len(preceded) >= 0.8 * len(predictable)
    assert mean_in >= mean_out + 0.2
