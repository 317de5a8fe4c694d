// The monitor's dashboard: plain JavaScript, no library, nothing from a CDN. Charts are SVG
// drawn by the server (/v1/monitor/chart.svg); every call sends the API key if one is set
// (kept in sessionStorage only); refreshes every few seconds while the page is open.
"use strict";
const REFRESH_MS = 5000;
let apiKey = sessionStorage.getItem("ronghe-monitor-key") || "";

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return e;
}

async function call(path, opts = {}) {
  const headers = Object.assign({}, opts.headers || {});
  if (apiKey) headers["Authorization"] = "Bearer " + apiKey;
  const r = await fetch(path, Object.assign({}, opts, { headers }));
  if (r.status === 401) {
    document.getElementById("keyform").hidden = false;
    throw new Error("an API key is needed");
  }
  if (!r.ok) {
    let msg = r.status + "";
    try { msg = (await r.json()).error.message; } catch (e) { /* not JSON */ }
    throw new Error(msg);
  }
  return r;
}

function pct(x) { return x == null ? "-" : (100 * x).toFixed(1) + "%"; }

async function loadTotals() {
  const s = await (await call("/v1/monitor/summary")).json();
  const t = document.getElementById("totals");
  t.replaceChildren(el("span", {}, `${s.items} items`), el("span", {}, `${pct(s.items ? s.negative / s.items : null)} negative`),
    el("span", {}, `${s.rejected} rejected`), el("span", {}, `${s.alerts_open} open alerts`),
    el("span", {}, `queue ${s.queued}`));
  return s;
}

async function loadCharts(bucket) {
  const keys = (await (await call("/v1/monitor/keys?limit=12")).json()).keys;
  const box = document.getElementById("charts");
  const sel = document.getElementById("f-key");
  const chosen = sel.value;
  sel.replaceChildren(el("option", { value: "" }, "any"),
    ...keys.map(k => el("option", { value: k.rule + "\u0000" + k.key }, `${k.key} (${k.rule})`)));
  sel.value = chosen;
  const charts = await Promise.all(keys.map(async k => {
    const q = new URLSearchParams({ key: k.key, rule: k.rule, bucket_s: bucket });
    return (await call("/v1/monitor/chart.svg?" + q)).text();
  }));
  const parser = new DOMParser();
  box.replaceChildren(...charts.map((svg, i) => {
    const doc = parser.parseFromString(svg, "image/svg+xml");  // parsed as XML, not as HTML
    const node = document.importNode(doc.documentElement, true);
    node.dataset.key = keys[i].key;
    return node;
  }));
  if (!keys.length) box.replaceChildren(el("p", { class: "muted" }, "no items yet"));
}

async function setStatus(id, action) {
  await call(`/v1/monitor/alerts/${id}/${action}`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
  await refresh();
}

async function loadAlerts() {
  const status = document.getElementById("alert-status").value;
  const q = status ? "?status=" + status : "";
  const alerts = (await (await call("/v1/monitor/alerts" + q)).json()).alerts;
  const box = document.getElementById("alerts");
  if (!alerts.length) { box.replaceChildren(el("p", { class: "muted" }, "no alerts")); return; }
  box.replaceChildren(...alerts.map(a => el("div", { class: "alert-card " + a.status, "data-id": a.id },
    el("h3", {}, `#${a.id} ${a.key} - ${a.status}`),
    el("div", {}, `negative share ${pct(a.observed)} vs expected ${pct(a.expected)} over the last ${a.window_n} items `
      + `(${a.window_start} .. ${a.window_end}); ${a.method} score ${a.score.toFixed(2)}, p = ${a.p_value.toExponential(2)}`),
    el("ul", {}, ...(a.evidence || []).map(e => el("li", {}, `${e.text} `, el("span", { class: "muted" }, `(${pct(e.neg_prob)})`)))),
    el("div", {}, ...(a.deliveries || []).map(d => el("span", { class: "muted" }, `webhook: ${d.status} after ${d.attempts} attempt(s) `))),
    a.status === "open" ? el("button", { onclick: () => setStatus(a.id, "ack") }, "Acknowledge") : "",
    a.status !== "resolved" ? el("button", { onclick: () => setStatus(a.id, "resolve") }, "Resolve") : "",
  )));
}

async function loadItems() {
  const q = new URLSearchParams({ limit: 30 });
  const key = document.getElementById("f-key").value;
  if (key) { const [rule, k] = key.split("\u0000"); q.set("rule", rule); q.set("key", k); }
  const label = document.getElementById("f-label").value.trim();
  if (label) q.set("label", label);
  const source = document.getElementById("f-source").value.trim();
  if (source) q.set("source", source);
  const since = document.getElementById("f-since").value;
  if (since) q.set("since", Date.parse(since + "Z") / 1000);
  if (document.getElementById("f-neg").checked) q.set("negative", "true");
  const items = (await (await call("/v1/monitor/items?" + q)).json()).items;
  document.querySelector("#items tbody").replaceChildren(...items.map(it => el("tr", {},
    el("td", {}, it.time), el("td", {}, it.text), el("td", {}, it.topic ?? ""),
    el("td", { class: it.negative ? "neg" : "" }, it.sentiment), el("td", {}, pct(it.neg_prob)),
    el("td", {}, it.source ?? ""))));
}

async function refresh() {
  const status = document.getElementById("status");
  try {
    const s = await loadTotals();
    await Promise.all([loadCharts(s.bucket_s), loadAlerts(), loadItems()]);
    status.textContent = "updated " + new Date().toLocaleTimeString();
    document.body.dataset.loaded = "1";
  } catch (e) {
    status.textContent = "error: " + e.message;
  }
}

document.getElementById("keyform").addEventListener("submit", ev => {
  ev.preventDefault();
  apiKey = document.getElementById("apikey").value.trim();
  sessionStorage.setItem("ronghe-monitor-key", apiKey);
  document.getElementById("keyform").hidden = true;
  refresh();
});
document.getElementById("filters").addEventListener("submit", ev => { ev.preventDefault(); loadItems(); });
document.getElementById("alert-status").addEventListener("change", loadAlerts);
refresh();
setInterval(refresh, REFRESH_MS);
