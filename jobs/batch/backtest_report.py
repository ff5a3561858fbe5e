"""What a back-test found, for people: a rich table on the console and a self-contained HTML report.

The HTML file embeds its plots as base64 PNGs (matplotlib, Agg backend: no display needed), so it can
be mailed, archived or opened from an object store as it is: hit rate per module and horizon, the
cumulative signed return per module and horizon over detection time, and MOD-010's calibration
(predicted p_1h against the realized frequency of a big move) when there were scores to check.
"""

from __future__ import annotations

import base64
import html
import io
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.backtest_logic import HORIZONS

if TYPE_CHECKING:
    from rich.table import Table

    from jobs.detectors.backtester import BacktestRun

COLUMNS = ("module", "symbol", "horizon", "n", "hit rate", "mean return", "Sharpe", "max DD", "pending")


def _pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value * 100:.{digits}f}%"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def table_cells(rows: Iterable[Mapping[str, Any]]) -> list[tuple[str, ...]]:
    """One line per row (module, symbol, horizon order), the figures formatted for reading."""
    order = {h: i for i, h in enumerate(HORIZONS)}
    merged: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in rows:  # a run over several days: one line per (module, symbol, horizon), n-weighted
        key = (r["module_id"], r["symbol"], r["horizon"])
        m = merged.setdefault(key, {"n": 0, "hits": 0, "ret": 0.0, "pending": 0, "sharpe": [], "dd": []})
        m["n"] += int(r["n"])
        m["hits"] += int(r["hits"])
        m["ret"] += float(r["mean_return"] or 0.0) * int(r["n"])
        m["pending"] += int(r["pending"])
        m["sharpe"].append(r["sharpe"])
        m["dd"].append(r["max_drawdown"])
    cells: list[tuple[str, ...]] = []
    for (module, symbol, horizon), m in sorted(
        merged.items(), key=lambda kv: (kv[0][0], kv[0][1], order[kv[0][2]])
    ):
        n = m["n"]
        single = len(m["sharpe"]) == 1  # Sharpe and drawdown do not add up across days: shown for one
        cells.append(
            (
                module,
                symbol,
                horizon,
                str(n),
                _pct(m["hits"] / n if n else None),
                _pct(m["ret"] / n if n else None, 3),
                _num(m["sharpe"][0]) if single else "-",
                _pct(m["dd"][0])
                if single
                else _pct(max((d for d in m["dd"] if d is not None), default=None)),
                str(m["pending"]),
            )
        )
    return cells


def console_table(rows: Iterable[Mapping[str, Any]], title: str = "Back-test") -> Table:
    from rich.table import Table

    table = Table(title=title)
    for i, name in enumerate(COLUMNS):
        table.add_column(name, justify="left" if i < 3 else "right")
    for line in table_cells(rows):
        table.add_row(*line)
    return table


def print_table(rows: Iterable[Mapping[str, Any]], title: str = "Back-test", console: Any = None) -> None:
    from rich.console import Console

    if console is None:
        console = Console()
        if not console.is_terminal:  # piped or captured: the whole table, not 80 squeezed columns
            console = Console(width=140)
    console.print(console_table(list(rows), title))


# -- plots ------------------------------------------------------------------------------------------


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def hit_rate_plot(rows: Sequence[Mapping[str, Any]]) -> str | None:
    """Bars: n-weighted hit rate per module, one bar per horizon; the 50 % line for reference."""
    acc: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        acc[(r["module_id"], r["horizon"])][0] += int(r["hits"])
        acc[(r["module_id"], r["horizon"])][1] += int(r["n"])
    modules = sorted({m for m, _ in acc})
    horizons = [h for h in HORIZONS if any(k[1] == h for k in acc)]
    if not modules:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(modules) + 2), 4))
    width = 0.8 / max(1, len(horizons))
    for j, h in enumerate(horizons):
        values = [(acc[(m, h)][0] / acc[(m, h)][1]) if acc[(m, h)][1] else 0.0 for m in modules]
        ax.bar([i + j * width for i in range(len(modules))], values, width, label=h)
    ax.axhline(0.5, color="grey", linestyle="--", linewidth=1)
    ax.set_xticks([i + width * (len(horizons) - 1) / 2 for i in range(len(modules))], modules)
    ax.set_ylim(0, 1)
    ax.set_ylabel("hit rate")
    ax.set_title("Hit rate per module and horizon")
    ax.legend()
    return _png(fig)


def cumulative_plot(run: BacktestRun) -> str | None:
    """Lines: cumulative signed return per (module, horizon) over detected_at."""
    series: dict[tuple[str, str], list[tuple[Any, float]]] = defaultdict(list)
    for o in run.outcomes:
        if o.status == "resolved" and o.signed_return is not None:
            series[(o.module_id, o.horizon)].append((o.detected_at, float(o.signed_return)))
    if not series:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    for (module, horizon), points in sorted(series.items()):
        points.sort(key=lambda p: p[0])
        total, xs, ys = 0.0, [], []
        for t, r in points:
            total += r
            xs.append(t)
            ys.append(total)
        ax.plot(xs, ys, label=f"{module} {horizon}")
    ax.axhline(0, color="grey", linewidth=1)
    ax.set_ylabel("cumulative signed return")
    ax.set_title("Cumulative signed return per module and horizon")
    ax.legend(fontsize="small", ncol=2)
    fig.autofmt_xdate()
    return _png(fig)


def calibration_plot(bins: Sequence[Mapping[str, Any]]) -> str | None:
    """MOD-010: mean predicted p_1h per bin against the realized frequency, with the diagonal."""
    if not bins:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
    ax.plot([b["mean_p"] for b in bins], [b["frequency"] for b in bins], marker="o", label="MOD-010 p_1h")
    for b in bins:
        ax.annotate(
            str(b["n"]), (b["mean_p"], b["frequency"]), fontsize=7, xytext=(3, 3), textcoords="offset points"
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("predicted p(|move| > 2 %) within 1 h")
    ax.set_ylabel("realized frequency")
    ax.set_title("MOD-010 calibration")
    ax.legend()
    return _png(fig)


# -- HTML -------------------------------------------------------------------------------------------

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; display: block; margin: 1rem 0; }
.note { color: #666; font-style: italic; }
"""


def render_html(run: BacktestRun, calibration: Sequence[Mapping[str, Any]] = ()) -> str:
    s = run.summary()
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = "".join(
        "<tr>" + "".join(
            f'<td class="num">{html.escape(v)}</td>' if i >= 3 else f"<td>{html.escape(v)}</td>"
            for i, v in enumerate(line)
        ) + "</tr>"
        for line in table_cells(run.rows)
    )  # fmt: skip
    facts = "".join(
        f"<li><b>{html.escape(k)}</b>: {html.escape(str(v))}</li>"
        for k, v in (
            ("run", s["run_id"]), ("window", f"{s['start']} to {s['end']}"), ("as of", s["as_of"]),
            ("raw_trades snapshot", s["snapshot_id"]), ("alerts evaluated", s["alerts_evaluated"]),
            ("pending outcomes", s["pending"]), ("unpriced outcomes", s["unpriced"]),
            ("degraded modules", ", ".join(s["degraded"]) or "none"),
        )
    )  # fmt: skip
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>Coat Tail back-test</title>',
        f"<style>{STYLE}</style></head><body>",
        "<h1>Coat Tail back-test</h1>",
        f"<ul>{facts}</ul>",
        f'<table id="results"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>',
    ]
    no_calibration = "No MOD-010 predictive scores resolved in this window: no calibration to show."
    for title, png, empty in (
        ("Hit rate", hit_rate_plot(run.rows), "No alert has resolved yet."),
        ("Cumulative signed return", cumulative_plot(run), "No resolved outcomes to plot."),
        ("MOD-010 calibration", calibration_plot(calibration), no_calibration),
    ):
        parts.append(f"<h2>{html.escape(title)}</h2>")
        if png:
            parts.append(f'<img alt="{html.escape(title)}" src="data:image/png;base64,{png}">')
        else:
            parts.append(f'<p class="note">{html.escape(empty)}</p>')
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(folder: Path, run: BacktestRun, calibration: Sequence[Mapping[str, Any]] = ()) -> Path:
    """``backtest-<start>-<end>.html`` in ``folder`` (or ``folder`` itself when it names an .html file)."""
    if folder.suffix.lower() == ".html":
        path = folder
    else:
        path = folder / f"backtest-{run.window_start:%Y%m%dT%H%M}-{run.window_end:%Y%m%dT%H%M}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(run, calibration), encoding="utf-8")
    return path
