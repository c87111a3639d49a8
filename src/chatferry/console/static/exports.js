// Exports: create (now or at a time), the list with live progress, download, cancel/delete.

import { api } from "./api.js";
import {
  Poller, browserOffset, byId, cell, formatBytes, formatNumber, h, localInputToRfc3339,
  momentCell, replaceChildren, rowsOrEmpty, say,
} from "./dom.js";
import { PAGE_SIZE, renderPager } from "./pager.js";

const RUNNING_POLL_MS = 1000;
const SCHEDULED_POLL_MS = 5000;
let page = 1;
let visible = false;
const poller = new Poller(refresh);

function statusCell(record) {
  const parts = [h("span", { class: `badge status-${record.status}` }, record.status)];
  if (record.status === "started") {
    parts.push(
      h("progress", {
        max: 100,
        value: record.percentage,
        "aria-label": `Export ${record.unique_id} progress`,
      }),
      h("span", { class: "percent" }, `${record.percentage}%`),
    );
  } else if (record.status === "scheduled" && record.run_at) {
    parts.push(h("span", { class: "note" }, " at ", momentCell(record.run_at)));
  } else if (record.error_message) {
    parts.push(h("span", { class: "note error-text" }, record.error_message));
  } else if (record.expired_at) {
    parts.push(h("span", { class: "note" }, "file deleted (retention)"));
  }
  return cell("Status", ...parts);
}

function actionsCell(record) {
  const actions = [];
  if (record.download_url) {
    actions.push(
      h("a", { class: "button", href: record.download_url, download: record.original_filename }, "Download"),
    );
  }
  const running = record.status === "started" || record.status === "scheduled";
  actions.push(
    h("button", {
      type: "button",
      class: "secondary",
      "aria-label": `${running ? "Cancel" : "Delete"} export ${record.unique_id}`,
      onclick: () => remove(record, running),
    }, running ? "Cancel" : "Delete"),
  );
  return cell("", h("div", { class: "row-actions" }, actions));
}

function exportRow(record) {
  const days = record.start_date === record.end_date
    ? record.start_date
    : `${record.start_date} – ${record.end_date}`;
  return h(
    "tr",
    { dataset: { id: record.unique_id, status: record.status } },
    cell("Created", momentCell(record.created_at)),
    cell("Type", record.resource_name),
    cell("Days", days),
    statusCell(record),
    cell("Rows", formatNumber(record.total_rows)),
    cell("Size", formatBytes(record.size)),
    actionsCell(record),
  );
}

function nextPoll(records) {
  if (records.some((r) => r.status === "started")) return RUNNING_POLL_MS;
  if (records.some((r) => r.status === "scheduled")) return SCHEDULED_POLL_MS;
  return null;
}

async function refresh() {
  try {
    const results = await api("GET", "/exports", { query: { page, limit: PAGE_SIZE } });
    const records = results.backup_histories;
    const tbody = byId("exports-table").querySelector("tbody");
    rowsOrEmpty(tbody, records.map(exportRow), 7, "No exports yet: create one above.");
    renderPager(byId("exports-pager"), results.meta, (p) => { page = p; load(); });
    return visible ? nextPoll(records) : null;
  } catch (error) {
    say(byId("exports-message"), error.message);
    return visible ? RUNNING_POLL_MS * 5 : null;
  }
}

async function load() {
  poller.stop();
  const next = await refresh();
  if (visible && typeof next === "number") poller.schedule(next);
}

async function remove(record, running) {
  const what = running ? "Cancel this export? It will not produce a file." : "Delete this export and its file?";
  if (!window.confirm(what)) return;
  try {
    await api("DELETE", `/exports/${encodeURIComponent(record.unique_id)}`);
    say(byId("exports-message"), running ? "The export was cancelled." : "The export was deleted.");
  } catch (error) {
    say(byId("exports-message"), error.message);
  }
  load();
}

async function create(event) {
  event.preventDefault();
  const body = { type: byId("export-type").value };
  const start = byId("export-start").value;
  const end = byId("export-end").value;
  const runAt = localInputToRfc3339(byId("export-run-at").value);
  if (start) body.start_date = start;
  if (end) body.end_date = end;
  if (runAt) body.run_at = runAt;
  say(byId("export-error"), "");
  try {
    const record = await api("POST", "/exports", { json: body });
    say(byId("exports-message"), `Export of ${record.resource_name} ${record.status}.`);
    byId("export-run-at").value = "";
    page = 1;
    load();
  } catch (error) {
    say(byId("export-error"), error.message);
  }
}

/** Pre-fills the form (the coverage page links here for one range). */
export function prefill(type, start, end) {
  byId("export-type").value = type;
  byId("export-start").value = start;
  byId("export-end").value = end;
}

export function init() {
  byId("export-form").addEventListener("submit", create);
  byId("exports-refresh").addEventListener("click", load);
  byId("export-offset").textContent = `UTC${browserOffset()}`;
}

export function show() {
  visible = true;
  load();
}

export function hide() {
  visible = false;
  poller.stop();
}

export function reset() {
  hide();
  page = 1;
  replaceChildren(byId("exports-table").querySelector("tbody"));
  say(byId("exports-message"), "");
  say(byId("export-error"), "");
  byId("export-form").reset();
}
