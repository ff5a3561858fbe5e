// Coat Tail Capital dashboard: vanilla JS, no build step, nothing loaded from outside this service.
// The live feed reads /alerts/stream with fetch() rather than EventSource, because EventSource cannot
// send the X-API-Key header; reconnects resume with Last-Event-ID like EventSource would.
"use strict";

const SEVERITIES = ["low", "medium", "high", "critical"];
const MAX_ROWS = 300;
const RETRY_MS = 3000;
const PANEL_REFRESH_MS = 15000;
const LEADERBOARD_REFRESH_MS = 30000;
const LEADERBOARD_SIZE = 20;
// Where an on-chain alert's details name a labelled wallet (MOD-005 enrichment), and how to show it.
const LABEL_FIELDS = [
  ["label", ""], ["from_label", "from "], ["to_label", "to "], ["trader_label", "trader "],
  ["counterparty_label", "counterparty "],
];

const state = {
  alerts: new Map(),        // alert_id -> alert
  fresh: new Set(),         // ids that arrived live (highlighted once)
  lastEventId: null,
  stream: null,             // AbortController of the open stream
  generation: 0,            // bumps on filter change so stale streams stop
  panelTimers: new Map(),
};

const $ = (sel) => document.querySelector(sel);

function apiKey() { return localStorage.getItem("coattail.apiKey") || ""; }

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (apiKey()) headers["X-API-Key"] = apiKey();
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401 && !options.retried) {
    const key = window.prompt("This alert service needs an API key (X-API-Key):", "");
    if (key) {
      localStorage.setItem("coattail.apiKey", key.trim());
      return api(path, Object.assign({}, options, { retried: true }));
    }
  }
  return response;
}

async function getJson(path) {
  const response = await api(path);
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
    throw new Error(`${path}: ${response.status} ${detail}`);
  }
  return response.json();
}

function filters() {
  return {
    type: $("#filter-type").value,
    symbol: $("#filter-symbol").value,
    severity: $("#filter-severity").value,
  };
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  const text = q.toString();
  return text ? `?${text}` : "";
}

function setStatus(kind, text) {
  const el = $("#status");
  el.className = `status ${kind}`;
  el.dataset.state = kind;
  el.textContent = text;
}

// ---- feed ----------------------------------------------------------------------------------------
function fmtTime(iso) { return iso.replace("T", " ").replace("Z", "").slice(0, 19); }

function fmtNumber(value, digits = 2) {
  const n = Number(value);
  if (value === null || value === undefined || Number.isNaN(n)) return "–";
  if (Math.abs(n) >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (Math.abs(n) >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return n.toFixed(digits);
}

// Full digits for a chart's latest value (a price of 60,025.31 must not read "60.0K").
function fmtPrecise(value) {
  const n = Number(value);
  if (!Number.isFinite(n)) return "–";
  if (Math.abs(n) >= 1e7) return fmtNumber(n);
  return n.toLocaleString("en-US", { maximumFractionDigits: Math.abs(n) >= 100 ? 2 : 4 });
}

function cell(text, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  td.textContent = text;
  return td;
}

function renderFeed() {
  const minSeverity = SEVERITIES.indexOf(filters().severity);
  const rows = [...state.alerts.values()]
    .filter((a) => SEVERITIES.indexOf(a.severity) >= minSeverity)
    .sort((a, b) => (a.detected_at < b.detected_at ? 1 : a.detected_at > b.detected_at ? -1 : 0));
  const body = $("#feed tbody");
  const fragment = document.createDocumentFragment();
  for (const a of rows) {
    const tr = document.createElement("tr");
    tr.dataset.alertId = a.alert_id;
    tr.dataset.type = a.alert_type;
    tr.dataset.severity = a.severity;
    if (state.fresh.has(a.alert_id)) tr.className = "new";
    tr.append(cell(fmtTime(a.detected_at), "time"));
    const sev = cell("", "");
    const badge = document.createElement("span");
    badge.className = `sev ${a.severity}`;
    badge.textContent = a.severity;
    sev.append(badge);
    const message = cell(a.message);
    message.append(...labelTags(a.details || {}));
    tr.append(sev, cell(a.alert_type), cell(a.symbol), cell(a.exchange || "cross"), message);
    fragment.append(tr);
  }
  body.replaceChildren(fragment);
  state.fresh.clear();
  $("#feed-empty").hidden = rows.length > 0;
  $("#feed-count").textContent = `${rows.length} alert${rows.length === 1 ? "" : "s"} shown`;
}

// A label is a name (string) or a label object ({label, entity_type}); the alert's own entity_type
// goes with its "label" field.
function labelTags(details) {
  const tags = [];
  for (const [field, prefix] of LABEL_FIELDS) {
    const value = details[field];
    if (!value) continue;
    const name = typeof value === "string" ? value : value.label;
    if (!name) continue;
    const kind = typeof value === "string" ? (field === "label" ? details.entity_type : null) : value.entity_type;
    const tag = document.createElement("span");
    tag.className = `tag${kind ? ` ${kind}` : ""}`;
    tag.dataset.field = field;
    tag.textContent = `${prefix}${name}${kind ? ` (${kind.replace("_", " ")})` : ""}`;
    tags.push(tag);
  }
  return tags;
}

function addAlert(alert, live) {
  if (state.alerts.has(alert.alert_id)) return;
  state.alerts.set(alert.alert_id, alert);
  if (live) state.fresh.add(alert.alert_id);
  if (state.alerts.size > MAX_ROWS) {
    const oldest = [...state.alerts.values()].sort((a, b) => (a.detected_at < b.detected_at ? -1 : 1))[0];
    state.alerts.delete(oldest.alert_id);
  }
}

async function loadFeed() {
  const f = filters();
  const page = await getJson(`/alerts${query({ type: f.type, symbol: f.symbol, limit: 200 })}`);
  for (const alert of page.items) addAlert(alert, false);
  renderFeed();
}

// ---- live stream (SSE over fetch) ----------------------------------------------------------------
async function openStream(generation) {
  const f = filters();
  const controller = new AbortController();
  state.stream = controller;
  const headers = { Accept: "text/event-stream" };
  if (state.lastEventId) headers["Last-Event-ID"] = state.lastEventId;
  try {
    const response = await api(`/alerts/stream${query({ type: f.type, symbol: f.symbol })}`, {
      headers, signal: controller.signal,
    });
    if (!response.ok) throw new Error(`stream answered ${response.status}`);
    setStatus("live", "live");
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let event = {};
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let newline;
      while ((newline = buffer.search(/\r\n|\n|\r/)) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + (buffer.startsWith("\r\n", newline) ? 2 : 1));
        if (line === "") {
          if (event.data !== undefined && (event.event || "message") === "alert") onAlert(event);
          event = {};
        } else if (!line.startsWith(":")) {
          const colon = line.indexOf(":");
          const name = colon < 0 ? line : line.slice(0, colon);
          const val = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          event[name] = name === "data" && event.data !== undefined ? `${event.data}\n${val}` : val;
        }
      }
    }
  } catch (err) {
    if (controller.signal.aborted) return;
    console.warn("alert stream:", err);
  }
  if (generation !== state.generation) return;
  setStatus("error", "reconnecting…");
  setTimeout(() => { if (generation === state.generation) openStream(generation); }, RETRY_MS);
}

function onAlert(event) {
  const alert = JSON.parse(event.data);
  if (event.id) state.lastEventId = event.id;
  addAlert(alert, true);
  renderFeed();
  schedulePanel(alert.symbol, 500);
}

// ---- per-symbol panels ---------------------------------------------------------------------------
// Generic over the active modules: /metrics/{symbol} says which modules there are, which figures of
// their latest alert to show, and every recent window of every series they feed (flagged or not).
const SVG_NS = "http://www.w3.org/2000/svg";
const CHART_W = 240, CHART_H = 48, PAD = 3;

function svgEl(name, attrs) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  return el;
}

// One window series over the chart period: a line through every window, a marker on each flagged one.
function seriesChart(series, from, to) {
  const wrap = document.createElement("div");
  wrap.className = "chart";
  wrap.dataset.module = series.module_id;
  wrap.dataset.series = series.series;
  const points = series.points.filter((p) => p.value !== null && Number.isFinite(p.value));
  const last = points.length ? points[points.length - 1] : null;
  const caption = document.createElement("div");
  caption.className = "label";
  caption.textContent = `${series.series}${last ? ` · ${fmtPrecise(last.value)}` : ""}`;
  const svg = svgEl("svg", { viewBox: `0 0 ${CHART_W} ${CHART_H}`, preserveAspectRatio: "none" });
  if (points.length === 0) {
    const text = svgEl("text", { x: 4, y: 28, class: "empty" });
    text.textContent = "no windows in the last hour";
    svg.append(text);
  } else {
    const t0 = Date.parse(from), t1 = Math.max(Date.parse(to), t0 + 1);
    const values = points.map((p) => p.value);
    const min = Math.min(...values), max = Math.max(...values), span = max - min || 1;
    const x = (p) => PAD + ((Date.parse(p.t) - t0) / (t1 - t0)) * (CHART_W - 2 * PAD);
    const y = (p) => CHART_H - PAD - ((p.value - min) / span) * (CHART_H - 2 * PAD);
    const coords = points.map((p) => `${x(p).toFixed(1)},${y(p).toFixed(1)}`);
    if (coords.length === 1) {  // one window so far: a dot, mid-height
      const [cx] = coords[0].split(",");
      coords[0] = `${cx},${CHART_H / 2}`;
      coords.push(`${(Number(cx) + 2).toFixed(1)},${CHART_H / 2}`);
      svg.append(svgEl("circle", { cx, cy: CHART_H / 2, r: 2.5, class: "dot" }));
    }
    svg.append(svgEl("polyline", { points: coords.join(" ") }));
    for (const p of points.filter((q) => q.flagged)) {
      const marker = svgEl("circle", {
        cx: x(p).toFixed(1), cy: y(p).toFixed(1), r: 3, class: `marker ${p.severity || "medium"}`,
      });
      const title = svgEl("title");
      title.textContent = `${fmtTime(p.t)} ${fmtNumber(p.value)} (${p.severity || "flagged"})`;
      marker.append(title);
      svg.append(marker);
    }
  }
  wrap.append(caption, svg);
  return wrap;
}

function figure(dl, name, value) {
  const dt = document.createElement("dt");
  dt.textContent = name;
  const dd = document.createElement("dd");
  dd.textContent = value;
  dl.append(dt, dd);
}

function figureText(f) {
  if (f.value === null || f.value === undefined || f.value === "") return "–";
  const n = Number(f.value);
  const text = typeof f.value === "number" || (typeof f.value === "string" && f.value !== "" && !Number.isNaN(n))
    ? fmtNumber(f.value) : String(f.value);
  return f.unit ? `${text} ${f.unit}` : text;
}

function renderPanel(m) {
  const panel = document.getElementById(`panel-${m.symbol}`);
  if (!panel) return;
  const h3 = document.createElement("h3");
  h3.textContent = m.symbol;
  const count = document.createElement("span");
  count.className = "count";
  const n = m.anomaly_count;
  count.textContent = `${n}${m.complete ? "" : "+"} alert${n === 1 ? "" : "s"} / 24 h`;
  h3.append(count);
  const dl = document.createElement("dl");
  dl.className = "figures";
  for (const mod of m.modules) {
    for (const f of mod.figures) figure(dl, f.label, figureText(f));
    if (mod.figures.length === 0) figure(dl, mod.title, `${mod.alert_count} alert${mod.alert_count === 1 ? "" : "s"}`);
  }
  const charts = m.series.map((s) => seriesChart(s, m.window_since, m.generated_at));
  panel.replaceChildren(h3, dl, ...charts);
  panel.dataset.loaded = "true";
}

async function refreshPanel(symbol) {
  try {
    renderPanel(await getJson(`/metrics/${encodeURIComponent(symbol)}`));
  } catch (err) {
    console.warn(err);
  }
}

function schedulePanel(symbol, delay) {
  clearTimeout(state.panelTimers.get(symbol));
  state.panelTimers.set(symbol, setTimeout(() => refreshPanel(symbol), delay));
}

// ---- wallet leaderboard -------------------------------------------------------------------------
function shortAddress(address) {
  return address.length > 16 ? `${address.slice(0, 8)}…${address.slice(-6)}` : address;
}

function fmtPercent(value, digits = 1) {
  const n = Number(value);
  return Number.isFinite(n) ? `${n.toFixed(digits)}%` : "–";
}

async function refreshLeaderboard() {
  const chain = $("#wallet-chain").value;
  if (!chain) return;
  let page;
  try {
    page = await getJson(`/wallets/top${query({ chain, limit: LEADERBOARD_SIZE })}`);
  } catch (err) {
    console.warn(err);
    return;
  }
  if (page.chain !== $("#wallet-chain").value) return;  // the selection changed meanwhile
  const fragment = document.createDocumentFragment();
  for (const w of page.wallets) {
    const tr = document.createElement("tr");
    tr.dataset.address = w.address;
    const addr = cell(shortAddress(w.address), "addr");
    addr.title = w.address;
    const label = cell(w.label ? w.label.label : "–");
    if (w.label) label.title = `${w.label.entity_type} · ${w.label.source}`;
    tr.append(
      cell(String(w.rank), "num"), addr, label, cell(fmtNumber(w.alpha), "num"),
      cell(fmtPercent(w.alpha_percentile), "num"), cell(fmtPercent(100 * w.win_rate, 0), "num"),
      cell(String(w.trade_count), "num"), cell(fmtTime(w.scored_at), "time"),
    );
    fragment.append(tr);
  }
  $("#leaderboard tbody").replaceChildren(fragment);
  $("#leaderboard-empty").hidden = page.wallets.length > 0;
  $("#leaderboard").dataset.chain = page.chain;
}

// The chains come from the API's own description of GET /wallets/top (no second list here).
async function startLeaderboard() {
  let chains = [];
  try {
    const spec = await getJson("/openapi.json");
    const param = spec.paths["/wallets/top"].get.parameters.find((p) => p.name === "chain");
    chains = param.schema.enum || [];
  } catch (err) {
    console.warn("wallet leaderboard:", err);
  }
  if (chains.length === 0) {
    document.querySelector("section.wallets").hidden = true;
    return;
  }
  for (const c of chains) $("#wallet-chain").append(new Option(c, c));
  $("#wallet-chain").addEventListener("change", refreshLeaderboard);
  await refreshLeaderboard();
  setInterval(refreshLeaderboard, LEADERBOARD_REFRESH_MS);
}

// ---- back-test (MOD-011) and prediction (MOD-010) ------------------------------------------------
// Shown only when the active tier runs the module; a 404 (nothing has run yet) leaves them hidden.
const BACKTEST_MODULE = "MOD-011";
const PREDICTION_MODULE = "MOD-010";
const BACKTEST_REFRESH_MS = 60000;
const LIKELY_MOVE = 0.7;  // MOD-010's high_probability_move threshold

// The JSON of `path`, or null when the API has nothing there (404).
async function getOptional(path) {
  const response = await api(path);
  if (response.status === 404) return null;
  if (!response.ok) throw new Error(`${path}: ${response.status} ${response.statusText}`);
  return response.json();
}

function horizonSeconds(h) {
  const m = /^(\d+)([smhdw])$/.exec(h || "");
  return m ? Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400, w: 604800 }[m[2]] : Infinity;
}

// Per (module, horizon) over the run's symbols: n-weighted hit rate and mean return, and the Sharpe
// of the pooled signed returns (each row's std is its mean / Sharpe; null when a row cannot say).
function backtestGroups(results) {
  const groups = new Map();
  for (const r of results) {
    const key = `${r.module_id}|${r.horizon}`;
    if (!groups.has(key)) groups.set(key, { module_id: r.module_id, horizon: r.horizon, rows: [] });
    if (r.n > 0) groups.get(key).rows.push(r);
  }
  const out = [];
  for (const g of groups.values()) {
    const n = g.rows.reduce((a, r) => a + r.n, 0);
    const hits = g.rows.filter((r) => r.hit_rate !== null);
    const means = g.rows.filter((r) => r.mean_return !== null);
    const nHit = hits.reduce((a, r) => a + r.n, 0), nMean = means.reduce((a, r) => a + r.n, 0);
    const hit = nHit ? hits.reduce((a, r) => a + r.n * r.hit_rate, 0) / nHit : null;
    const mean = nMean ? means.reduce((a, r) => a + r.n * r.mean_return, 0) / nMean : null;
    let sharpe = null;
    if (g.rows.length === 1) {
      sharpe = g.rows[0].sharpe;
    } else if (n > 1 && mean !== null && means.length === g.rows.length) {
      let ss = 0, known = true;
      for (const r of g.rows) {
        if (r.n > 1) {
          if (!r.sharpe) { known = false; break; }
          const sd = r.mean_return / r.sharpe;
          ss += (r.n - 1) * sd * sd;
        }
        ss += r.n * (r.mean_return - mean) ** 2;
      }
      const sd = Math.sqrt(ss / (n - 1));
      sharpe = known && sd > 0 ? mean / sd : null;
    }
    out.push({ module_id: g.module_id, horizon: g.horizon, n, hit_rate: hit, mean_return: mean, sharpe });
  }
  return out.sort((a, b) => a.module_id.localeCompare(b.module_id)
    || horizonSeconds(a.horizon) - horizonSeconds(b.horizon));
}

function hitClass(rate) {
  if (rate === null || rate === undefined) return "";
  return rate >= 0.55 ? "good" : rate >= 0.45 ? "fair" : "poor";
}

async function refreshBacktest() {
  let found;
  try {
    found = await getOptional("/backtests/latest");
  } catch (err) {
    console.warn("back-test:", err);
    return;
  }
  const section = $("#backtest");
  if (!found) { section.hidden = true; return; }
  const run = found.run;
  const parts = [`run ${run.backtest_date || fmtTime(run.end || "")}`];
  if (run.alerts_evaluated !== null && run.alerts_evaluated !== undefined) {
    parts.push(`${run.alerts_evaluated} alerts evaluated`);
  }
  if (run.pending) parts.push(`${run.pending} pending`);
  $("#backtest-run").textContent = parts.join(" · ");
  const fragment = document.createDocumentFragment();
  for (const g of backtestGroups(found.results)) {
    const tr = document.createElement("tr");
    tr.dataset.module = g.module_id;
    tr.dataset.horizon = g.horizon;
    const hit = cell(g.hit_rate === null ? "–" : fmtPercent(100 * g.hit_rate), `num hit ${hitClass(g.hit_rate)}`);
    tr.append(
      cell(g.module_id), cell(g.horizon), cell(String(g.n), "num"), hit,
      cell(g.mean_return === null ? "–" : fmtPercent(100 * g.mean_return, 2), "num"),
      cell(g.sharpe === null || g.sharpe === undefined ? "–" : Number(g.sharpe).toFixed(2), "num"),
    );
    fragment.append(tr);
  }
  $("#backtest-table tbody").replaceChildren(fragment);
  $("#backtest-table").dataset.run = run.run_id;
  section.hidden = false;
}

async function refreshPrediction() {
  const symbol = $("#prediction-symbol").value;
  if (!symbol) return;
  let found;
  try {
    found = await getOptional(`/predictions/${encodeURIComponent(symbol)}${query({ limit: 1 })}`);
  } catch (err) {
    console.warn("prediction:", err);
    return;
  }
  if (symbol !== $("#prediction-symbol").value) return;  // the selection changed meanwhile
  const dl = $("#prediction-figure");
  const latest = found && found.predictions.length ? found.predictions[0] : null;
  $("#prediction").hidden = latest === null;  // no score for the symbol: no figure (the feed's symbol
  dl.replaceChildren();                       // filter still chooses another)
  dl.dataset.symbol = symbol;
  dl.dataset.scoredAt = latest ? latest.scored_at : "";
  if (!latest) return;
  for (const h of ["1h", "2h", "4h"]) {
    const p = latest[`p_${h}`];
    figure(dl, `p ${h}`, p === null || p === undefined ? "–" : fmtPercent(100 * p));
    if (p >= LIKELY_MOVE) dl.lastElementChild.classList.add("likely");
  }
  figure(dl, "scored (UTC)", fmtTime(latest.scored_at));
}

function startAnalytics(active, symbols) {
  if (active.has(BACKTEST_MODULE)) {
    refreshBacktest();
    setInterval(refreshBacktest, BACKTEST_REFRESH_MS);
  }
  if (active.has(PREDICTION_MODULE) && symbols.length) {
    for (const s of symbols) $("#prediction-symbol").append(new Option(s, s));
    $("#prediction-symbol").addEventListener("change", refreshPrediction);
    $("#filter-symbol").addEventListener("change", () => {  // follows the feed's symbol when one is chosen
      const chosen = $("#filter-symbol").value;
      if (chosen && chosen !== $("#prediction-symbol").value) {
        $("#prediction-symbol").value = chosen;
        refreshPrediction();
      }
    });
    refreshPrediction();
    setInterval(refreshPrediction, PANEL_REFRESH_MS);
  }
}

// ---- start-up and filter changes -----------------------------------------------------------------
async function restart() {
  state.generation += 1;
  if (state.stream) state.stream.abort();
  state.alerts.clear();
  state.lastEventId = null;
  setStatus("connecting", "connecting…");
  try {
    await loadFeed();
  } catch (err) {
    setStatus("error", String(err.message || err));
  }
  openStream(state.generation);
}

async function main() {
  try {
    const [types, symbols] = await Promise.all([getJson("/alert-types"), getJson("/symbols")]);
    for (const t of types.alert_types) $("#filter-type").append(new Option(t.alert_type, t.alert_type));
    for (const s of symbols.symbols) {
      $("#filter-symbol").append(new Option(s, s));
      const panel = document.createElement("article");
      panel.className = "panel";
      panel.id = `panel-${s}`;
      panel.textContent = s;
      $("#panels").append(panel);
      refreshPanel(s);
    }
    setInterval(() => symbols.symbols.forEach((s) => refreshPanel(s)), PANEL_REFRESH_MS);
    startAnalytics(new Set(types.alert_types.map((t) => t.module_id)), symbols.symbols);
  } catch (err) {
    setStatus("error", String(err.message || err));
  }
  $("#filter-type").addEventListener("change", restart);
  $("#filter-symbol").addEventListener("change", restart);
  $("#filter-severity").addEventListener("change", renderFeed);
  restart();
  startLeaderboard();
}

main();
