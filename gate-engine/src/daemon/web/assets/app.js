// gate's web page: the overview of active trains (`/`) and a page per train
// (`/trains/{id}`), rendered from the JSON API on the same origin. No library, no inline
// code (the page is served with `Content-Security-Policy: default-src 'self'`).
"use strict";

const TOKEN_KEY = "gate.token";
const SEVERITY = { rollback: 0, pause: 1, pending: 2, promote: 3 };
const PAGE_SIZE = 100;
const DECISION_COLORS = { promote: "#1a7f37", pending: "#6e7781", pause: "#9a6700", rollback: "#cf222e" };
const COLORS = ["#0969da", "#8250df", "#bf3989", "#1b7c83", "#953800", "#4d2d00"];

const main = () => document.getElementById("main");
const statusLine = (text) => { document.getElementById("status").textContent = text; };

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

// --- API --------------------------------------------------------------------------------

class Unauthorized extends Error {}

// A 401: a token that was sent is dropped, so the page asks again.
function unauthorized(sent) {
  const e = new Unauthorized(sent ? "the token was refused" : "a token is needed");
  if (sent) sessionStorage.removeItem(TOKEN_KEY);
  e.refused = Boolean(sent);
  return e;
}

async function api(path, options) {
  const headers = { Accept: "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = "Bearer " + token;
  const response = await fetch(path, Object.assign({ headers, cache: "no-store" }, options || {}));
  if (response.status === 401) throw unauthorized(token);
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const message = body && body.error ? body.error.message : response.statusText;
    const err = new Error(message);
    err.status = response.status;
    throw err;
  }
  return body;
}

function askToken(retry, refused) {
  const input = el("input", { type: "password", id: "token", autocomplete: "off", required: "" });
  const form = el("form", { class: "token" },
    el("h1", { text: "This gate needs a token to read" }),
    refused ? el("p", { class: "error", id: "token-refused", text: "That token was refused; enter it again." }) : null,
    el("label", { for: "token" }, "API token (GATE_API_TOKEN); kept for this browser session only", input),
    el("button", { type: "submit", text: "Continue" }));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    retry();
  });
  main().replaceChildren(form);
  input.focus();
}

// --- Formatting -------------------------------------------------------------------------

function verdict(decision, big) {
  return el("span", { class: `verdict v-${decision}${big ? " big" : ""}`, "data-decision": decision, text: decision });
}

function age(startedAt, now) {
  let s = Math.max(0, Math.floor((now - Date.parse(startedAt)) / 1000));
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  if (d) return `${d}d${h}h`;
  if (h) return `${h}h${m}m`;
  if (m) return `${m}m${s}s`;
  return `${s}s`;
}

function num(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "—";
  if (typeof v !== "number") return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 0.001 || a >= 1e6)) return v.toExponential(2);
  return String(Math.round(v * 1000) / 1000);
}

function burnCell(w) {
  if (!w) return el("span", { class: "muted", text: "no data" });
  const over = w.value > w.threshold;
  return el("span", { class: over ? "over" : null, title: `${w.signal} (rule ${w.rule})` },
    `${num(w.value)} / ${num(w.threshold)}`, over ? " over" : "");
}

const trainHref = (id) => "/trains/" + encodeURIComponent(id);

// --- Overview ---------------------------------------------------------------------------

// The list is read once, then kept current from the daemon's change stream (`/v1/events`):
// each change replaces its train in place. The whole list is read again when the stream
// (re)connects, when it says it dropped changes, and every REREAD_MS for the burn rates,
// which change with every evaluation but are not streamed.
const REREAD_MS = 60000;
const overview = { trains: new Map(), sorted: [], page: 0, filter: null, stream: null, timer: null, pending: null, again: false, draw: null };

async function loadAll(state, gate) {
  const q = new URLSearchParams({ state });
  if (gate) q.set("gate", gate);
  const body = await api("/v1/trains?" + q);
  return body.trains;
}

function severityOrder(a, b) {
  const s = SEVERITY[a.decision] - SEVERITY[b.decision];
  if (s) return s;
  const ra = a.worst_burn ? a.worst_burn.value / a.worst_burn.threshold : -1;
  const rb = b.worst_burn ? b.worst_burn.value / b.worst_burn.threshold : -1;
  if (ra !== rb) return rb - ra;
  return a.train < b.train ? -1 : a.train > b.train ? 1 : 0;
}

const ACTIVE = new Set(["verifying", "promoted", "paused", "rolled_back"]);

function matches(t, filter) {
  if (filter.gate && t.gate !== filter.gate) return false;
  if (filter.state === "all") return true;
  if (filter.state === "active") return ACTIVE.has(t.state);
  return t.state === filter.state;
}

// Reads `/v1/events` with fetch (EventSource cannot send the token) and calls `onEvent`
// with each event's name and data until the stream ends or `signal` aborts it.
async function readEvents(signal, onEvent) {
  const headers = { Accept: "text/event-stream" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = "Bearer " + token;
  const response = await fetch("/v1/events", { headers, cache: "no-store", signal });
  if (response.status === 401) throw unauthorized(token);
  if (!response.ok || !response.body) throw new Error("the change stream answered " + response.status);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") name = text; else if (field === "data") data.push(text);
      }
      if (data.length) onEvent(name, data.join("\n"));
    }
  }
}

function showOverview() {
  const params = new URLSearchParams(location.search);
  const state = params.get("state") || "active";
  const gate = params.get("gate") || "";
  const stateSelect = el("select", { id: "f-state", name: "state" },
    ["active", "verifying", "promoted", "paused", "rolled_back", "all"].map((s) =>
      el("option", { value: s, selected: s === state ? "" : null, text: s })));
  const gateSelect = el("select", { id: "f-gate", name: "gate" }, el("option", { value: "", text: "all gates" }));
  const count = el("p", { id: "count", class: "muted" });
  const tbody = el("tbody", { id: "rows" });
  const pager = el("nav", { class: "pager", "aria-label": "pages" });
  main().replaceChildren(
    el("h1", { text: "Release trains" }),
    el("div", { class: "controls" },
      el("label", { for: "f-state" }, "State", stateSelect),
      el("label", { for: "f-gate" }, "Gate", gateSelect)),
    count,
    el("table", { class: "trains" },
      el("caption", { class: "muted", text: "Tab to a row and press Enter to open the train." }),
      el("thead", {}, el("tr", {}, ["Verdict", "Train", "Gate", "Age", "Worst burn / threshold", "Rule", "Reason"].map((h) => el("th", { scope: "col", text: h })))),
      tbody),
    pager);
  tbody.addEventListener("keydown", (e) => {
    const row = e.target.closest && e.target.closest("tr[data-train]");
    if (e.key === "Enter" && row && e.target === row) location.assign(trainHref(row.dataset.train));
  });

  const gatesSeen = new Set(gate ? [gate] : []);
  const draw = () => {
    overview.draw = null;
    const t0 = performance.now();
    overview.sorted = [...overview.trains.values()].sort(severityOrder);
    for (const t of overview.sorted) gatesSeen.add(t.gate);
    if (gateSelect.options.length - 1 !== gatesSeen.size) {
      const chosen = gateSelect.value || gate;
      gateSelect.replaceChildren(el("option", { value: "", text: "all gates" }),
        [...gatesSeen].sort().map((g) => el("option", { value: g, selected: g === chosen ? "" : null, text: g })));
    }
    render(tbody, pager, count);
    document.body.dataset.renderMs = (performance.now() - t0).toFixed(1);
    document.body.dataset.loaded = String(overview.trains.size);
  };
  const redraw = () => { if (!overview.draw) overview.draw = requestAnimationFrame(draw); };

  // A change from the stream: kept when newer than what the list has.
  const apply = (t) => {
    const held = overview.trains.get(t.train);
    if (held && held.seq > t.seq) return;
    document.body.dataset.streamed = String(Number(document.body.dataset.streamed || 0) + 1);
    if (matches(t, overview.filter)) overview.trains.set(t.train, t); else overview.trains.delete(t.train);
    redraw();
  };
  // Reads the whole list; changes that arrive meanwhile are applied after it.
  async function reread() {
    if (overview.pending) { overview.again = true; return; }
    const filter = overview.filter;
    overview.pending = [];
    overview.again = false;
    try {
      const trains = await loadAll(filter.state, filter.gate);
      if (filter !== overview.filter) return;
      overview.trains = new Map(trains.map((t) => [t.train, t]));
      const held = overview.pending;
      overview.pending = null;
      for (const t of held) apply(t);
      draw();
      if (!document.body.dataset.shownMs) document.body.dataset.shownMs = performance.now().toFixed(0);
      statusLine("live; list read at " + new Date().toLocaleTimeString());
    } catch (e) {
      if (e instanceof Unauthorized) { overview.again = false; stop(); askToken(showOverview, e.refused); return; }
      statusLine("cannot reach the API: " + e.message);
    } finally {
      overview.pending = null;
      if (overview.again) setTimeout(reread, 0);
    }
  }
  function stop() {
    clearInterval(overview.timer);
    overview.timer = null;
    if (overview.stream) overview.stream.abort();
    overview.stream = null;
  }
  async function listen() {
    const controller = new AbortController();
    overview.stream = controller;
    try {
      await readEvents(controller.signal, (name, data) => {
        if (name === "ready" || name === "resync") { reread(); return; }
        if (name !== "train") return;
        const t = JSON.parse(data);
        if (overview.pending) overview.pending.push(t); else apply(t);
      });
      if (controller.signal.aborted) return;
      statusLine("live updates interrupted; reconnecting");
    } catch (e) {
      if (controller.signal.aborted || e.name === "AbortError") return;
      if (e instanceof Unauthorized) { stop(); askToken(showOverview, e.refused); return; }
      statusLine("live updates interrupted (" + e.message + "); reconnecting");
    }
    if (overview.stream === controller) setTimeout(() => { if (overview.stream === controller) listen(); }, 2000);
  }
  const start = () => {
    stop();
    overview.filter = { state: stateSelect.value, gate: gateSelect.value };
    overview.trains = new Map();
    overview.page = 0;
    listen();
    overview.timer = setInterval(reread, REREAD_MS);
  };
  const onFilter = () => {
    const q = new URLSearchParams();
    if (stateSelect.value !== "active") q.set("state", stateSelect.value);
    if (gateSelect.value) q.set("gate", gateSelect.value);
    history.replaceState(null, "", "/" + (q.toString() ? "?" + q : ""));
    start();
  };
  stateSelect.addEventListener("change", onFilter);
  gateSelect.addEventListener("change", onFilter);
  if (gate) gateSelect.replaceChildren(el("option", { value: "", text: "all gates" }), el("option", { value: gate, selected: "", text: gate }));
  start();
}

function render(tbody, pager, count) {
  const trains = overview.sorted;
  const pages = Math.max(1, Math.ceil(trains.length / PAGE_SIZE));
  overview.page = Math.min(overview.page, pages - 1);
  const from = overview.page * PAGE_SIZE;
  const now = Date.now();
  const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.train : null;
  const rows = trains.slice(from, from + PAGE_SIZE).map((t) =>
    el("tr", { "data-train": t.train, "data-decision": t.decision, "data-seq": t.seq, tabindex: "0", "aria-label": `${t.train}: ${t.decision}` },
      el("td", { "data-label": "Verdict" }, verdict(t.decision), t.pinned ? el("span", { class: "muted", text: " pinned" }) : null),
      el("td", { "data-label": "Train" }, el("a", { href: trainHref(t.train), tabindex: "-1", text: t.train })),
      el("td", { "data-label": "Gate", text: t.gate }),
      el("td", { "data-label": "Age", class: "num", text: age(t.started_at, now) }),
      el("td", { "data-label": "Worst burn", class: "num" }, burnCell(t.worst_burn)),
      el("td", { "data-label": "Rule", text: t.rule || "—" }),
      el("td", { "data-label": "Reason", text: t.reason })));
  tbody.replaceChildren(...rows);
  if (focused) {
    const again = rows.find((r) => r.dataset.train === focused);
    if (again) again.focus();
  }
  count.textContent = trains.length === 0 ? "No trains match." :
    `${trains.length} trains, most severe first; showing ${from + 1}–${from + rows.length}.`;
  const button = (label, page, disabled) => {
    const b = el("button", { type: "button", disabled: disabled ? "" : null, text: label });
    b.addEventListener("click", () => { overview.page = page; render(tbody, pager, count); });
    return b;
  };
  pager.replaceChildren(
    button("← previous", overview.page - 1, overview.page === 0),
    el("span", { class: "muted", text: `page ${overview.page + 1} of ${pages}` }),
    button("next →", overview.page + 1, overview.page >= pages - 1));
}

// --- Train page -------------------------------------------------------------------------

const trainPage = { seq: null, abort: null };

async function showTrain(id) {
  if (trainPage.abort) trainPage.abort.abort();
  let train, events;
  try {
    [train, events] = await Promise.all([
      api("/v1/trains/" + encodeURIComponent(id)),
      api("/v1/trains/" + encodeURIComponent(id) + "/events"),
    ]);
  } catch (e) {
    if (e instanceof Unauthorized) { askToken(() => showTrain(id), e.refused); return; }
    main().replaceChildren(el("h1", { text: id }), el("p", { class: "error", text: e.message }), el("a", { href: "/", text: "all trains" }));
    return;
  }
  let settings = {};
  try { settings = await api("/web/settings.json"); } catch (e) { statusLine("settings: " + e.message); }
  train.prometheus_url = settings.prometheus_url || "";
  renderTrain(train, events.events || []);
  statusLine("updated " + new Date().toLocaleTimeString());
  watchTrain(id, train.seq);
  loadSeries(train, events.events || []);
}

// Reads the train's signals over its life and draws them in place of the placeholder.
async function loadSeries(t, events) {
  let series = null, failure = null;
  try {
    series = await api("/v1/trains/" + encodeURIComponent(t.train) + "/series");
  } catch (e) {
    if (e instanceof Unauthorized) { askToken(() => showTrain(t.train), e.refused); return; }
    failure = e.message;
  }
  const placeholder = document.getElementById("chart");
  if (!placeholder || placeholder.dataset.train !== t.train || placeholder.dataset.source !== "loading") return;
  placeholder.replaceWith(chart(t, t.evaluation || null, events, { series, failure }));
}

// Long-polls the train's decision and redraws the page when its seq moves.
async function watchTrain(id, seq) {
  const controller = new AbortController();
  trainPage.abort = controller;
  try {
    const body = await api(`/v1/trains/${encodeURIComponent(id)}/decision?wait=30s&after_seq=${seq}`, { signal: controller.signal });
    if (controller.signal.aborted) return;
    if (body.seq !== seq) { showTrain(id); return; }
    watchTrain(id, seq);
  } catch (e) {
    if (controller.signal.aborted || e.name === "AbortError") return;
    statusLine("live updates paused: " + e.message);
    setTimeout(() => watchTrain(id, seq), 2000);
  }
}

function renderTrain(t, events) {
  const ev = t.evaluation || null;
  const now = Date.now();
  const parts = [
    el("p", {}, el("a", { href: "/", text: "← all trains" })),
    el("h1", {}, verdict(t.decision, true), " ", t.train),
    el("p", { class: "reason", id: "reason", text: t.reason }),
    el("div", { class: "facts" },
      el("span", {}, "state ", el("strong", { text: t.state })),
      el("span", {}, "gate ", el("strong", { text: t.gate })),
      el("span", {}, "age ", el("strong", { text: age(t.started_at, now) })),
      t.rule ? el("span", {}, "rule ", el("strong", { text: t.rule })) : null,
      t.pinned ? el("span", {}, "pinned ", el("strong", { text: t.pinned })) : null,
      t.baseline ? el("span", {}, "baseline ", el("a", { href: trainHref(t.baseline), text: t.baseline })) : null,
      el("span", {}, "seq ", el("strong", { id: "seq", text: t.seq }))),
  ];
  parts.push(el("h2", { text: "Burn rate per window" }),
    el("figure", { class: "chart", id: "chart", "data-source": "loading", "data-train": t.train },
      el("p", { class: "muted", text: "Reading the burn rates over the train's life from Prometheus…" })));
  if (ev) {
    parts.push(el("h2", { text: "Rules" }), rulesTable(ev));
    const deltas = Object.entries((ev.signals && ev.signals.error_delta) || {});
    if (deltas.length) parts.push(el("h2", { text: "Error delta against the baseline" }), deltaTable(deltas));
  } else {
    parts.push(el("p", { class: "muted", text: "Not evaluated yet." }));
  }
  parts.push(el("h2", { text: "Decision timeline and audit trail" }), timeline(events));
  if (ev && ev.queries && ev.queries.length) parts.push(el("h2", { text: "Queries" }), queries(ev.queries, t));
  parts.push(el("h2", { text: "Override from the CLI" }), overrides(t.train));
  main().replaceChildren(...parts);
}

const BURN = /^burn_rate\("([^"]*)",\s*"([^"]*)"\)$/;

// The points to draw: the series endpoint's steps when it answered, else the burn rates
// recorded with each decision change and the latest evaluation.
function chartPoints(ev, events, series) {
  if (series) {
    return series.steps.map((s) => ({ t: Date.parse(s.at), at: s.at, burn: s.burn_rate || {} }));
  }
  const steps = [];
  for (const e of events) {
    if (e.kind === "decision" && e.evidence && e.evidence.signals) {
      steps.push({ t: Date.parse(e.evaluated_at), at: e.evaluated_at, burn: e.evidence.signals.burn_rate || {} });
    }
  }
  if (ev && ev.signals) steps.push({ t: Date.parse(ev.evaluated_at), at: ev.evaluated_at, burn: ev.signals.burn_rate || {} });
  steps.sort((a, b) => a.t - b.t);
  return steps;
}

// The rules' burn-rate thresholds: the series endpoint's, else the latest evaluation's.
function chartThresholds(ev, series) {
  const list = series ? series.thresholds :
    ((ev && ev.rules) || []).flatMap((r) => (r.thresholds || []).map((th) => Object.assign({ rule: r.name }, th)));
  const out = [];
  for (const th of list) {
    const m = BURN.exec(th.signal);
    if (m) out.push({ key: `${m[1]} ${m[2]}`, value: th.value, op: th.op, rule: th.rule });
  }
  return out;
}

function chart(t, ev, events, { series, failure }) {
  const steps = chartPoints(ev, events, series);
  const source = series ? "series" : "evaluations";
  const lines = new Map();
  for (const s of steps) {
    for (const [slo, windows] of Object.entries(s.burn)) {
      for (const [w, v] of Object.entries(windows)) {
        const key = `${slo} ${w}`;
        if (!lines.has(key)) lines.set(key, []);
        lines.get(key).push({ t: s.t, at: s.at, v: typeof v === "number" ? v : null });
      }
    }
  }
  const thresholds = chartThresholds(ev, series);
  const marks = events.filter((e) => e.kind === "decision" || e.kind === "override")
    .map((e) => ({ t: Date.parse(e.kind === "decision" ? e.evaluated_at : e.at), kind: e.kind, decision: e.decision, label: e.kind === "override" ? `override ${e.action} by ${e.actor}` : `${e.previous} → ${e.decision}` }));
  const box = el("figure", { class: "chart", id: "chart", "data-source": source, "data-train": t.train, "data-points": String(steps.length), "data-step": series ? series.step : null, "data-from": series ? series.from : null, "data-to": series ? series.to : null });
  const note = failure ? el("p", { class: "error", text: `The series could not be read (${failure}); showing the burn rates recorded with the decisions.` }) : null;
  if (!steps.length) { box.append(...[note, el("p", { class: "muted", text: "No burn rates yet." })].filter(Boolean)); return box; }

  const W = 800, H = 300, L = 50, R = 10, T = 10, B = 30;
  const span = series ? [Date.parse(series.from), Date.parse(series.to)] : [Date.parse(t.started_at)];
  const t0 = Math.min(...span, ...steps.map((s) => s.t), ...marks.map((m) => m.t));
  const t1 = Math.max(t0 + 1000, ...span, ...steps.map((s) => s.t), ...marks.map((m) => m.t));
  let vmax = 0;
  for (const pts of lines.values()) for (const p of pts) if (p.v !== null) vmax = Math.max(vmax, p.v);
  for (const th of thresholds) vmax = Math.max(vmax, th.value);
  vmax = vmax > 0 ? vmax * 1.1 : 1;
  const x = (tt) => L + ((tt - t0) / (t1 - t0)) * (W - L - R);
  const y = (v) => T + (1 - v / vmax) * (H - T - B);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `burn rate per window of ${t.train}` });
  for (let i = 0; i <= 4; i++) {
    const v = (vmax / 4) * i;
    root.append(svg("line", { class: "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) }),
      svg("text", { x: L - 4, y: y(v) + 4, "text-anchor": "end" }, num(v)));
  }
  root.append(svg("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }),
    svg("text", { x: L, y: H - 8 }, new Date(t0).toISOString().slice(11, 16) + "Z"),
    svg("text", { x: W - R, y: H - 8, "text-anchor": "end" }, new Date(t1).toISOString().slice(11, 16) + "Z"));
  const legend = el("div", { class: "legend" });
  const keys = [...lines.keys()].sort();
  const radius = steps.length > 150 ? 1.2 : 2.5;
  keys.forEach((key, i) => {
    const color = COLORS[i % COLORS.length];
    const pts = lines.get(key);
    let d = "", pen = false;
    for (const p of pts) {
      if (p.v === null) { pen = false; continue; }
      d += `${pen ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`;
      pen = true;
    }
    root.append(svg("path", { class: "series", d, stroke: color, "data-key": key }));
    for (const p of pts) {
      if (p.v === null) continue;
      const c = svg("circle", { class: "point", cx: x(p.t).toFixed(1), cy: y(p.v).toFixed(1), r: radius, fill: color, "data-key": key, "data-value": String(p.v), "data-t": p.at });
      c.append(svg("title", {}, `${key}: ${num(p.v)} at ${p.at}`));
      root.append(c);
    }
    legend.append(el("span", {}, el("span", { class: "swatch", "data-color": color }), key));
  });
  for (const th of thresholds) {
    const i = keys.indexOf(th.key);
    const color = i >= 0 ? COLORS[i % COLORS.length] : "#59636e";
    const line = svg("line", { class: "threshold", x1: L, x2: W - R, y1: y(th.value), y2: y(th.value), stroke: color, "data-key": th.key, "data-value": String(th.value) });
    line.append(svg("title", {}, `${th.rule}: ${th.key} ${th.op} ${th.value}`));
    root.append(line, svg("text", { x: W - R - 2, y: y(th.value) - 3, "text-anchor": "end" }, `${th.rule} ${num(th.value)}`));
  }
  for (const m of marks) {
    const color = m.kind === "override" ? "#8250df" : DECISION_COLORS[m.decision];
    const line = svg("line", { class: "marker", x1: x(m.t), x2: x(m.t), y1: T, y2: H - B, stroke: color, "data-kind": m.kind });
    line.append(svg("title", {}, `${m.label} at ${new Date(m.t).toISOString()}`));
    root.append(line);
  }
  // Swatch colours are set through the CSSOM, which the content security policy allows (it
  // forbids inline style attributes in markup only).
  for (const sw of legend.querySelectorAll(".swatch")) sw.style.background = sw.dataset.color;
  box.append(...[note, root, legend, el("figcaption", { class: "muted", text: series
    ? `Burn rate every ${series.step} from the start, read from Prometheus; dashed lines: the rules' thresholds; vertical lines: decision changes (coloured by decision) and overrides (purple).`
    : "Burn rate at each recorded evaluation that changed the decision and at the latest one; dashed lines: the rules' thresholds; vertical lines: decision changes and overrides." })].filter(Boolean));
  return box;
}

function rulesTable(ev) {
  const rows = [];
  for (const r of ev.rules) {
    const values = Object.entries(r.values || {});
    const thr = new Map((r.thresholds || []).map((th) => [th.signal, `${th.op} ${num(th.value)}`]));
    const valueText = values.length ? values.map(([k, v]) => `${k} = ${num(v)}${thr.has(k) ? " (threshold " + thr.get(k) + ")" : ""}`).join("; ") : "—";
    const fired = r.fired === true ? "fired" : r.fired === false ? "not fired" : "unknown";
    rows.push(el("tr", { "data-rule": r.name },
      el("td", {}, el("strong", { text: r.name })),
      el("td", {}, verdict(r.then)),
      el("td", {}, el("code", { text: r.when })),
      el("td", { class: "num", text: valueText }),
      el("td", { class: r.fired ? "over" : null, text: fired + (r.unknown_reason ? `: ${r.unknown_reason}` : "") + (r.for_evaluations > 1 ? ` (${r.streak}/${r.for_evaluations})` : "") })));
  }
  return el("table", {}, el("thead", {}, el("tr", {}, ["Rule", "Then", "When", "Values", "Fired"].map((h) => el("th", { scope: "col", text: h })))), el("tbody", {}, rows));
}

function deltaTable(deltas) {
  return el("table", {},
    el("thead", {}, el("tr", {}, ["SLO", "Train errors", "Baseline errors", "Absolute", "Relative", "p-value", "Significant"].map((h) => el("th", { scope: "col", text: h })))),
    el("tbody", {}, deltas.map(([slo, d]) => d ? el("tr", {},
      el("td", { text: slo }), el("td", { class: "num", text: num(d.train_ratio) }), el("td", { class: "num", text: num(d.baseline_ratio) }),
      el("td", { class: "num", text: num(d.absolute) }), el("td", { class: "num", text: num(d.relative) }),
      el("td", { class: "num", text: num(d.p_value) }), el("td", { class: d.significant ? "over" : null, text: d.significant ? "yes" : "no" }))
      : el("tr", {}, el("td", { text: slo }), el("td", { colspan: "6", class: "muted", text: "no data" })))));
}

function timeline(events) {
  const items = events.slice().reverse().map((e) => {
    const when = e.at || e.evaluated_at || e.created_at || "";
    let what;
    switch (e.kind) {
      case "decision": what = [verdict(e.decision), ` from ${e.previous}: ${e.reason}`]; break;
      case "override": what = [verdict(e.decision), ` override ${e.action} by ${e.actor}: ${e.reason}`]; break;
      case "registered": what = ["registered"]; break;
      case "stopped": what = ["stopped"]; break;
      case "delivery": what = [`webhook ${e.webhook || ""} ${e.event_type || e.type || ""}: ${e.state || e.status || ""}`]; break;
      default: what = [e.kind];
    }
    return el("li", { "data-kind": e.kind }, el("time", { class: "muted", text: when }), " ", ...what);
  });
  return items.length ? el("ol", { class: "timeline", reversed: "" }, items) : el("p", { class: "muted", text: "No events." });
}

function queries(list, t) {
  const base = (t.prometheus_url || "").replace(/\/$/, "");
  return el("div", {}, list.map((q) => {
    const link = base ? el("a", { href: `${base}/graph?g0.expr=${encodeURIComponent(q.promql)}&g0.tab=0`, rel: "noreferrer", text: "open in Prometheus" }) : null;
    return el("div", {}, el("p", {}, el("strong", { text: q.purpose }), " ", link), el("pre", { text: q.promql }));
  }));
}

function shellQuote(s) {
  return /^[A-Za-z0-9._:\/@=-]+$/.test(s) ? s : "'" + s.replace(/'/g, "'\\''") + "'";
}

function overrides(id) {
  const server = shellQuote(location.origin);
  const cmds = ["pause", "rollback", "promote", "resume"].map((d) =>
    `gate override ${shellQuote(id)} --decision ${d} --reason 'why' --server ${server}`);
  return el("div", {}, el("p", { class: "muted", text: "Each is recorded in the audit trail with your user name (--actor to name someone else); with a token, set GATE_API_TOKEN." }),
    cmds.map((c) => el("pre", { text: c })));
}

// --- Routing ----------------------------------------------------------------------------

function route() {
  const m = /^\/trains\/(.+)$/.exec(location.pathname);
  if (m) showTrain(decodeURIComponent(m[1])); else showOverview();
}

document.addEventListener("DOMContentLoaded", route);
