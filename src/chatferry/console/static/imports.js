// Imports: a file is checked first (validate_only=true), its problems shown as a table;
// then "Import for real" uploads it again and follows the import to the end.

import { api } from "./api.js";
import { byId, cell, formatBytes, formatNumber, h, momentCell, replaceChildren, say } from "./dom.js";
import { problemTable } from "./problems.js";
import {
  EMPTY, RecordList, actionButton, actionsCell, idCell, progressBar, shortId, statusBadge,
} from "./records.js";

const FOLLOW_WAIT_SECONDS = 2;
const LIST_POLL_MS = 2000;
const TYPES = ["users", "rooms", "comments"];
let chosen = null; // { file, type } of the last checked file
let following = 0; // increases to abandon a follow loop (sign-out, new upload)

function resultPanel(...children) {
  const panel = byId("import-result");
  replaceChildren(panel, ...children);
  panel.hidden = children.length === 0;
}

function progressPanel(title, record) {
  resultPanel(
    h("p", {}, title),
    h("progress", { max: 100, value: record ? record.percentage : 0, "aria-label": title }),
  );
}

async function upload(file, type, dryRun) {
  const form = new FormData();
  form.append("type", type);
  if (dryRun) form.append("validate_only", "true");
  form.append("file", file, file.name);
  const results = await api("POST", "/imports", { form });
  return results.backup_history;
}

/** Polls the import until it leaves "started"; null when the follow was abandoned. */
async function follow(record, title) {
  const mine = ++following;
  let current = record;
  while (current.status === "started") {
    progressPanel(`${title} ${current.percentage}%`, current);
    // Answers when the import ends, or after FOLLOW_WAIT_SECONDS with its progress.
    const query = { wait: FOLLOW_WAIT_SECONDS };
    const results = await api("GET", `/imports/${encodeURIComponent(current.unique_id)}`, { query });
    if (mine !== following) return null;
    current = results.backup_history;
  }
  return mine === following ? current : null;
}

function problemsOf(record) {
  const data = record.errors && Array.isArray(record.errors.Data) ? record.errors.Data : [];
  // The summary names the API's list ("listed in Data"); here that list is the table below.
  const message = record.errors && record.errors.Message
    ? record.errors.Message.replace(/\blisted in Data\b/g, "listed below").replace(/\bin Data\b/g, "below")
    : "";
  return { data, message };
}

/** How many rows the import checked: its total_rows, or (a failed import that did not
 * count them) the "of N rows" of its summary; null if the record does not say. */
export function checkedRows(record) {
  if (record.total_rows > 0) return record.total_rows;
  const match = /\bof ([\d,]+) rows?\b/.exec((record.errors && record.errors.Message) || "");
  return match ? Number(match[1].replace(/,/g, "")) : null;
}

function problemCount(n) {
  return `${formatNumber(n)} problem${n === 1 ? "" : "s"}`;
}

function showFailure(record, heading) {
  const { data, message } = problemsOf(record);
  const checked = checkedRows(record);
  resultPanel(
    h("h2", {}, heading),
    h("p", { class: "error", role: "alert" }, message || "The import failed."),
    checked === null ? null : h("p", { class: "checked" },
      `${formatNumber(checked)} ${record.resource_name} rows checked${record.dry_run ? " (a dry run)" : ""}; nothing was written.`),
    data.length ? problemTable(data, `Problems in ${record.original_filename}`) : null,
  );
}

function showDryRunPassed(record) {
  const button = h("button", { type: "button", id: "import-real" }, "Import for real");
  button.addEventListener("click", importForReal);
  resultPanel(
    h("h2", {}, "The file is ready to import"),
    h("p", { class: "success" },
      `No problems in ${formatNumber(record.total_rows)} ${record.resource_name} rows of `,
      h("strong", {}, record.original_filename),
      ". Nothing has been written yet."),
    h("div", { class: "actions" }, button),
  );
  button.focus();
}

function showImported(record) {
  resultPanel(
    h("h2", {}, "Imported"),
    h("p", { class: "success" },
      `${formatNumber(record.total_rows)} ${record.resource_name} rows from `,
      h("strong", {}, record.original_filename), " are now in the app."),
  );
}

/** Screen readers hear each step once, not every progress update. */
function announce(text) {
  byId("import-status").textContent = text;
}

async function run(dryRun) {
  const { file, type } = chosen;
  const title = dryRun ? `Checking ${file.name}…` : `Importing ${file.name}…`;
  progressPanel(title, null);
  announce(title);
  const record = await follow(await upload(file, type, dryRun), title);
  if (!record) return;
  if (record.status !== "finished") {
    showFailure(record, dryRun ? "The file has problems" : "The import failed");
  } else if (dryRun) {
    showDryRunPassed(record);
  } else {
    showImported(record);
  }
  announce(byId("import-result").querySelector("h2").textContent);
  load();
}

async function guarded(dryRun) {
  say(byId("import-error"), "");
  byId("import-check").disabled = true;
  try {
    await run(dryRun);
  } catch (error) {
    resultPanel();
    say(byId("import-error"), error.message);
  } finally {
    byId("import-check").disabled = false;
  }
}

function check(event) {
  event.preventDefault();
  const file = byId("import-file").files[0];
  if (!file) {
    say(byId("import-error"), "Choose a JSON file to import first.");
    byId("import-file").focus();
    return;
  }
  chosen = { file, type: byId("import-type").value };
  guarded(true);
}

function importForReal() {
  if (chosen) guarded(false);
}

/** Picks the type from an export's file name ("..._exported_rooms.json"). */
function guessType(name) {
  const match = TYPES.find((type) => name.toLowerCase().includes(type));
  if (match) byId("import-type").value = match;
}

function fileChosen() {
  const file = byId("import-file").files[0];
  resultPanel();
  if (file) guessType(file.name);
}

function wireDropZone() {
  const zone = byId("import-drop");
  const input = byId("import-file");
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    if (event.dataTransfer && event.dataTransfer.files.length) {
      input.files = event.dataTransfer.files;
      fileChosen();
    }
  });
  input.addEventListener("change", fileChosen);
}

function showProblems(record) {
  showFailure(record, `Problems in ${record.original_filename}`);
  byId("import-result").scrollIntoView({ block: "nearest" });
}

function rowsCell(record) {
  if (record.status === "finished") return cell("Rows", h("span", { class: "nowrap num" }, formatNumber(record.total_rows)));
  const checked = record.status === "failed" ? checkedRows(record) : null;
  if (checked === null) return cell("Rows", EMPTY);
  return cell("Rows", h("span", { class: "nowrap num" }, `${formatNumber(checked)} checked`));
}

function importRow(record) {
  const { data } = problemsOf(record);
  const status = [statusBadge(record.status)];
  if (record.dry_run) status.push(h("span", { class: "badge dry-run" }, "dry run"));
  if (record.status === "started") status.push(progressBar(record, "Import"));
  const text = data.length ? `Show ${problemCount(data.length)}` : "Show why";
  const actions = record.status === "failed"
    ? [actionButton(text, `of ${record.original_filename} (${shortId(record.unique_id)})`, () => showProblems(record))]
    : [];
  return h(
    "tr",
    { dataset: { id: record.unique_id, status: record.status } },
    idCell(record, "import", byId("imports-message")),
    cell("Created", momentCell(record.created_at)),
    cell("Type", record.resource_name),
    cell("File", h("span", { class: "file-name" }, record.original_filename)),
    cell("Status", ...status),
    rowsCell(record),
    cell("Size", h("span", { class: "nowrap num" }, formatBytes(record.size))),
    actionsCell(actions),
  );
}

const list = new RecordList({
  table: "imports-table",
  pager: "imports-pager",
  message: "imports-message",
  path: "/imports",
  waitFor: "imports",
  key: "backup_histories",
  row: importRow,
  columns: 8,
  empty: "No imports yet.",
  nextPoll: (records) => (records.some((r) => r.status === "started") ? LIST_POLL_MS : null),
});

function load() {
  list.load();
}

export function init() {
  byId("import-form").addEventListener("submit", check);
  byId("imports-refresh").addEventListener("click", load);
  wireDropZone();
}

export function show() {
  list.show();
}

export function hide() {
  list.hide();
}

export function reset() {
  list.reset();
  following += 1;
  chosen = null;
  resultPanel();
  say(byId("import-error"), "");
  byId("import-form").reset();
}
