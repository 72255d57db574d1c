"""``GET /dashboard``: one self-contained page (no CDN) polling the JSON API every few seconds."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["ops"])

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Tributary</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#0f1419;color:#e6e6e6}
 header{padding:12px 20px;background:#17202a;display:flex;gap:16px;align-items:baseline}
 h1{font-size:18px;margin:0} .muted{color:#8a949e;font-size:12px}
 main{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:16px;padding:16px 20px}
 section{background:#17202a;border-radius:8px;padding:14px 16px}
 h2{font-size:13px;text-transform:uppercase;letter-spacing:.05em;color:#8a949e;margin:0 0 8px}
 .big{font-size:34px;font-weight:600} table{width:100%;border-collapse:collapse}
 td{padding:3px 0;border-bottom:1px solid #243040} td.n{text-align:right;font-variant-numeric:tabular-nums}
 svg{width:100%;height:90px} .err{color:#ff7b72}
</style></head><body>
<header><h1>Tributary</h1><span class="muted">last hour &middot; refreshed every 5 s &middot;
 <span id="status">loading&hellip;</span></span></header>
<main>
 <section><h2>Distinct users</h2><div class="big" id="distinct">&ndash;</div>
  <div class="muted" id="distinct-bounds"></div></section>
 <section><h2>Events / s (last 15 min)</h2><div class="big" id="rate">&ndash;</div>
  <svg id="spark" viewBox="0 0 300 90" preserveAspectRatio="none"></svg></section>
 <section><h2>Top items</h2><table id="top"></table></section>
</main>
<script>
"use strict";
const WINDOW_S = __WINDOW_S__;
const fmt = (x) => x == null ? "\\u2013" : Math.round(x).toLocaleString();
async function get(path) {
  const r = await fetch(path, {headers: {"Accept": "application/json"}});
  if (!r.ok) throw new Error(path.split("?")[0] + ": HTTP " + r.status);
  return r.json();
}
function spark(values) {
  const svg = document.getElementById("spark");
  const pts = values.map((v, i) => [i, v == null ? 0 : v]);
  if (pts.length < 2) { svg.innerHTML = ""; return; }
  const max = Math.max(1, ...pts.map((p) => p[1]));
  const xy = pts.map(([i, v]) => (i * 300 / (pts.length - 1)).toFixed(1) + "," + (88 - v * 84 / max).toFixed(1));
  svg.innerHTML = '<polyline fill="none" stroke="#58a6ff" stroke-width="2" points="' + xy.join(" ") + '"/>';
}
function text(id, value) { document.getElementById(id).textContent = value; }
async function refresh() {
  const now = Date.now();
  try {
    const [d, t, ts] = await Promise.all([
      get("/v1/aggregates/distinct?field=user_id"),
      get("/v1/aggregates/top?field=item_id&k=10"),
      get("/v1/aggregates/timeseries?metric=events&step=" + WINDOW_S + "&start=" + (now - 900000) + "&end=" + now),
    ]);
    text("distinct", fmt(d.estimate));
    text("distinct-bounds", fmt(d.lower_bound) + " \\u2013 " + fmt(d.upper_bound) + " at " +
         Math.round(d.confidence * 100) + " %, " + d.windows + " windows");
    const rates = ts.points.map((p) => p.value == null ? null : p.value / ts.step);
    const done = rates.filter((v) => v != null && v > 0);
    text("rate", done.length ? fmt(done[done.length - 1]) : "0");
    spark(rates);
    const table = document.getElementById("top");
    table.replaceChildren(...t.estimate.map((row) => {
      const tr = document.createElement("tr");
      const a = document.createElement("td"); a.textContent = row.item;
      const b = document.createElement("td"); b.className = "n"; b.textContent = fmt(row.estimate);
      tr.append(a, b); return tr;
    }));
    const fresh = d.freshness_ms == null ? "no data yet" : "freshness " + (d.freshness_ms / 1000).toFixed(1) + " s";
    text("status", fresh);
    document.getElementById("status").className = "";
  } catch (e) {
    text("status", String(e.message || e));
    document.getElementById("status").className = "err";
  }
}
refresh();
setInterval(refresh, 5000);
</script></body></html>
"""


@router.get("/dashboard", response_class=HTMLResponse, summary="live page")
def dashboard(request: Request) -> HTMLResponse:
    window_s = int(request.app.state.settings.window_seconds)
    return HTMLResponse(_PAGE.replace("__WINDOW_S__", str(window_s)))
