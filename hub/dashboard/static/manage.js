// Management pages: regions, households, residents (contacts, notes, risk flags, safe zones), devices, users.
// Every write goes through the REST API, which checks scope and writes the audit log.
"use strict";
const DEVICE_TYPES = ["wristband", "watch3g", "panic_button", "door", "motion", "smoke", "leak", "bed", "radar"];
let managePart = "regions";
let regionsCache = [];

// ---- forms: values in, errors next to their field --------------------------------------------------------------

function formValue(form, name) {
  const f = form.elements[name];
  if (!f) return undefined;
  if (f.type === "checkbox") return f.checked;
  const v = f.value.trim();
  return v === "" ? null : v;
}

function clearErrors(form) {
  form.querySelectorAll(".err").forEach((e) => { e.textContent = ""; });
  form.querySelectorAll(".invalid").forEach((e) => e.classList.remove("invalid"));
  const fe = form.querySelector(".form-error"); if (fe) fe.textContent = "";
}

// A 422 names the field (`loc: ["body", field, ...]`): show the message beside it; anything else goes on the form.
function showErrors(form, err) {
  const fe = form.querySelector(".form-error");
  if (Array.isArray(err.detail)) {
    for (const d of err.detail) {
      const field = (d.loc || []).filter((x) => x !== "body")[0];
      const slot = field != null && form.querySelector(`[data-err="${field}"]`);
      if (slot) {
        slot.textContent = (slot.textContent ? slot.textContent + "; " : "") + d.msg;
        const input = form.elements[field]; if (input && input.classList) input.classList.add("invalid");
      } else if (fe) fe.textContent += `${(d.loc || []).join(".")}: ${d.msg} `;
    }
  } else if (fe) fe.textContent = t("error") + ": " + err.message;
}

async function submitForm(form, fn) {
  clearErrors(form);
  try { await fn(); return true; } catch (e) {
    if (e.message === "unauthorized") return false;
    showErrors(form, e); return false;
  }
}

function num(v) { return v == null ? null : (isNaN(+v) ? v : +v); }

function setMode(form, editing) {
  form.dataset.editing = editing || "";
  const m = form.querySelector(".mode"); if (m) m.textContent = editing ? `${t("edit")} ${editing}` : t("new");
  const id = form.elements.id || form.elements.username; if (id) id.readOnly = !!editing;
}

function fillForm(form, obj) {
  for (const [k, v] of Object.entries(obj)) {
    const f = form.elements[k];
    if (!f || f.tagName === "FIELDSET") continue;
    if (f.type === "checkbox") f.checked = !!v; else f.value = v == null ? "" : (Array.isArray(v) ? v.join(", ") : v);
  }
}

function tableRows(id, rows) {
  const table = $(id); const body = table.querySelector("tbody");
  body.replaceChildren(...rows);
  labelCells(table);
}

// ---- sub-pages ---------------------------------------------------------------------------------------------------

// Community workers may edit the households and residents of their community (the API says so), nothing else.
const WORKER_PARTS = ["households", "residents"];

async function loadManage() {
  const worker = me.role === "community_worker";
  document.querySelectorAll("#manage-tabs button").forEach((b) => { b.hidden = worker && !WORKER_PARTS.includes(b.dataset.manage); });
  if (worker && !WORKER_PARTS.includes(managePart)) managePart = "residents";
  document.querySelectorAll("#manage-tabs button").forEach((b) => b.classList.toggle("active", b.dataset.manage === managePart));
  document.querySelectorAll(".manage").forEach((d) => { d.hidden = d.id !== "m-" + managePart; });
  regionsCache = (await api("/api/regions?limit=200")).items;
  fillRegionSelects();
  await ({ regions: loadRegions, households: loadHouseholds, residents: loadResidents, devices: loadDevices,
    users: loadUsers })[managePart]();
}

function fillRegionSelects() {
  const label = (r) => `${r.name}${r.name_en ? " / " + r.name_en : ""} (${r.path})`;
  document.querySelectorAll("select.communities").forEach((s) => {
    const keep = s.value;
    s.replaceChildren(...regionsCache.filter((r) => r.level === "community").map((r) => el("option", { value: r.path }, label(r))));
    if (keep) s.value = keep;
  });
  document.querySelectorAll("select.regions-any").forEach((s) => {
    const keep = s.value;
    s.replaceChildren(el("option", { value: "" }, t("whole_platform")), ...regionsCache.map((r) => el("option", { value: r.path }, label(r))));
    s.value = keep;
  });
  const parent = $("f-region").elements.parent;
  const level = $("f-region").elements.level.value;
  const want = { district: "city", community: "district", city: null }[level];
  const keep = parent.value;
  parent.replaceChildren(...(want ? regionsCache.filter((r) => r.level === want) : []).map((r) => el("option", { value: r.path }, label(r))));
  parent.disabled = !want;
  if (keep) parent.value = keep;
}

async function loadRegions() {
  tableRows("t-regions", regionsCache.map((r) => el("tr", {}, el("td", {}, r.path), el("td", {}, t("lvl_" + r.level)),
    el("td", {}, r.name), el("td", {}, r.name_en || ""))));
}

$("f-region").elements.level.addEventListener("change", fillRegionSelects);
$("f-region").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const f = ev.target;
  submitForm(f, async () => {
    const level = formValue(f, "level"), slug = (formValue(f, "slug") || "").toLowerCase();
    const path = level === "city" ? slug : `${formValue(f, "parent") || ""}/${slug}`;
    await api("/api/regions", { method: "POST", json: { path, level, name: formValue(f, "name") || "", name_en: formValue(f, "name_en") } });
    const outline = formValue(f, "outline");
    if (outline) {
      let polygon;
      try { polygon = JSON.parse(outline); } catch (e) { throw Object.assign(new Error("outline"), { detail: [{ loc: ["body", "polygon"], msg: t("bad_json") }] }); }
      await api(`/api/regions/${path}/outline`, { method: "PUT", json: { polygon } });
    }
    f.reset(); await loadManage();
  });
});

async function loadHouseholds() {
  const page = await api("/api/households?limit=200");
  tableRows("t-households", page.items.map((h) => el("tr", { class: "pick", onclick: () => {
    fillForm($("f-household"), h); setMode($("f-household"), h.id); } },
  el("td", {}, h.id), el("td", {}, h.region_path), el("td", {}, h.address), el("td", {}, h.lat ?? ""), el("td", {}, h.lon ?? ""))));
}

$("f-household").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const f = ev.target;
  submitForm(f, async () => {
    const body = { address: formValue(f, "address") || "", lat: num(formValue(f, "lat")), lon: num(formValue(f, "lon")) };
    if (f.dataset.editing) await api(`/api/households/${encodeURIComponent(f.dataset.editing)}`, { method: "PATCH", json: body });
    else await api("/api/households", { method: "POST", json: { id: formValue(f, "id"), region_path: formValue(f, "region_path"), ...body } });
    f.reset(); setMode(f, null); await loadHouseholds();
  });
});
$("f-household").addEventListener("reset", () => setMode($("f-household"), null));

// ---- residents ---------------------------------------------------------------------------------------------------

function contactRow(c = {}) {
  const row = el("div", { class: "contact-row" },
    el("input", { class: "c-name", maxlength: "100", placeholder: t("name_person"), value: c.name || "" }),
    el("input", { class: "c-relation", maxlength: "40", placeholder: t("relation"), value: c.relation || "" }),
    el("input", { class: "c-phone", type: "tel", placeholder: t("phone"), value: c.phone || "" }));
  const up = el("button", { type: "button", class: "small", title: t("move_up") }, "↑");
  up.addEventListener("click", () => { if (row.previousElementSibling) row.parentNode.insertBefore(row, row.previousElementSibling); });
  const del = el("button", { type: "button", class: "small", title: t("remove") }, "×");
  del.addEventListener("click", () => row.remove());
  row.append(up, del, el("span", { class: "err" }));
  return row;
}

function contactsOf() {
  return [...document.querySelectorAll("#contact-rows .contact-row")].map((r) => ({
    name: r.querySelector(".c-name").value.trim(), relation: r.querySelector(".c-relation").value.trim(),
    phone: r.querySelector(".c-phone").value.trim() || null,
  })).filter((c) => c.name || c.phone);
}

// Errors inside the contact list point at a row ("contacts", 1, "phone"): show them on that row.
function contactErrors(err) {
  if (!Array.isArray(err.detail)) return;
  const rows = document.querySelectorAll("#contact-rows .contact-row");
  for (const d of err.detail) {
    const loc = (d.loc || []).filter((x) => x !== "body");
    if (loc[0] === "contacts" && typeof loc[1] === "number" && rows[loc[1]]) {
      rows[loc[1]].querySelector(".err").textContent = `${loc[2] || ""}: ${d.msg}`;
    }
  }
}

async function loadResidents() {
  const q = $("resident-q").value.trim();
  const page = await api(`/api/residents?limit=200${q ? "&q=" + encodeURIComponent(q) : ""}`);
  tableRows("t-residents", page.items.map((r) => el("tr", { class: "pick", onclick: () => act(() => editResident(r.id)) },
    el("td", {}, r.id), el("td", {}, r.name), el("td", {}, r.birth_year ?? ""), el("td", {}, r.region_path),
    el("td", {}, r.address), el("td", {}, r.risk_flags.join(", ")))));
}

async function editResident(id) {
  const [r, zones] = await Promise.all([api(`/api/residents/${encodeURIComponent(id)}`),
    api(`/api/residents/${encodeURIComponent(id)}/safe-zones`)]);
  const f = $("f-resident");
  f.reset(); clearErrors(f);
  fillForm(f, { ...r, household_id: r.household_id });
  $("contact-rows").replaceChildren(...r.contacts.map((c) => contactRow(c)));
  const z = zones.find((x) => x.radius_m != null);
  fillForm(f, { zone_lat: z ? z.lat : "", zone_lon: z ? z.lon : "", zone_radius: z ? z.radius_m : "" });
  setMode(f, r.id);
  f.scrollIntoView({ block: "start" });
}

$("add-contact").addEventListener("click", () => $("contact-rows").append(contactRow()));
$("f-resident").addEventListener("reset", () => { setMode($("f-resident"), null); $("contact-rows").replaceChildren(contactRow()); });
$("resident-search").addEventListener("submit", (ev) => { ev.preventDefault(); act(loadResidents); });
$("f-resident").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const f = ev.target;
  submitForm(f, async () => {
    const flags = (formValue(f, "risk_flags") || "").split(/[,，;；\s]+/).filter(Boolean);
    const fields = { name: formValue(f, "name"), birth_year: num(formValue(f, "birth_year")), gender: formValue(f, "gender"),
      phone: formValue(f, "phone"), medical_notes: formValue(f, "medical_notes") || "", risk_flags: flags };
    const contacts = contactsOf();
    let id = f.dataset.editing;
    try {
      if (id) {
        await api(`/api/residents/${encodeURIComponent(id)}`, { method: "PATCH", json: fields });
        await api(`/api/residents/${encodeURIComponent(id)}/contacts`, { method: "PUT", json: { contacts } });
      } else {
        id = formValue(f, "id");
        await api("/api/residents", { method: "POST", json: { id, household_id: formValue(f, "household_id"), ...fields, contacts } });
      }
    } catch (e) { contactErrors(e); throw e; }
    const lat = num(formValue(f, "zone_lat")), lon = num(formValue(f, "zone_lon")), radius = num(formValue(f, "zone_radius"));
    if (lat != null || lon != null || radius != null) {
      await api(`/api/residents/${encodeURIComponent(id)}/safe-zones`, { method: "PUT",
        json: { zones: [{ name: "home", lat, lon, radius_m: radius }] } }).catch((e) => {
        // The zone's fields are nested (zones.0.lat): show them on the zone box.
        throw Object.assign(e, { detail: Array.isArray(e.detail) ? e.detail.map((d) => ({ ...d, loc: ["body", "zones"] })) : e.detail });
      });
    }
    f.reset(); await loadResidents();
  });
});

// ---- devices -----------------------------------------------------------------------------------------------------

async function showCredential(p) {
  $("credential").hidden = false;
  $("cred-user").textContent = p.mqtt_username;
  $("cred-pass").textContent = p.mqtt_password;
  const text = JSON.stringify({ host: location.hostname, device: p.id, type: p.type, username: p.mqtt_username, password: p.mqtt_password });
  const res = await fetch("/api/qr", { method: "POST", headers: { Authorization: "Bearer " + token, "Content-Type": "application/json" },
    body: JSON.stringify({ text }) });
  const svg = await res.text();
  // A data: URL: the CSP allows images from 'self' and data: only.
  $("cred-qr").src = "data:image/svg+xml;base64," + btoa(unescape(encodeURIComponent(svg)));
}

$("cred-hide").addEventListener("click", () => {
  $("credential").hidden = true; $("cred-pass").textContent = ""; $("cred-qr").removeAttribute("src");
});

async function loadDevices() {
  const sel = $("device-types");
  if (!sel.options.length) sel.append(...DEVICE_TYPES.map((d) => el("option", { value: d }, d)));
  const page = await api(`/api/devices?limit=200${$("device-revoked").checked ? "&include_revoked=true" : ""}`);
  tableRows("t-devices", page.items.map((d) => {
    const td = el("td", { class: "row-actions" });
    if (d.status === "active") {
      td.append(
        el("button", { type: "button", class: "small d-move", onclick: () => {
          const f = $("f-bind"); f.hidden = false; f.dataset.device = d.id; $("bind-id").textContent = d.id;
          fillForm(f, { resident_id: d.resident_id, household_id: d.resident_id ? "" : d.household_id, room: d.room });
        } }, t("move_device")),
        el("button", { type: "button", class: "small d-rotate", onclick: () => act(async () => {
          if (!confirm(t("confirm_rotate"))) return;
          await showCredential(await api(`/api/devices/${encodeURIComponent(d.id)}/credentials`, { method: "POST" }));
        }) }, t("rotate")),
        el("button", { type: "button", class: "small d-revoke", onclick: () => act(async () => {
          if (!confirm(t("confirm_revoke"))) return;
          await api(`/api/devices/${encodeURIComponent(d.id)}`, { method: "DELETE" }); await loadDevices();
        }) }, t("revoke")));
    }
    return el("tr", { "data-device": d.id }, el("td", {}, d.id), el("td", {}, d.type), el("td", {}, d.resident_id || d.household_id || ""),
      el("td", {}, d.room || ""), el("td", {}, d.status === "active" ? (d.online ? t("online") : t("offline_devices")) : t("revoked")),
      el("td", {}, d.battery == null ? "—" : `${Math.round(d.battery)}%`), td);
  }));
}

$("device-revoked").addEventListener("change", () => act(loadDevices));
$("f-device").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const f = ev.target;
  submitForm(f, async () => {
    const p = await api("/api/devices", { method: "POST", json: { id: formValue(f, "id"), type: formValue(f, "type"),
      resident_id: formValue(f, "resident_id"), household_id: formValue(f, "household_id"), room: formValue(f, "room") } });
    f.reset();
    await showCredential(p);
    await loadDevices();
  });
});
$("f-bind").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const f = ev.target;
  submitForm(f, async () => {
    await api(`/api/devices/${encodeURIComponent(f.dataset.device)}`, { method: "PATCH", json: {
      resident_id: formValue(f, "resident_id"), household_id: formValue(f, "household_id"), room: formValue(f, "room") } });
    f.hidden = true; await loadDevices();
  });
});
$("bind-cancel").addEventListener("click", () => { $("f-bind").hidden = true; });

// ---- users -------------------------------------------------------------------------------------------------------

async function loadUsers() {
  $("f-user").hidden = me.role !== "admin";  // operators may list accounts; only admins change them
  const page = await api("/api/users?limit=200");
  tableRows("t-users", page.items.map((u) => el("tr", { class: "pick", onclick: () => {
    const f = $("f-user"); f.reset(); clearErrors(f); fillForm(f, { ...u, password: "" }); setMode(f, u.username); f.dataset.userId = u.id;
  } }, el("td", {}, u.username), el("td", {}, t("role_" + u.role)), el("td", {}, u.scope_path || t("whole_platform")),
  el("td", {}, u.display_name), el("td", {}, u.disabled ? t("disabled") : t("active")))));
}

$("f-user").addEventListener("reset", () => { setMode($("f-user"), null); delete $("f-user").dataset.userId; });
$("f-user").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const f = ev.target;
  submitForm(f, async () => {
    const body = { role: formValue(f, "role"), scope_path: formValue(f, "scope_path"), resident_id: formValue(f, "resident_id"),
      display_name: formValue(f, "display_name") || "", phone: formValue(f, "phone") };
    const password = formValue(f, "password");
    if (f.dataset.userId) {
      await api(`/api/users/${f.dataset.userId}`, { method: "PATCH", json: { ...body, disabled: formValue(f, "disabled"),
        ...(password ? { password } : {}) } });
    } else {
      await api("/api/users", { method: "POST", json: { username: formValue(f, "username"), password: password || "", ...body } });
    }
    f.reset(); await loadUsers();
  });
});

document.querySelectorAll("#manage-tabs button").forEach((b) => b.addEventListener("click", () => {
  managePart = b.dataset.manage; act(loadManage);
}));
$("contact-rows").append(contactRow());
loaders.manage = loadManage;
