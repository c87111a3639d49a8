// Exports: create (now or at a time in the app's zone), the list with live progress,
// download, cancel/delete.

import { api } from "./api.js";
import { byId, cell, h, momentCell, say } from "./dom.js";
import {
  RecordList, actionButton, actionsCell, countCell, dayRange, idCell, progressBar,
  shortId, sizeCell, statusBadge,
} from "./records.js";
import { zonedInputToRfc3339 } from "./time.js";

const RUNNING_POLL_MS = 1000;
const SCHEDULED_POLL_MS = 5000;
const PENDING = ["started", "scheduled"];
let announced = null; // { id, type, status } of the export the message speaks of

function statusCell(record) {
  const parts = [statusBadge(record.status)];
  if (record.status === "started") {
    parts.push(progressBar(record, "Export"), h("span", { class: "percent" }, `${record.percentage}%`));
  } else if (record.status === "scheduled" && record.run_at) {
    parts.push(h("span", { class: "note nowrap" }, "at ", momentCell(record.run_at)));
  } else if (record.error_message) {
    parts.push(h("span", { class: "note error-text" }, record.error_message));
  } else if (record.expired_at) {
    parts.push(h("span", { class: "note" }, "file deleted (retention)"));
  }
  return cell("Status", ...parts);
}

function describe(record) {
  const days = record.start_date === record.end_date
    ? record.start_date
    : `${record.start_date} to ${record.end_date}`;
  return `${record.resource_name} export ${days} (${shortId(record.unique_id)})`;
}

function typeCell(record) {
  const mark = record.schedule_id
    ? h("span", { class: "badge from-schedule", title: `Made by the schedule ${record.schedule_id}` }, "schedule")
    : null;
  return cell("Type", record.resource_name, mark ? " " : "", mark);
}

function actions(record) {
  const list = [];
  if (record.download_url) {
    list.push(h("a", {
      class: "button", href: record.download_url, download: record.original_filename,
      "aria-label": `Download ${describe(record)}`,
    }, "Download"));
  }
  const running = PENDING.includes(record.status);
  const verb = running ? "Cancel" : "Delete";
  list.push(actionButton(verb, `export ${record.unique_id}`, () => remove(record, running)));
  return actionsCell(list);
}

function exportRow(record) {
  const done = record.status === "finished";
  return h(
    "tr",
    { dataset: { id: record.unique_id, status: record.status, schedule: record.schedule_id || "" } },
    idCell(record, "export", byId("exports-message")),
    cell("Created", momentCell(record.created_at)),
    typeCell(record),
    cell("Days", dayRange(record.start_date, record.end_date)),
    statusCell(record),
    countCell("Rows", record.total_rows, done),
    sizeCell(record.size, done),
    actions(record),
  );
}

function nextPoll(records) {
  if (records.some((r) => r.status === "started")) return RUNNING_POLL_MS;
  if (records.some((r) => r.status === "scheduled")) return SCHEDULED_POLL_MS;
  return null;
}

/** The message about the latest created export follows its status (never stale). */
function followAnnounced(records) {
  if (!announced) return;
  const record = records.find((r) => r.unique_id === announced.id);
  if (!record || record.status === announced.status) return;
  announced.status = record.status;
  list.message(`Export of ${record.resource_name} (${shortId(record.unique_id)}) ${record.status}.`);
  if (!PENDING.includes(record.status)) announced = null;
}

const list = new RecordList({
  table: "exports-table",
  pager: "exports-pager",
  message: "exports-message",
  path: "/exports",
  waitFor: "exports",
  key: "backup_histories",
  row: exportRow,
  columns: 8,
  empty: "No exports yet: create one above.",
  nextPoll,
  errorPoll: RUNNING_POLL_MS * 5,
  seen: followAnnounced,
});

async function remove(record, running) {
  const what = running ? "Cancel this export? It will not produce a file." : "Delete this export and its file?";
  if (!window.confirm(what)) return;
  announced = null;
  try {
    await api("DELETE", `/exports/${encodeURIComponent(record.unique_id)}`);
    list.message(running ? "The export was cancelled." : "The export was deleted.");
  } catch (error) {
    list.message(error.message);
  }
  list.load();
}

async function create(event) {
  event.preventDefault();
  const body = { type: byId("export-type").value };
  const start = byId("export-start").value;
  const end = byId("export-end").value;
  const runAt = zonedInputToRfc3339(byId("export-run-at").value);
  if (start) body.start_date = start;
  if (end) body.end_date = end;
  if (runAt) body.run_at = runAt;
  say(byId("export-error"), "");
  try {
    const record = await api("POST", "/exports", { json: body });
    announced = { id: record.unique_id, status: record.status };
    list.message(`Export of ${record.resource_name} (${shortId(record.unique_id)}) ${record.status}.`);
    byId("export-run-at").value = "";
    list.first();
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
  byId("exports-refresh").addEventListener("click", () => list.load());
}

export function show() {
  list.show();
}

export function hide() {
  list.hide();
}

export function reset() {
  list.reset();
  announced = null;
  say(byId("export-error"), "");
  byId("export-form").reset();
}
