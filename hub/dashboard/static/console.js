// Operator console: logs in with the OAuth2 password flow and keeps the alert list live.
"use strict";
const T = {
  zh: { title: "智慧养老监护台", login: "登录", username: "用户名", password: "密码", signin: "登录", logout: "退出",
        alerts: "实时告警", time: "时间", type: "类型", severity: "级别", resident: "老人", state: "状态",
        timeline: "处置时间线", ack: "确认", open: "待处理", acked: "已确认", closed: "已关闭", lang: "English",
        bad_login: "用户名或密码错误", location: "位置", unknown: "未知" },
  en: { title: "Eldercare console", login: "Log in", username: "Username", password: "Password", signin: "Log in",
        logout: "Log out", alerts: "Live alerts", time: "Time", type: "Type", severity: "Severity",
        resident: "Resident", state: "State", timeline: "Timeline", ack: "Acknowledge", open: "Open",
        acked: "Acknowledged", closed: "Closed", lang: "中文", bad_login: "Wrong username or password",
        location: "Location", unknown: "unknown" },
};
let lang = localStorage.getItem("lang") || "zh";
let token = sessionStorage.getItem("token");
let selected = null;
let seen = new Set();
const $ = (id) => document.getElementById(id);
const t = (k) => T[lang][k] || k;

function applyLang() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  $("lang").textContent = t("lang");
}

async function api(path, opts = {}) {
  const headers = Object.assign({ Authorization: "Bearer " + token }, opts.headers || {});
  const res = await fetch(path, Object.assign({}, opts, { headers }));
  if (res.status === 401) { logout(); throw new Error("unauthorized"); }
  if (!res.ok) throw new Error(res.status + "");
  return res.json();
}

function beep() {
  try {
    const ctx = new AudioContext(); const o = ctx.createOscillator(); o.frequency.value = 880;
    o.connect(ctx.destination); o.start(); setTimeout(() => { o.stop(); ctx.close(); }, 400);
  } catch (e) { /* audio may be blocked until the user interacts */ }
}

function render(items) {
  const body = $("alerts").querySelector("tbody");
  body.replaceChildren();
  for (const a of items) {
    if (!seen.has(a.id) && a.severity === "critical" && seen.size) beep();
    seen.add(a.id);
    const tr = document.createElement("tr");
    tr.className = "sev-" + a.severity + (a.acknowledged_at ? " acked" : "");
    tr.dataset.alertId = a.id;
    const state = a.closed_at ? t("closed") : a.acknowledged_at ? t("acked") : t("open");
    for (const v of [a.id, new Date(a.created_at).toLocaleString(), a.type, a.severity, a.resident_id, state]) {
      const td = document.createElement("td"); td.textContent = v; tr.appendChild(td);
    }
    const td = document.createElement("td");
    if (!a.acknowledged_at && !a.closed_at) {
      const b = document.createElement("button"); b.textContent = t("ack"); b.className = "ack";
      b.onclick = async (ev) => { ev.stopPropagation(); await api(`/api/alerts/${a.id}/ack`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ via: "console" }) });
        refresh(); showDetail(a.id); };
      td.appendChild(b);
    }
    tr.appendChild(td);
    tr.onclick = () => showDetail(a.id);
    body.appendChild(tr);
  }
}

async function showDetail(id) {
  selected = id;
  const [a, tl] = await Promise.all([api(`/api/alerts/${id}`), api(`/api/alerts/${id}/timeline`)]);
  $("detail").hidden = false;
  $("detail-id").textContent = id;
  const loc = a.location || (a.details && a.details.last_known_location);
  $("detail-location").textContent = t("location") + ": " +
    (loc ? `${loc.lat.toFixed(5)}, ${loc.lon.toFixed(5)} ±${loc.acc_m ?? "?"} m` : t("unknown"));
  const ol = $("timeline"); ol.replaceChildren();
  for (const e of tl) {
    const li = document.createElement("li");
    li.textContent = `${new Date(e.ts).toLocaleTimeString()} · ${e.kind} · ${e.actor}`;
    li.className = "tl-" + e.kind;
    ol.appendChild(li);
  }
}

async function refresh() {
  if (!token) return;
  try {
    const page = await api("/api/alerts?limit=100");
    render(page.items);
    if (selected) showDetail(selected);
  } catch (e) { /* shown by the next successful refresh */ }
}

function logout() {
  token = null; sessionStorage.removeItem("token");
  $("login").hidden = false; $("alerts-view").hidden = true; $("logout").hidden = true; $("who").textContent = "";
}

async function loggedIn() {
  $("login").hidden = true; $("alerts-view").hidden = false; $("logout").hidden = false;
  const me = await api("/api/auth/me");
  $("who").textContent = `${me.username} (${me.role})`;
  refresh();
}

$("login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = new URLSearchParams({ username: $("username").value, password: $("password").value });
  const res = await fetch("/api/auth/token", { method: "POST", body: form });
  if (!res.ok) { $("login-error").textContent = t("bad_login"); return; }
  token = (await res.json()).access_token; sessionStorage.setItem("token", token);
  $("login-error").textContent = "";
  loggedIn();
});
$("logout").onclick = () => { fetch("/api/auth/logout", { method: "POST", headers: { Authorization: "Bearer " + token } }); logout(); };
$("lang").onclick = () => { lang = lang === "zh" ? "en" : "zh"; localStorage.setItem("lang", lang); applyLang(); refresh(); };
applyLang();
if (token) loggedIn();
setInterval(refresh, 1500);
