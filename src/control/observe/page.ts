/**
 * The live status page lvsd serves at `/` (`lvsd --http ADDR:PORT`): one self-contained HTML
 * document, its CSS and script inline, nothing loaded from anywhere else. The script polls
 * `api/v1/status` (status.ts) once a second and rebuilds the tables from it with DOM calls
 * (`textContent`, never `innerHTML`), so text from the daemon is never parsed as markup. It keeps
 * about 60 s of samples per service and dest in memory and draws connections/s and packets/s as
 * small canvas sparklines, computed from the growth of the counters between two answers (the
 * table's CPS/PPS columns are the estimator's, as `lvsadm -Ln --rate` prints them).
 *
 * The CSS and the script are separate exports so that status.ts can name them by hash in the
 * page's Content-Security-Policy.
 */

export const PAGE_CSS = `
:root{--bg:#fff;--fg:#1f2328;--mute:#656d76;--line:#d8dee4;--head:#eef1f4;--svc:#f6f8fa;
--up:#1a7f37;--down:#cf222e;--warn:#9a6700;--idle:#8c959f;--cps:#0969da;--pps:#8250df;color-scheme:light dark}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--mute:#8b949e;--line:#30363d;
--head:#161b22;--svc:#11161d;--up:#2ea043;--down:#da3633;--warn:#bb8009;--idle:#6e7681;--cps:#58a6ff;--pps:#bc8cff}}
*{box-sizing:border-box}
body{margin:0;font:13px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;background:var(--bg);color:var(--fg)}
header{display:flex;flex-wrap:wrap;gap:.3em 1.6em;align-items:baseline;padding:.7em 1em;border-bottom:1px solid var(--line)}
h1{font-size:17px;margin:0}
h2{font-size:14px;margin:1.4em 0 .4em}
main{padding:0 1em 1.5em}
.mute{color:var(--mute)}
.err{color:var(--down);font-weight:600}
.chips span{display:inline-block;margin:0 .8em .2em 0}
.wrap{overflow-x:auto}
table{border-collapse:collapse;width:100%}
#drops{width:auto;min-width:24em}
th,td{padding:.28em .55em;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
th{background:var(--head);font-weight:600;font-size:12px}
th:first-child,td:first-child,td.c-fwd,th.c-fwd{text-align:left}
tr.svc td{background:var(--svc);font-weight:600;border-top:2px solid var(--line)}
tr.svc td .mute{font-weight:400}
tr.dest td:first-child{padding-left:2em}
tr.quiet td{color:var(--mute)}
td.none{text-align:left;color:var(--mute);font-style:italic}
.badge{display:inline-block;min-width:5.2em;text-align:center;border-radius:3px;padding:0 .45em;font-size:11px;font-weight:700;color:#fff;background:var(--idle)}
.b-UP{background:var(--up)}.b-DOWN{background:var(--down)}.b-RETRY,.b-SORRY{background:var(--warn)}
td.c-cpschart,td.c-ppschart{padding:.1em .55em}
canvas{display:block;width:120px;height:22px}
footer{padding:0 1em 1em;font-size:12px}
a{color:var(--cps)}
`;

/** The page's script (plain ES2017, no modules, no dependencies). */
export const PAGE_JS = `
"use strict";
(function () {
  var SAMPLES = 61; // one a second: 60 s of rates
  var history = new Map(); // key -> [{t, conns, pkts}]
  var last = 0; // Date.now() of the last good answer

  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function cell(tr, cls, text, title) {
    var td = el("td", cls, text);
    if (title) td.title = title;
    tr.appendChild(td);
    return td;
  }
  function num(n) { return Number(n).toLocaleString("en-US"); }
  function si(n, unit) {
    var v = Number(n), k = ["", "k", "M", "G", "T"], i = 0;
    while (Math.abs(v) >= 1000 && i < k.length - 1) { v /= 1000; i++; }
    return (i === 0 ? String(Math.round(v)) : v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)) + " " + k[i] + unit;
  }
  function dur(s) {
    s = Math.max(0, Math.floor(s));
    var d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60, x = s % 60;
    function p(n) { return (n < 10 ? "0" : "") + n; }
    if (d > 0) return d + "d " + p(h) + "h";
    if (h > 0) return h + "h " + p(m) + "m";
    if (m > 0) return m + "m " + p(x) + "s";
    return x + "s";
  }
  function ago(nowMs, atMs) { return atMs === null ? "never" : dur((nowMs - atMs) / 1000) + " ago"; }

  // ---- history and sparklines ----

  function sample(key, t, c) {
    var h = history.get(key);
    if (!h) { h = []; history.set(key, h); }
    if (h.length > 0 && h[h.length - 1].t >= t) return;
    h.push({ t: t, conns: c.conns, pkts: c.inPkts + c.outPkts });
    if (h.length > SAMPLES) h.shift();
  }
  /** Per-second rates between consecutive samples (a counter that went down, -Z, gives 0). */
  function rates(key, field) {
    var h = history.get(key) || [], out = [];
    for (var i = 1; i < h.length; i++) {
      var dt = (h[i].t - h[i - 1].t) / 1000;
      out.push(dt > 0 ? Math.max(0, h[i][field] - h[i - 1][field]) / dt : 0);
    }
    return out;
  }
  function color(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888"; }
  function spark(values, varName, unit) {
    var c = document.createElement("canvas"), W = 120, H = 22, r = window.devicePixelRatio || 1;
    c.width = W * r; c.height = H * r;
    var max = 0, i;
    for (i = 0; i < values.length; i++) max = Math.max(max, values[i]);
    var now = values.length > 0 ? values[values.length - 1] : 0;
    c.dataset.samples = String(values.length);
    c.dataset.now = String(Math.round(now * 100) / 100);
    c.dataset.max = String(Math.round(max * 100) / 100);
    c.title = "now " + now.toFixed(1) + " " + unit + ", max " + max.toFixed(1) + " " + unit + " (last 60 s)";
    var g = c.getContext("2d");
    if (!g) return c;
    g.scale(r, r);
    var col = color(varName), step = W / (SAMPLES - 2), x0 = W - (values.length - 1) * step;
    function y(v) { return H - 1.5 - (max > 0 ? (v / max) * (H - 3) : 0); }
    g.strokeStyle = col; g.globalAlpha = 0.25; g.beginPath(); g.moveTo(0, H - 0.5); g.lineTo(W, H - 0.5); g.stroke();
    if (values.length === 0) return c;
    g.globalAlpha = 1; g.lineWidth = 1.5; g.lineJoin = "round"; g.beginPath();
    for (i = 0; i < values.length; i++) {
      if (i === 0) g.moveTo(x0, y(values[0])); else g.lineTo(x0 + i * step, y(values[i]));
    }
    g.stroke();
    g.lineTo(x0 + (values.length - 1) * step, H); g.lineTo(x0, H); g.closePath();
    g.globalAlpha = 0.15; g.fillStyle = col; g.fill();
    return c;
  }

  // ---- rendering ----

  var COLS = 14;

  function counterCells(tr, o) {
    cell(tr, "c-active", num(o.activeConns));
    cell(tr, "c-inactive", num(o.inactiveConns));
    cell(tr, "c-conns", num(o.counters.conns), num(o.counters.inPkts) + " packets in, " + num(o.counters.outPkts) + " out; " + si(o.counters.inBytes, "B") + " in, " + si(o.counters.outBytes, "B") + " out");
    cell(tr, "c-cps", num(o.rates.cps));
    cell(tr, "c-inpps", num(o.rates.inpps));
    cell(tr, "c-outpps", num(o.rates.outpps));
    cell(tr, "c-inbps", si(o.rates.inbps, "B/s"), num(o.rates.inbps) + " bytes/s");
    cell(tr, "c-outbps", si(o.rates.outbps, "B/s"), num(o.rates.outbps) + " bytes/s");
  }
  function charts(tr, key) {
    cell(tr, "c-cpschart").appendChild(spark(rates(key, "conns"), "--cps", "conn/s"));
    cell(tr, "c-ppschart").appendChild(spark(rates(key, "pkts"), "--pps", "pkt/s"));
  }
  function badge(td, h, now) {
    if (!h) { td.appendChild(el("span", "mute", "no check")); return; }
    var b = el("span", "badge b-" + h.state, h.state);
    var t = "virtual server " + h.virtualServer;
    if (h.lastCheck) t += "\\nlast check " + (h.lastCheck.ok ? "ok" : "FAILED") + " " + ago(now, h.lastCheck.atMs) + ": " + h.lastCheck.reason;
    if (h.lastChangeMs !== null) t += "\\nchanged " + ago(now, h.lastChangeMs) + (h.reason ? ": " + h.reason : "");
    for (var i = 0; i < h.checks.length; i++) {
      var k = h.checks[i];
      t += "\\n" + k.label + ": " + k.state + ", " + num(k.probes) + " probes, " + num(k.failures) + " failed";
    }
    b.title = t;
    td.appendChild(b);
  }

  function renderServices(s) {
    var body = $("services-body"), rows = [];
    var seen = new Set();
    for (var i = 0; i < s.services.length; i++) {
      var v = s.services[i];
      sample(v.name, s.timeMs, v.counters);
      seen.add(v.name);
      var tr = el("tr", "svc");
      tr.dataset.service = v.name;
      var name = cell(tr, "c-name", v.name);
      var about = [];
      if (v.persistence) about.push("persistent " + v.persistence.timeout + " s" + (v.persistence.netmask !== "255.255.255.255" ? " mask " + v.persistence.netmask : ""));
      if (v.onePacket) about.push("one-packet");
      if (v.flags.length > 0) about.push(v.flags.join(","));
      if (v.proxyProtocol) about.push("PROXY v" + v.proxyProtocol);
      if (about.length > 0) name.appendChild(el("span", "mute", "  " + about.join(" · ")));
      cell(tr, "c-fwd", v.scheduler);
      cell(tr, "c-weight", "");
      var up = 0, checked = 0, j;
      for (j = 0; j < v.dests.length; j++) {
        var dh = v.dests[j].health;
        if (dh && dh.role === "real") { checked++; if (dh.state === "UP") up++; }
      }
      for (j = 0; j < v.outOfPool.length; j++) if (v.outOfPool[j].health.role === "real") checked++;
      cell(tr, "c-health mute", checked > 0 ? up + "/" + checked + " up" : "");
      counterCells(tr, v);
      charts(tr, v.name);
      rows.push(tr);
      for (j = 0; j < v.dests.length; j++) {
        var d = v.dests[j], key = v.name + " -> " + d.address + ":" + d.port;
        sample(key, s.timeMs, d.counters);
        seen.add(key);
        var dr = el("tr", "dest" + (d.weight === 0 ? " quiet" : ""));
        dr.dataset.service = v.name;
        dr.dataset.dest = d.address + ":" + d.port;
        cell(dr, "c-name", "→ " + d.address + ":" + d.port);
        cell(dr, "c-fwd", d.forward);
        cell(dr, "c-weight", num(d.weight), d.overloaded ? "overloaded (upper threshold reached)" : "");
        badge(cell(dr, "c-health"), d.health, s.timeMs);
        counterCells(dr, d);
        charts(dr, key);
        rows.push(dr);
      }
      for (j = 0; j < v.outOfPool.length; j++) {
        var o = v.outOfPool[j];
        var orow = el("tr", "dest out quiet");
        orow.dataset.service = v.name;
        orow.dataset.dest = o.address + ":" + o.port;
        cell(orow, "c-name", "→ " + o.address + ":" + o.port);
        cell(orow, "c-fwd", "out of pool");
        cell(orow, "c-weight", "-");
        badge(cell(orow, "c-health"), o.health, s.timeMs);
        for (var n = 0; n < COLS - 4; n++) cell(orow, "", "");
        rows.push(orow);
      }
      if (v.dests.length === 0 && v.outOfPool.length === 0) {
        var none = el("tr");
        var td = cell(none, "none", "no real servers: lvsadm -a " + v.name.replace(/\\s+/, " ") + " -r ADDR:PORT");
        td.colSpan = COLS;
        rows.push(none);
      }
    }
    if (s.services.length === 0) {
      var empty = el("tr");
      var etd = cell(empty, "none", "No virtual services. Add one with lvsadm -A -t VIP:PORT -s rr, then real servers with lvsadm -a.");
      etd.colSpan = COLS;
      rows.push(empty);
    }
    history.forEach(function (_, k) { if (!seen.has(k)) history.delete(k); });
    body.replaceChildren.apply(body, rows);
  }

  function renderSummary(s) {
    $("version").textContent = s.version;
    $("uptime").textContent = "up " + dur(s.uptimeSeconds);
    var c = s.connections;
    $("conns").textContent = num(c.size) + " / " + num(c.limit) + " (" + (c.limit > 0 ? ((100 * c.size) / c.limit).toFixed(c.size > 0 && c.size * 1000 < c.limit ? 2 : 1) : "0") + "%)";
    var chips = [];
    Object.keys(c.states).forEach(function (k) {
      if (c.states[k] > 0) chips.push(el("span", "", k + " " + num(c.states[k])));
    });
    if (c.templates > 0) chips.push(el("span", "", "templates " + num(c.templates)));
    if (chips.length === 0) chips.push(el("span", "mute", "no connections"));
    var st = $("states");
    st.replaceChildren.apply(st, chips);
  }

  function renderDrops(s) {
    var keys = Object.keys(s.drops).sort(function (a, b) { return s.drops[b] - s.drops[a]; });
    $("drops-empty").hidden = keys.length > 0;
    $("drops").hidden = keys.length === 0;
    var rows = keys.map(function (k) {
      var tr = el("tr");
      tr.dataset.reason = k;
      cell(tr, "c-reason", k);
      cell(tr, "c-count", num(s.drops[k]));
      return tr;
    });
    var b = $("drops-body");
    b.replaceChildren.apply(b, rows);
  }

  function renderLinks(s) {
    $("links-empty").hidden = s.links.length > 0;
    $("links").hidden = s.links.length === 0;
    var rows = s.links.map(function (l) {
      var tr = el("tr");
      tr.dataset.link = l.name;
      cell(tr, "c-name", l.name);
      cell(tr, "c-fwd", l.mac);
      cell(tr, "", num(l.rxPackets));
      cell(tr, "", si(l.rxBytes, "B"), num(l.rxBytes) + " bytes");
      cell(tr, "", num(l.rxDropped));
      cell(tr, "", num(l.txPackets));
      cell(tr, "", si(l.txBytes, "B"), num(l.txBytes) + " bytes");
      cell(tr, "", num(l.txDropped));
      return tr;
    });
    var b = $("links-body");
    b.replaceChildren.apply(b, rows);
  }

  function render(s) {
    if (s.apiVersion !== 1) throw new Error("unknown apiVersion " + s.apiVersion);
    renderSummary(s);
    renderServices(s);
    renderDrops(s);
    renderLinks(s);
    document.body.dataset.updates = String(Number(document.body.dataset.updates || "0") + 1);
  }

  function tick() {
    var ctl = new AbortController();
    var timer = setTimeout(function () { ctl.abort(); }, 3000);
    fetch("api/v1/status", { cache: "no-store", signal: ctl.signal })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (s) {
        render(s);
        last = Date.now();
        $("state").textContent = "live";
        $("state").className = "mute";
      })
      .catch(function (e) {
        $("state").textContent = "no answer from lvsd (" + (e && e.message ? e.message : e) + ")" + (last ? ", last update " + dur((Date.now() - last) / 1000) + " ago" : "");
        $("state").className = "err";
      })
      .then(function () {
        clearTimeout(timer);
        setTimeout(tick, 1000);
      });
  }
  tick();
})();
`;

const HEAD_ROW = [
  ["c-name", "Virtual service → real server"],
  ["c-fwd", "Scheduler / forward"],
  ["c-weight", "Weight"],
  ["c-health", "Health"],
  ["c-active", "Active"],
  ["c-inactive", "Inactive"],
  ["c-conns", "Conns"],
  ["c-cps", "CPS"],
  ["c-inpps", "In pkt/s"],
  ["c-outpps", "Out pkt/s"],
  ["c-inbps", "In B/s"],
  ["c-outbps", "Out B/s"],
  ["c-cpschart", "conn/s, 60 s"],
  ["c-ppschart", "pkt/s, 60 s"],
]
  .map(([c, t]) => `<th class="${c}">${t}</th>`)
  .join("");

/** The whole page. */
export const STATUS_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>lvsd status</title>
<link rel="icon" href="data:,">
<style>${PAGE_CSS}</style>
</head>
<body>
<header>
<h1>lvsd</h1>
<span id="version" class="mute"></span>
<span id="uptime"></span>
<span>connections <b id="conns">-</b></span>
<span id="state" class="mute">loading…</span>
</header>
<main>
<div id="states" class="chips mute"></div>
<h2>Virtual services</h2>
<div class="wrap"><table id="services">
<thead><tr>${HEAD_ROW}</tr></thead>
<tbody id="services-body"></tbody>
</table></div>
<h2>Drops by reason</h2>
<p id="drops-empty" class="mute">No drops.</p>
<table id="drops" hidden><thead><tr><th>Reason</th><th>Packets</th></tr></thead><tbody id="drops-body"></tbody></table>
<h2>Links</h2>
<p id="links-empty" class="mute">No links.</p>
<div class="wrap"><table id="links" hidden>
<thead><tr><th>Link</th><th class="c-fwd">MAC</th><th>RX packets</th><th>RX bytes</th><th>RX dropped</th><th>TX packets</th><th>TX bytes</th><th>TX dropped</th></tr></thead>
<tbody id="links-body"></tbody>
</table></div>
</main>
<footer class="mute">Updated every second from <a href="api/v1/status">api/v1/status</a> (docs/observability.md). Charts: rates from the counters between updates; CPS and pkt/s columns: lvsd's rate estimator, as <code>lvsadm -Ln --rate</code>.</footer>
<script>${PAGE_JS}</script>
</body>
</html>
`;
