// Schedules: create, edit (name, cron, window, keep), pause/resume, run now, delete.
// Numbers go to the API as typed, so its own validation messages reach the person.

import { api } from "./api.js";
import { byId, cell, h, momentCell, say } from "./dom.js";
import { EMPTY, RecordList, actionButton, actionsCell } from "./records.js";

let editing = null; // the schedule record being edited

/** A number input's value for the API: an integer if it is one, else what was typed. */
function numberValue(input) {
  const text = input.value.trim();
  if (text === "") return null;
  return /^-?\d+$/.test(text) ? Number(text) : text;
}

function path(record, suffix = "") {
  return `/export_schedules/${encodeURIComponent(record.unique_id)}${suffix}`;
}

function message(text) {
  list.message(text);
}

function load() {
  list.load();
}

async function act(task, done) {
  try {
    await task();
    if (done) message(done);
  } catch (error) {
    message(error.message);
  }
  load();
}

function setPaused(record, paused) {
  act(
    () => api("PATCH", path(record), { json: { paused } }),
    `${label(record)} ${paused ? "paused" : "resumed"}.`,
  );
}

function remove(record) {
  if (!window.confirm(`Delete the schedule ${label(record)}? Its exports stay.`)) return;
  act(() => api("DELETE", path(record)), `${label(record)} deleted; its exports stay.`);
}

function runNow(record) {
  act(async () => {
    const results = await api("POST", path(record, "/run"));
    const created = results.backup_histories || [];
    if (!created.length) {
      message(`${label(record)} ran: nothing new to export (every day up to yesterday is covered).`);
      return;
    }
    const days = created.map((e) => (e.start_date === e.end_date ? e.start_date : `${e.start_date} – ${e.end_date}`));
    message(`${label(record)} ran: ${created.length} export${created.length > 1 ? "s" : ""} started (${days.join(", ")}). Follow ${created.length > 1 ? "them" : "it"} under Exports.`);
  });
}

function label(record) {
  return record.name ? `“${record.name}”` : `The ${record.type} schedule`;
}

function scheduleButton(text, record, onclick) {
  return actionButton(text, record.name || `${record.type} schedule ${record.unique_id}`, onclick);
}

function scheduleRow(record) {
  const state = record.paused ? "paused" : "active";
  return h(
    "tr",
    { dataset: { id: record.unique_id, paused: String(record.paused) } },
    cell("Name", record.name || h("span", { class: "muted" }, "(no name)")),
    cell("Type", record.type),
    cell("When", h("code", { class: "nowrap" }, record.cron)),
    cell("Days per run", String(record.window_days)),
    cell("Keep", String(record.keep_last)),
    cell("State", h("span", { class: `badge state-${state}` }, state)),
    cell("Next run", record.paused ? EMPTY : momentCell(record.next_run_at)),
    cell("Covered through", record.covered_through ? h("span", { class: "nowrap" }, record.covered_through) : EMPTY),
    actionsCell(
      scheduleButton("Run now", record, () => runNow(record)),
      record.paused
        ? scheduleButton("Resume", record, () => setPaused(record, false))
        : scheduleButton("Pause", record, () => setPaused(record, true)),
      scheduleButton("Edit", record, () => openEditor(record)),
      scheduleButton("Delete", record, () => remove(record)),
    ),
  );
}

const list = new RecordList({
  table: "schedules-table",
  pager: "schedules-pager",
  message: "schedules-message",
  path: "/export_schedules",
  key: "export_schedules",
  row: scheduleRow,
  columns: 9,
  empty: "No schedules yet: create one above.",
});

async function create(event) {
  event.preventDefault();
  const body = {
    type: byId("schedule-type").value,
    cron: byId("schedule-cron").value.trim(),
    window_days: numberValue(byId("schedule-window")),
    keep_last: numberValue(byId("schedule-keep")),
  };
  const name = byId("schedule-name").value.trim();
  if (name) body.name = name;
  say(byId("schedule-error"), "");
  try {
    const results = await api("POST", "/export_schedules", { json: body });
    message(`${label(results.export_schedule)} created.`);
    byId("schedule-name").value = "";
    list.first();
  } catch (error) {
    say(byId("schedule-error"), error.message);
  }
}

function openEditor(record) {
  editing = record;
  byId("edit-name").value = record.name || "";
  byId("edit-cron").value = record.cron;
  byId("edit-window").value = String(record.window_days);
  byId("edit-keep").value = String(record.keep_last);
  say(byId("edit-error"), "");
  byId("schedule-dialog").showModal();
  byId("edit-name").focus();
}

function changedFields() {
  const now = {
    name: byId("edit-name").value.trim(),
    cron: byId("edit-cron").value.trim(),
    window_days: numberValue(byId("edit-window")),
    keep_last: numberValue(byId("edit-keep")),
  };
  const before = { ...editing, name: editing.name || "" };
  return Object.fromEntries(Object.entries(now).filter(([key, value]) => value !== before[key]));
}

async function save(event) {
  event.preventDefault();
  const body = changedFields();
  if (!Object.keys(body).length) {
    byId("schedule-dialog").close();
    return;
  }
  try {
    const results = await api("PATCH", path(editing), { json: body });
    byId("schedule-dialog").close();
    message(`${label(results.export_schedule)} saved.`);
    load();
  } catch (error) {
    say(byId("edit-error"), error.message);
  }
}

export function init() {
  byId("schedule-form").addEventListener("submit", create);
  byId("schedules-refresh").addEventListener("click", () => { message(""); load(); });
  byId("schedule-edit-form").addEventListener("submit", save);
  byId("edit-cancel").addEventListener("click", () => byId("schedule-dialog").close());
}

export function show() {
  list.show();
}

export function hide() {
  list.hide();
  if (byId("schedule-dialog").open) byId("schedule-dialog").close();
}

export function reset() {
  hide();
  list.reset();
  editing = null;
  say(byId("schedule-error"), "");
  byId("schedule-form").reset();
}
