// Operator and community-worker console: OAuth2 password login, live updates over SSE, no build step.
"use strict";
const T = window.I18N;
let lang = localStorage.getItem("lang") || "zh";
let token = sessionStorage.getItem("token");
let me = null;
let view = "alerts";
let selected = null;
let feed = null;
let known = new Map();        // alert id -> severity, to notice new critical alerts
let refreshTimer = null;
let assignees = [];
const $ = (id) => document.getElementById(id);
const t = (k) => (T[lang] && T[lang][k]) || (T.en[k]) || k;
const tt = (prefix, k) => (T[lang][prefix + k] || T.en[prefix + k] || k);

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return e;
}

function applyLang() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.querySelectorAll("[data-i18n]").forEach((e) => { e.textContent = t(e.dataset.i18n); });
  document.querySelectorAll("[data-i18n-ph]").forEach((e) => { e.placeholder = t(e.dataset.i18nPh); });
  $("lang").textContent = t("lang");
  $("live").textContent = feed && feed.readyState === 1 ? t("live") : t("offline");
}

async function api(path, opts = {}) {
  const headers = Object.assign({ Authorization: "Bearer " + token }, opts.headers || {});
  if (opts.json !== undefined) { headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(opts.json); }
  const res = await fetch(path, Object.assign({}, opts, { headers }));
  if (res.status === 401) { logout(); throw new Error("unauthorized"); }
  if (!res.ok) {
    let msg = res.status + "", detail = null;
    try { const b = await res.json(); detail = b.detail; msg = typeof b.detail === "string" ? b.detail : JSON.stringify(b.detail); } catch (e) { /* not JSON */ }
    const err = new Error(msg); err.status = res.status; err.detail = detail; throw err;
  }
  return res.status === 204 ? null : res.json();
}

async function act(fn) {
  try { await fn(); } catch (e) { if (e.message !== "unauthorized") alert(t("error") + ": " + e.message); }
}

function beep() {
  try {
    const ctx = new AudioContext();
    for (const [i, f] of [[0, 880], [1, 660], [2, 880]]) {
      const o = ctx.createOscillator(); o.frequency.value = f; o.connect(ctx.destination);
      o.start(ctx.currentTime + i * 0.25); o.stop(ctx.currentTime + i * 0.25 + 0.2);
    }
    setTimeout(() => ctx.close(), 1200);
  } catch (e) { /* audio may be blocked until the user interacts */ }
}

const fmtTime = (s) => (s ? new Date(s).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB") : "—");

// ---- alerts -------------------------------------------------------------------------------------------------

let alertTypes = new Set();
let communities = [];

// Fills the community filter once per login; the type filter grows as types are seen.
function fillAlertFilters(items) {
  const sel = $("alert-community");
  if (sel.options.length <= 1 && communities.length) {
    for (const c of communities) sel.append(el("option", { value: c.path }, c.name || c.path));
  }
  // Rebuilt each time, so the labels follow a language switch.
  const tsel = $("alert-type"), keep = tsel.value;
  for (const a of items) alertTypes.add(a.type);
  tsel.replaceChildren(el("option", { value: "" }, t("all_types")),
    ...[...alertTypes].sort().map((k) => el("option", { value: k }, tt("t_", k))));
  tsel.value = keep;
}

async function loadAlerts() {
  const q = new URLSearchParams({ limit: "100", state: $("alert-state").value });
  for (const [k, id] of [["community", "alert-community"], ["type", "alert-type"], ["severity", "alert-severity"], ["q", "alert-q"]]) {
    if ($(id).value.trim()) q.set(k, $(id).value.trim());
  }
  const page = await api(`/api/alerts?${q}`);
  fillAlertFilters(page.items);
  const body = $("alerts").querySelector("tbody");
  body.replaceChildren();
  for (const a of page.items) {
    if (!known.has(a.id) && known.size && a.severity === "critical" && !a.acknowledged_at) beep();
    known.set(a.id, a.severity);
    const st = a.closed_at ? t("closed") : a.acknowledged_at ? t("acked") : t("open");
    const tr = el("tr", { class: `sev-${a.severity}${a.acknowledged_at ? " acked" : ""}${a.pinned ? " pinned" : ""}${a.id === selected ? " selected" : ""}`,
      "data-alert-id": a.id },
    el("td", { class: "who" }, el("b", {}, a.resident_name), el("span", { class: "muted" }, ` #${a.id}`)),
    el("td", {}, a.age == null ? "—" : "" + a.age), el("td", {}, a.community_name || a.community),
    el("td", {}, a.address), el("td", {}, tt("t_", a.type)),
    el("td", {}, el("span", { class: "sev sev-" + a.severity }, tt("sev_", a.severity))),
    el("td", {}, fmtTime(a.created_at)), el("td", { class: "state" }, st));
    tr.addEventListener("click", () => showDetail(a.id));
    const td = el("td");
    if (!a.acknowledged_at && !a.closed_at) {
      const b = el("button", { class: "ack small", type: "button" }, t("ack"));
      b.addEventListener("click", (ev) => { ev.stopPropagation();
        act(async () => { await api(`/api/alerts/${a.id}/ack`, { method: "POST", json: { via: "console" } });
          await loadAlerts(); await showDetail(a.id); }); });
      td.append(b);
    }
    tr.append(td);
    body.append(tr);
  }
  labelCells($("alerts"));
  $("alerts-empty").hidden = page.items.length > 0;
}

// Phone layout: each row becomes a card, and each cell says what it is.
function labelCells(table) {
  const heads = [...table.querySelectorAll("thead th")].map((th) => th.textContent);
  table.querySelectorAll("tbody tr").forEach((tr) => {
    [...tr.children].forEach((td, i) => { if (heads[i]) td.dataset.label = heads[i]; });
  });
}

async function showDetail(id) {
  selected = id;
  const [a, tl] = await Promise.all([api(`/api/alerts/${id}`), api(`/api/alerts/${id}/timeline`)]);
  let r = null;
  try { r = await api(`/api/residents/${encodeURIComponent(a.resident_id)}`); } catch (e) { /* still show the alert */ }
  $("detail").hidden = false;
  $("detail-id").textContent = id;
  $("detail-type").textContent = tt("t_", a.type);
  $("detail-state").textContent = a.closed_at ? t("closed") : a.acknowledged_at ? t("acked") : t("open");
  $("detail-state").className = "badge sev-" + a.severity;
  $("detail-resident").textContent = r ? `${r.name} (${a.resident_id})` : a.resident_id;
  $("detail-resident").onclick = (ev) => { ev.preventDefault(); openResident(a.resident_id); };
  $("detail-address").textContent = r ? r.household.address : "";
  $("copy-address").onclick = () => {
    const text = r ? `${r.household.address} (${r.household.lat}, ${r.household.lon})` : "";
    navigator.clipboard?.writeText(text).then(() => { $("copy-address").textContent = t("copied"); });
  };
  const loc = a.location || (a.details && a.details.last_known_location) || null;
  const home = r && r.household.lat != null ? { lat: r.household.lat, lon: r.household.lon } : null;
  $("detail-location").textContent = t("location") + ": " +
    (loc ? `${loc.lat.toFixed(6)}, ${loc.lon.toFixed(6)} ±${loc.acc_m ?? "?"} m` : t("unknown"));
  drawMap($("map"), loc, home);
  const p = loc || home;
  for (const [a_, href] of [["link-amap", p && `https://uri.amap.com/marker?position=${p.lon},${p.lat}`],
    ["link-osm", p && `https://www.openstreetmap.org/?mlat=${p.lat}&mlon=${p.lon}#map=18/${p.lat}/${p.lon}`]]) {
    $(a_).hidden = !href; if (href) $(a_).href = href;
  }
  const open = !a.closed_at;
  await act(loadAssignees);  // workers added since login can be assigned at once
  fillAssignees(a.region_path);
  $("btn-ack").hidden = !open || !!a.acknowledged_at;
  $("btn-resolve").disabled = !open; $("btn-assign").disabled = !open;
  $("btn-ack").onclick = () => act(async () => {
    await api(`/api/alerts/${id}/ack`, { method: "POST", json: { via: "console" } }); await refreshView(); });
  $("btn-resolve").onclick = () => act(async () => {
    await api(`/api/alerts/${id}/resolve`, { method: "POST", json: { resolution: $("resolution").value } });
    await refreshView(); });
  $("btn-assign").onclick = () => act(async () => {
    await api(`/api/escalations/${id}/assign`, { method: "POST", json: { user_id: +$("assign-to").value } });
    await refreshView(); });
  const ol = $("timeline"); ol.replaceChildren();
  for (const e of tl) {
    const d = e.details;
    const extra = d.note || d.text || d.resolution || d.to || d.channel || "";
    // Who acted and through what (a family contact via an SMS link, say), how often a trigger repeated,
    // and where each location report placed the device: the timeline is the alert's whole story.
    const via = d.via ? ` (${d.via})` : "";
    const times = e.kind === "retriggered" && d.count > 1 ? ` ×${d.count}` : "";
    const where = d.location ? ` · ${d.device || ""} @ ${(+d.location.lat).toFixed(4)}, ${(+d.location.lon).toFixed(4)}` : "";
    ol.append(el("li", { class: "tl-" + e.kind },
      el("time", {}, new Date(e.ts).toLocaleTimeString(lang === "zh" ? "zh-CN" : "en-GB")), " ",
      el("b", {}, tt("k_", e.kind)), times, ` · ${e.actor}${via}`, extra ? ` · ${extra}` : "", where));
  }
  document.querySelectorAll("#alerts tr").forEach((tr) => tr.classList.toggle("selected", +tr.dataset.alertId === id));
}

// A local plan in metres around the alert position: no map tiles, nothing leaves the hub.
function drawMap(svg, loc, home) {
  svg.replaceChildren();
  const ns = "http://www.w3.org/2000/svg";
  const add = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text) e.textContent = text; svg.append(e); return e;
  };
  add("rect", { x: 0, y: 0, width: 300, height: 200, fill: "#eef3f7" });
  for (let g = 0; g <= 300; g += 30) add("line", { x1: g, y1: 0, x2: g, y2: 200, stroke: "#dbe4ec" });
  for (let g = 0; g <= 200; g += 30) add("line", { x1: 0, y1: g, x2: 300, y2: g, stroke: "#dbe4ec" });
  const centre = loc || home;
  if (!centre) { add("text", { x: 150, y: 100, "text-anchor": "middle", fill: "#667" }, t("unknown")); return; }
  const mLat = 111320, mLon = 111320 * Math.cos(centre.lat * Math.PI / 180);
  const dx = (p) => (p.lon - centre.lon) * mLon, dy = (p) => (p.lat - centre.lat) * mLat;
  let span = Math.max(50, (loc && loc.acc_m ? loc.acc_m * 1.4 : 0));
  if (loc && home) span = Math.max(span, Math.hypot(dx(home), dy(home)) * 1.3);
  const k = 85 / span;  // pixels per metre
  const px = (p) => [150 + dx(p) * k, 100 - dy(p) * k];
  if (home) {
    const [hx, hy] = px(home);
    add("rect", { x: hx - 6, y: hy - 6, width: 12, height: 12, fill: "#1d3557", id: "map-home" });
    add("text", { x: hx + 9, y: hy + 4, "font-size": 11, fill: "#1d3557" }, t("home"));
  }
  if (loc) {
    const [lx, ly] = px(loc);
    if (loc.acc_m) add("circle", { cx: lx, cy: ly, r: Math.max(3, loc.acc_m * k), fill: "rgba(214,40,40,.15)",
      stroke: "#d62828", "stroke-dasharray": "4 3", id: "map-accuracy" });
    add("circle", { cx: lx, cy: ly, r: 5, fill: "#d62828", id: "map-position" });
  }
  const bar = Math.pow(10, Math.floor(Math.log10(span)));
  add("line", { x1: 10, y1: 188, x2: 10 + bar * k, y2: 188, stroke: "#333", "stroke-width": 2 });
  add("text", { x: 14 + bar * k, y: 192, "font-size": 10, fill: "#333" }, `${bar} m`);
}

async function loadAssignees() {
  if (!me || !["admin", "operator"].includes(me.role)) { $("assign-to").hidden = $("btn-assign").hidden = true; return; }
  assignees = (await api("/api/users?role=community_worker&limit=200")).items;
}

// Only workers whose community covers the alert can take it.
function fillAssignees(regionPath) {
  const fit = assignees.filter((u) => u.scope_path && (regionPath === u.scope_path || regionPath.startsWith(u.scope_path + "/")));
  $("assign-to").replaceChildren(...fit.map((u) =>
    el("option", { value: u.id }, `${u.display_name || u.username} · ${u.scope_path}`)));
}

// ---- escalations ----------------------------------------------------------------------------------------------

const chosenOutcome = new Map();  // alert id -> the outcome picked but not yet sent

async function loadEscalations() {
  const page = await api(`/api/escalations?view=${$("esc-view").value}&limit=100`);
  const body = $("escalations").querySelector("tbody"); body.replaceChildren();
  for (const e of page.items) {
    const td = el("td");
    const post = (path, json) => act(async () => { await api(`/api/escalations/${e.alert_id}/${path}`,
      { method: "POST", json }); await loadEscalations(); });
    const mine = e.responder_id === me.id;
    if (!e.closed_at && !e.responder_id) td.append(el("button", { type: "button", class: "step accept", onclick: () => post("accept", {}) }, t("accept")));
    if (mine && e.state === "accepted") td.append(el("button", { type: "button", class: "step on-the-way", onclick: () => post("progress", { state: "on_the_way" }) }, t("on_the_way")));
    if (mine && e.state === "on_the_way") td.append(el("button", { type: "button", class: "step arrived", onclick: () => post("progress", { state: "arrived" }) }, t("arrived")));
    if (mine && !e.closed_at) {
      // The outcome is chosen where the alert is closed, on the phone as at the desk.
      const outcome = el("select", { class: "esc-resolution" }, ...["resident_fine", "visited_at_home", "taken_to_hospital",
        "police_involved", "false_alarm", "device_fault"].map((r) => el("option", { value: r }, t("res_" + r))));
      // A pushed event re-renders this table at any moment: the worker's choice must survive it.
      if (chosenOutcome.has(e.alert_id)) outcome.value = chosenOutcome.get(e.alert_id);
      outcome.addEventListener("change", () => chosenOutcome.set(e.alert_id, outcome.value));
      td.append(outcome, el("button", { type: "button", class: "step close", onclick: () => post("close", { resolution: outcome.value }) }, t("close")));
    }
    body.append(el("tr", { class: "sev-" + e.severity },
      el("td", {}, "" + e.alert_id), el("td", {}, tt("t_", e.type)),
      el("td", {}, el("a", { href: "#", onclick: (ev) => { ev.preventDefault(); openResident(e.resident_id); } }, e.resident_name)),
      el("td", {}, e.address), el("td", { class: "state" }, e.closed_at ? t("closed") : e.state ? tt("k_", e.state) : t("open")), td));
  }
  labelCells($("escalations"));
}

// ---- visits ---------------------------------------------------------------------------------------------------

async function loadVisits() {
  const w = await api("/api/visits/week?limit=200");
  $("visit-week").textContent = w.week_start;
  $("visit-rate").textContent = `${Math.round(w.rate * 100)}% (${w.visited}/${w.due})`;
  $("visit-bar").style.width = `${Math.round(w.rate * 100)}%`;
  $("visit-bar").className = w.rate >= w.target ? "ok" : "short";
  const cb = $("visit-communities").querySelector("tbody"); cb.replaceChildren();
  for (const c of w.communities) cb.append(el("tr", {}, el("td", {}, c.region_path), el("td", {}, "" + c.due),
    el("td", {}, "" + c.visited), el("td", { class: c.rate >= 1 ? "good" : "bad" }, `${Math.round(c.rate * 100)}%`)));
  const lb = $("visit-list").querySelector("tbody"); lb.replaceChildren();
  for (const r of w.residents) {
    const td = el("td");
    if (!r.visited) {
      const note = el("input", { class: "visit-note", maxlength: "2000", placeholder: t("note") });
      const outcome = el("select", { class: "visit-outcome" }, ...["well", "concern", "not_home", "referred"].map((o) =>
        el("option", { value: o }, t("out_" + o))));
      const go = el("button", { type: "button", class: "small record-visit" }, t("record_visit"));
      go.addEventListener("click", () => act(async () => {
        await api("/api/visits", { method: "POST", json: { resident_id: r.resident_id, outcome: outcome.value, notes: note.value } });
        await loadVisits(); }));
      td.append(outcome, note, go);
    }
    lb.append(el("tr", { class: r.visited ? "done" : "" },
      el("td", {}, el("a", { href: "#", onclick: (ev) => { ev.preventDefault(); openResident(r.resident_id); } }, r.name)),
      el("td", {}, r.address), el("td", {}, r.planned_for || "—"),
      el("td", {}, r.visited ? `${t("visited")} ${fmtTime(r.visited_at)}` : t("not_visited")), td));
  }
  labelCells($("visit-list")); labelCells($("visit-communities"));
}

// ---- fleet ----------------------------------------------------------------------------------------------------

async function loadFleet() {
  const [h, page] = await Promise.all([api("/api/fleet/health"), api("/api/devices?problem=any&limit=200")]);
  $("fleet-counts").replaceChildren(...["total", "offline", "low_battery", "not_worn", "revoked"].map((k) =>
    el("div", { class: "card " + (k !== "total" && h[k] ? "warn" : "") }, el("b", {}, "" + h[k]), el("span", {}, t(k)))));
  const body = $("fleet").querySelector("tbody"); body.replaceChildren();
  for (const d of page.items) body.append(el("tr", {}, el("td", {}, d.id), el("td", {}, d.type),
    el("td", {}, d.resident_id || d.household_id || ""), el("td", {}, d.battery == null ? "—" : `${Math.round(d.battery)}%`),
    el("td", {}, fmtTime(d.last_seen)), el("td", {}, d.problems.map((p) => t(p)).join(", "))));
  labelCells($("fleet"));
}

// ---- SLA (served by another module; may be absent) --------------------------------------------------------------

async function loadSla() {
  const box = $("sla-body");
  try {
    const sla = await api("/api/sla");
    box.replaceChildren(renderSla(sla));
  } catch (e) {
    if (e.status === 404 || e.status === 405) box.replaceChildren(el("p", { class: "muted" }, t("sla_missing")));
    else throw e;
  }
}

function renderSla(v) {
  if (v === null || typeof v !== "object") return document.createTextNode(String(v));
  if (Array.isArray(v)) return el("ul", {}, ...v.map((x) => el("li", {}, renderSla(x))));
  return el("dl", { class: "kv" }, ...Object.entries(v).flatMap(([k, x]) => [el("dt", {}, k), el("dd", {}, renderSla(x))]));
}

// ---- resident page --------------------------------------------------------------------------------------------

async function openResident(id) {
  $("tab-resident").hidden = false;
  $("tab-resident").dataset.resident = id;
  await show("resident");
}

async function loadResident() {
  const id = $("tab-resident").dataset.resident;
  if (!id) return;
  const [r, act7] = await Promise.all([api(`/api/residents/${encodeURIComponent(id)}`),
    api(`/api/history/${encodeURIComponent(id)}/activity?days=7&bucket=day`)]);
  $("res-title").textContent = `${r.name} (${r.id})`;
  $("res-meta").textContent = `${t("born")} ${r.birth_year || "?"} · ${r.household.address} · ${r.region_path} · ` +
    `${t("risk")}: ${r.risk_flags.join(", ") || t("none")}`;
  $("res-contacts").replaceChildren(...r.contacts.map((c) => el("li", {}, `${c.name} (${c.relation || "—"}) `,
    c.phone ? el("a", { href: "tel:" + c.phone }, c.phone) : "")));
  $("res-notes").textContent = r.medical_notes || t("none");
  $("res-vitals").replaceChildren(...Object.entries(r.latest_vitals).map(([m, v]) =>
    el("li", {}, `${m}: ${Math.round(v.value * 10) / 10} · ${fmtTime(v.ts)}`)));
  $("res-devices").querySelector("tbody").replaceChildren(...r.devices.map((d) => el("tr", {},
    el("td", {}, d.id), el("td", {}, d.type), el("td", {}, d.online ? "●" : "○"),
    el("td", {}, d.battery == null ? "—" : `${Math.round(d.battery)}%`), el("td", {}, d.worn === false ? t("not_worn") : ""),
    el("td", {}, fmtTime(d.last_seen)))));
  drawChart($("res-chart"), act7);
}

function drawChart(svg, buckets) {
  svg.replaceChildren();
  const ns = "http://www.w3.org/2000/svg";
  const days = [];
  for (let i = 6; i >= 0; i--) { const d = new Date(); d.setHours(0, 0, 0, 0); d.setDate(d.getDate() - i); days.push(d); }
  const counts = days.map((d) => buckets.filter((b) => new Date(b.ts).toDateString() === d.toDateString())
    .reduce((s, b) => s + b.events, 0));
  const max = Math.max(1, ...counts);
  counts.forEach((c, i) => {
    const h = (c / max) * 100, x = 10 + i * 46;
    const rect = document.createElementNS(ns, "rect");
    Object.entries({ x, y: 110 - h, width: 34, height: h, fill: "#457b9d" }).forEach(([k, v]) => rect.setAttribute(k, v));
    const label = document.createElementNS(ns, "text");
    Object.entries({ x: x + 17, y: 126, "text-anchor": "middle", "font-size": 10 }).forEach(([k, v]) => label.setAttribute(k, v));
    label.textContent = `${days[i].getMonth() + 1}/${days[i].getDate()}`;
    const n = document.createElementNS(ns, "text");
    Object.entries({ x: x + 17, y: 106 - h, "text-anchor": "middle", "font-size": 10 }).forEach(([k, v]) => n.setAttribute(k, v));
    n.textContent = c;
    svg.append(rect, label, n);
  });
}

// ---- navigation, live feed, login -----------------------------------------------------------------------------

// Other scripts (manage.js, overview.js, imports.js) add their pages here.
const loaders = { alerts: loadAlerts, escalations: loadEscalations, visits: loadVisits, fleet: loadFleet,
  sla: loadSla, resident: loadResident };
const noFeedRefresh = new Set(["manage", "import"]);  // a live update must not wipe a half-filled form

async function show(name) {
  view = name;
  document.querySelectorAll(".view").forEach((s) => { s.hidden = s.id !== "view-" + name; });
  document.querySelectorAll("#tabs button").forEach((b) => b.classList.toggle("active", b.dataset.view === name));
  await act(loaders[name]);
}

async function refreshView() {
  await act(async () => {
    await loaders[view]();
    if (view === "alerts" && selected) await showDetail(selected);
  });
}

function scheduleRefresh() {
  if (refreshTimer || noFeedRefresh.has(view)) return;
  refreshTimer = setTimeout(() => { refreshTimer = null; refreshView(); }, 150);
}

function startFeed() {
  if (feed) feed.close();
  // EventSource cannot send headers; it resends Last-Event-ID itself when it reconnects.
  feed = new EventSource("/api/feed?access_token=" + encodeURIComponent(token));
  feed.onopen = () => { $("live").className = "live on"; $("live").textContent = t("live"); };
  feed.onerror = () => { $("live").className = "live off"; $("live").textContent = t("offline"); };
  const onEvent = (ev) => {
    const e = JSON.parse(ev.data);
    if (e.payload && e.payload.change === "created" && e.payload.severity === "critical") beep();
    if (e.payload && e.payload.alert_id) known.set(e.payload.alert_id, e.payload.severity);
    scheduleRefresh();
  };
  feed.addEventListener("alert", onEvent);
  feed.addEventListener("device", onEvent);
}

function logout() {
  if (token) fetch("/api/auth/logout", { method: "POST", headers: { Authorization: "Bearer " + token } });
  token = null; me = null; sessionStorage.removeItem("token");
  if (feed) { feed.close(); feed = null; }
  $("login").hidden = false; $("tabs").hidden = true; $("logout").hidden = true; $("who").textContent = "";
  document.querySelectorAll(".view").forEach((s) => { s.hidden = true; });
}

async function loggedIn() {
  $("login").hidden = true; $("tabs").hidden = false; $("logout").hidden = false;
  me = await api("/api/auth/me");
  $("who").textContent = `${me.display_name || me.username} · ${me.role}${me.scope_path ? " · " + me.scope_path : ""}`;
  const staff = me.role !== "family";
  const manager = ["admin", "operator"].includes(me.role);
  for (const v of ["escalations", "visits", "fleet", "sla", "overview", "manage", "import"]) {
    document.querySelector(`#tabs [data-view=${v}]`).hidden = !staff ||
      (["sla", "import"].includes(v) && !manager);
  }
  $("wall").hidden = !staff;
  document.body.classList.toggle("worker", me.role === "community_worker");
  await act(loadAssignees);
  await act(async () => { communities = (await api("/api/regions?level=community&limit=200")).items; });
  startFeed();
  await show(me.role === "community_worker" ? "escalations" : "alerts");
  if (me.role === "family" && me.resident_id) openResident(me.resident_id);
}

$("login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = new URLSearchParams({ username: $("username").value, password: $("password").value });
  const res = await fetch("/api/auth/token", { method: "POST", body: form });
  if (!res.ok) { $("login-error").textContent = t("bad_login"); return; }
  token = (await res.json()).access_token;
  sessionStorage.setItem("token", token);
  $("login-error").textContent = "";
  loggedIn();
});
$("comment-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const text = $("comment").value.trim();
  if (!text || !selected) return;
  act(async () => { await api(`/api/alerts/${selected}/comment`, { method: "POST", json: { text } });
    $("comment").value = ""; await showDetail(selected); });
});
$("lang").onclick = () => { lang = lang === "zh" ? "en" : "zh"; localStorage.setItem("lang", lang); applyLang(); refreshView(); };
$("logout").onclick = logout;
for (const id of ["alert-state", "alert-community", "alert-type", "alert-severity"]) $(id).addEventListener("change", () => refreshView());
let searchTimer = null;
$("alert-q").addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(refreshView, 300); });
$("alert-filters").addEventListener("submit", (ev) => { ev.preventDefault(); refreshView(); });
$("wall").addEventListener("click", () => { document.body.classList.toggle("wall"); if (document.body.classList.contains("wall")) show("overview"); });
$("esc-view").onchange = () => refreshView();
document.querySelectorAll("#tabs button").forEach((b) => { b.onclick = () => show(b.dataset.view); });
applyLang();
if (token) loggedIn().catch(() => logout());
// A slow safety net in case the feed is blocked by a proxy; the feed does the real-time work.
setInterval(() => { if (token && (!feed || feed.readyState !== 1)) refreshView(); }, 10000);
