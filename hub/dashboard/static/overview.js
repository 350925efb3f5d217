// The overview: figures, a 7-day plot and a map of open alerts drawn in SVG (no tiles, nothing leaves the hub).
"use strict";
const SEV_COLOURS = { critical: "#d62828", high: "#f77f00", medium: "#c9a400", low: "#2a9d8f" };
const SVG_NS = "http://www.w3.org/2000/svg";
let overviewTimer = null;

function svgAdd(svg, tag, attrs, text) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text != null) e.textContent = text;
  svg.append(e);
  return e;
}

const secs = (s) => (s == null ? "—" : s < 90 ? `${Math.round(s)} s` : `${Math.round(s / 60)} min`);
const pct = (r) => (r == null ? "—" : `${Math.round(r * 100)}%`);
const sum = (o) => Object.values(o || {}).reduce((a, b) => a + b, 0);

function card(id, value, label, warn) {
  return el("div", { class: "card" + (warn ? " warn" : ""), id: "ov-" + id }, el("b", {}, "" + value), el("span", {}, label));
}

async function loadOverview() {
  const o = await api("/api/overview");
  const f = o.total;
  $("ov-time").textContent = fmtTime(o.generated_at);
  $("ov-cards").replaceChildren(
    card("elders", f.elders, t("elders_watched")),
    card("online", f.devices_online, t("online")),
    card("offline", f.devices_offline, t("offline_devices"), f.devices_offline > 0),
    card("low-battery", f.devices_low_battery, t("low_battery"), f.devices_low_battery > 0),
    ...["critical", "high", "medium", "low"].map((s) => card("open-" + s, f.open_by_severity[s] || 0,
      `${t("open_alerts")} · ${tt("sev_", s)}`, s === "critical" && f.open_by_severity[s] > 0)),
    card("ack-median", secs(f.ack_median_s), t("ack_median")),
    card("ack-p95", secs(f.ack_p95_s), t("ack_p95")),
    card("visit-rate", pct(f.visit_rate), `${t("visit_rate")} (${f.visits_done}/${f.visits_due})`,
      f.visit_rate != null && f.visit_rate < 1));
  $("ov-types").replaceChildren(...Object.entries(f.today_by_type).sort((a, b) => b[1] - a[1])
    .map(([k, n]) => card("type-" + k, n, tt("t_", k))));
  if (!Object.keys(f.today_by_type).length) $("ov-types").append(el("p", { class: "muted" }, t("none")));
  tableRows("ov-communities", o.communities.map((c) => el("tr", {},
    el("td", {}, c.name || c.path), el("td", {}, "" + c.elders), el("td", {}, "" + c.devices_online),
    el("td", {}, "" + c.devices_offline), el("td", {}, "" + c.devices_low_battery),
    el("td", {}, Object.entries(c.open_by_severity).map(([s, n]) => `${tt("sev_", s)} ${n}`).join(" · ") || "0"),
    el("td", {}, "" + sum(c.today_by_type)), el("td", {}, secs(c.ack_median_s)), el("td", {}, secs(c.ack_p95_s)),
    el("td", {}, pct(c.visit_rate)))));
  drawPlot($("ov-plot"), o.last_7_days);
  drawOverviewMap($("ov-map"), o.map_alerts, o.outlines);
  // On the wall screen the page refreshes itself even when nothing arrives on the feed (clocks, "today").
  clearTimeout(overviewTimer);
  overviewTimer = setTimeout(() => { if (view === "overview") act(loadOverview); }, 30000);
}

// Stacked bars per day, one colour per severity.
function drawPlot(svg, days) {
  svg.replaceChildren();
  const max = Math.max(1, ...days.map((d) => sum(d.by_severity)));
  const w = 420 / Math.max(days.length, 1);
  days.forEach((d, i) => {
    let y = 150;
    for (const s of ["low", "medium", "high", "critical"]) {
      const h = ((d.by_severity[s] || 0) / max) * 130;
      if (h > 0) svgAdd(svg, "rect", { x: i * w + 8, y: y - h, width: w - 16, height: h, fill: SEV_COLOURS[s], class: "bar-" + s });
      y -= h;
    }
    svgAdd(svg, "text", { x: i * w + w / 2, y: 145 - (150 - y) , "text-anchor": "middle", "font-size": 12 }, "" + sum(d.by_severity));
    const day = new Date(d.day + "T00:00:00");
    svgAdd(svg, "text", { x: i * w + w / 2, y: 168, "text-anchor": "middle", "font-size": 12 }, `${day.getMonth() + 1}/${day.getDate()}`);
  });
}

// An equirectangular plan fitted to the alerts and outlines in view.
function drawOverviewMap(svg, alerts, outlines) {
  svg.replaceChildren();
  svgAdd(svg, "rect", { x: 0, y: 0, width: 420, height: 300, fill: "#eef3f7" });
  const pts = [...alerts.map((a) => [a.lon, a.lat]), ...outlines.flatMap((o) => o.polygon)];
  if (!pts.length) { svgAdd(svg, "text", { x: 210, y: 150, "text-anchor": "middle", fill: "#667" }, t("no_alerts")); return; }
  let [minX, minY, maxX, maxY] = [Infinity, Infinity, -Infinity, -Infinity];
  for (const [x, y] of pts) { minX = Math.min(minX, x); maxX = Math.max(maxX, x); minY = Math.min(minY, y); maxY = Math.max(maxY, y); }
  const kx = Math.cos(((minY + maxY) / 2) * Math.PI / 180);
  const spanX = Math.max((maxX - minX) * kx, 0.002), spanY = Math.max(maxY - minY, 0.002);
  const scale = Math.min(380 / spanX, 260 / spanY);
  const cx = (minX + maxX) / 2, cy = (minY + maxY) / 2;
  const px = (lon, lat) => [210 + (lon - cx) * kx * scale, 150 - (lat - cy) * scale];
  for (const o of outlines) {
    svgAdd(svg, "polygon", { points: o.polygon.map(([x, y]) => px(x, y).join(",")).join(" "), fill: "rgba(69,123,157,.12)",
      stroke: "#457b9d", "stroke-width": 1.5, class: "outline" });
    const [lx, ly] = px(o.polygon.reduce((s, p) => s + p[0], 0) / o.polygon.length, o.polygon.reduce((s, p) => s + p[1], 0) / o.polygon.length);
    svgAdd(svg, "text", { x: lx, y: ly, "text-anchor": "middle", "font-size": 12, fill: "#1d3557" }, o.name || o.path);
  }
  for (const a of alerts) {
    const [x, y] = px(a.lon, a.lat);
    const dot = svgAdd(svg, "circle", { cx: x, cy: y, r: a.severity === "critical" ? 8 : 6, fill: SEV_COLOURS[a.severity] || "#333",
      stroke: a.acknowledged ? "#fff" : "#000", "stroke-width": 1.5, class: "map-alert", "data-alert-id": a.id });
    svgAdd(dot, "title", {}, `${a.resident_name} · ${tt("t_", a.type)}`);
    dot.addEventListener("click", () => { show("alerts").then(() => showDetail(a.id)); });
  }
}

loaders.overview = loadOverview;
