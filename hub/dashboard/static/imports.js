// Roster import: download the template, upload a CSV or XLSX, follow its progress, read every bad row.
"use strict";
let importJob = null;
let importTimer = null;
let errorOffset = 0;  // which page of bad rows is shown

// Downloads need the bearer token, so they are fetched and handed to the browser as a blob.
async function download(path, filename) {
  const res = await fetch(path, { headers: { Authorization: "Bearer " + token } });
  if (!res.ok) throw new Error(res.status + "");
  const url = URL.createObjectURL(await res.blob());
  const a = el("a", { href: url, download: filename });
  document.body.append(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function showImport(j) {
  $("import-status").hidden = false;
  $("import-state").textContent = t("imp_" + j.state) + (j.dry_run ? ` (${t("dry_run")})` : "");
  $("import-state").dataset.state = j.state;
  const total = j.total_rows || 0;
  $("import-progress").textContent = `${j.processed_rows}${total ? " / " + total : ""} ${t("rows")} · ${j.error_count} ${t("errors")}` +
    (j.failure ? ` · ${j.failure}` : "");
  $("import-bar").style.width = total ? `${Math.min(100, Math.round((100 * j.processed_rows) / total))}%` : (j.state === "done" ? "100%" : "5%");
  $("import-bar").className = j.error_count ? "short" : "ok";
  $("import-counts").replaceChildren(...Object.entries(j.counts).sort().flatMap(([k, v]) => [el("dt", {}, t("c_" + k)), el("dd", { "data-count": k }, "" + v)]));
  $("import-creds").hidden = !j.credentials_ready;
  $("import-errors").hidden = !j.errors.length;
  $("import-more").hidden = j.next_error_offset == null;
  $("import-prev").hidden = errorOffset === 0;
  tableRows("import-errors", j.errors.map((e) => el("tr", {}, el("td", {}, "" + e.row), el("td", {}, colName(e.column)), el("td", {}, e.reason))));
}

function colName(key) { return t("col_" + key) === "col_" + key ? key : t("col_" + key); }

async function pollImport() {
  clearTimeout(importTimer);
  if (!importJob) return;
  const j = await api(`/api/imports/${importJob}?error_limit=200&error_offset=${errorOffset}`);
  showImport(j);
  if (j.state === "queued" || j.state === "running") importTimer = setTimeout(() => act(pollImport), 1000);
}

async function loadImport() {
  if (importJob) await pollImport();
}

$("import-more").addEventListener("click", () => { errorOffset += 200; act(pollImport); });
$("import-prev").addEventListener("click", () => { errorOffset = Math.max(0, errorOffset - 200); act(pollImport); });
$("tpl-xlsx").addEventListener("click", () => act(() => download("/api/imports/template.xlsx", "roster-template.xlsx")));
$("tpl-csv").addEventListener("click", () => act(() => download("/api/imports/template.csv", "roster-template.csv")));
$("import-creds").addEventListener("click", () => act(async () => {
  await download(`/api/imports/${importJob}/credentials`, `import-${importJob}-credentials.csv`);
  $("import-creds").hidden = true;
}));
$("f-import").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const f = ev.target;
  submitForm(f, async () => {
    const file = $("import-file").files[0];
    if (!file) throw new Error(t("choose_file"));
    const body = new FormData();
    body.append("file", file);
    body.append("dry_run", $("import-dry").checked ? "true" : "false");
    const j = await api("/api/imports", { method: "POST", body });
    importJob = j.id; errorOffset = 0;
    showImport(j);
    await pollImport();
  });
});
loaders.import = loadImport;
