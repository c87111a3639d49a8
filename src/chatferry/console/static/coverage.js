// The coverage page: rows per day and which days a finished export still on file covers,
// from GET /stats/daily; and a one-click backup of the days that are not covered.

import { api } from "./api.js";
import { STATE_TEXT, dayState, drawChart } from "./chart.js";
import { addDays, byId, cell, formatNumber, h, replaceChildren, say } from "./dom.js";
import { planBackups } from "./plan.js";

const FOLLOW_POLL_MS = 1000;
const FOLLOW_BATCH = 8;
let last = null; // the latest stats results
let appToday = null; // today in the app's timezone, as the API said
let visible = false;
let generation = 0; // abandons stale requests and follow loops
let resizeFrame = 0;

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function query() {
  const type = byId("coverage-type").value;
  const count = Number(byId("coverage-days").value);
  const end = byId("coverage-end").value || appToday;
  if (!end) return { type }; // the API's defaults: the 90 days up to today
  return { type, start_date: addDays(end, -(count - 1)), end_date: end };
}

function plural(n, one, many = `${one}s`) {
  return n === 1 ? one : many;
}

/** The whole days (before today) with rows: how many are backed up, changed or missing. */
function summarize(results) {
  const closed = results.days.filter((d) => d.date < results.today);
  const withRows = closed.filter((d) => d.rows > 0);
  const state = (name) => closed.filter((d) => dayState(d, results.today) === name);
  const missing = state("missing");
  return {
    withRows: withRows.length,
    backed: withRows.filter((d) => d.backed_up).length,
    changed: state("changed"),
    missing,
    missingRows: missing.reduce((sum, d) => sum + d.rows, 0),
    empty: state("empty").length,
    today: results.days.find((d) => d.date === results.today) || null,
  };
}

function summaryText(results, sums) {
  return `${results.start_date} to ${results.end_date} (${results.timezone}): `
    + `${sums.backed} of ${sums.withRows} days with rows backed up; `
    + `${sums.changed.length} changed since their export; `
    + `${sums.missing.length} days with ${formatNumber(sums.missingRows)} ${results.type} not backed up; `
    + `${sums.empty} days without rows.`;
}

function stat(name, count, text) {
  return h("li", { class: `stat stat-${name}` }, h("strong", {}, formatNumber(count)), ` ${text}`);
}

function renderSummary(results, sums) {
  const todayNote = sums.today
    ? ` Today, ${sums.today.date}, is not over (${formatNumber(sums.today.rows)} ${results.type} so far): it is offered for export once it ends.`
    : "";
  replaceChildren(
    byId("coverage-summary"),
    h("p", {}, `${results.start_date} to ${results.end_date}, days in ${results.timezone}.${todayNote}`),
    h("ul", { class: "stats" },
      stat("backed", sums.backed, `of ${formatNumber(sums.withRows)} ${plural(sums.withRows, "day")} with rows backed up`),
      stat("changed", sums.changed.length, `${plural(sums.changed.length, "day")} changed since ${plural(sums.changed.length, "its", "their")} export`),
      stat("missing", sums.missing.length, sums.missing.length
        ? `${plural(sums.missing.length, "day")} with ${formatNumber(sums.missingRows)} ${results.type} not backed up`
        : `days with ${results.type} not backed up`),
      stat("empty", sums.empty, `${plural(sums.empty, "day")} without rows`)),
  );
}

const TABLE_TEXT = { ...STATE_TEXT, backed: "yes", missing: "no", empty: "no rows", changed: "no: changed since its export" };

function renderTable(results) {
  replaceChildren(
    byId("coverage-table").querySelector("tbody"),
    results.days.map((d) => h("tr", { dataset: { date: d.date } },
      cell("Day", d.date),
      cell("Rows", formatNumber(d.rows)),
      cell("Backed up", TABLE_TEXT[dayState(d, results.today)]))),
  );
}

function rangeText(window) {
  return window.start === window.end ? window.start : `${window.start} – ${window.end}`;
}

const LISTED_WINDOWS = 6;

/** A list of days that never breaks inside a date: "a, b and 3 more". */
function dayList(texts, more) {
  const nodes = [];
  texts.forEach((text, i) => {
    if (i) nodes.push(", ");
    nodes.push(h("span", { class: "nowrap" }, text));
  });
  if (more) nodes.push(` and ${more} more`);
  return nodes;
}

function planText(plan, results, sums) {
  const parts = [];
  const n = plan.windows.length;
  if (n) {
    const days = plan.windows.map(rangeText);
    const changed = sums.changed.length
      ? ` and the ${sums.changed.length} ${plural(sums.changed.length, "day")} changed since ${plural(sums.changed.length, "its", "their")} export`
      : "";
    parts.push(`${n} export${n > 1 ? "s" : ""} would back up the days with rows that are not backed up${changed} `
      + `(at most ${formatNumber(results.limit)} rows and ${results.max_export_days + 1} days each): `,
    dayList(days.slice(0, LISTED_WINDOWS), Math.max(0, n - LISTED_WINDOWS)), ". ");
  }
  if (plan.tooBig.length) {
    parts.push(dayList(plan.tooBig.map((d) => `${d.date} (${formatNumber(d.rows)} rows)`), 0),
      ` ${plan.tooBig.length > 1 ? "have" : "has"} more rows than one export may hold `
      + `(${formatNumber(results.limit)}): ask the operator to raise the limit.`);
  }
  return parts;
}

function planFor(results) {
  return planBackups(results.days, results.limit, results.max_export_days, results.today);
}

function renderPlan(results, sums) {
  const plan = planFor(results);
  byId("coverage-plan").hidden = sums.missing.length + sums.changed.length === 0;
  replaceChildren(byId("coverage-plan-text"), planText(plan, results, sums));
  const button = byId("coverage-backup");
  const n = plan.windows.length;
  button.hidden = n === 0;
  button.textContent = n > 1 ? `Back up these days in ${n} exports` : "Back up these days";
}

function render(results) {
  last = results;
  const sums = summarize(results);
  renderSummary(results, sums);
  drawChart(byId("coverage-chart"), results.days, results.limit, results.type, summaryText(results, sums), results.today);
  renderTable(results);
  renderPlan(results, sums);
}

/** Fetches and draws the stats; a fresh load (not a redraw) abandons older requests. */
async function load(fresh = true) {
  const mine = fresh ? ++generation : generation;
  say(byId("coverage-error"), "");
  const params = query();
  try {
    const results = await api("GET", "/stats/daily", { query: params });
    if (mine !== generation) return;
    appToday = results.today;
    render(results);
  } catch (error) {
    if (mine === generation) say(byId("coverage-error"), error.message);
  }
}

async function createExports(windows, type, status) {
  const created = [];
  const problems = [];
  for (const [i, window] of windows.entries()) {
    status.textContent = `Creating export ${i + 1} of ${windows.length}…`;
    try {
      const record = await api("POST", "/exports", {
        json: { type, start_date: window.start, end_date: window.end },
      });
      created.push(record.unique_id);
    } catch (error) {
      problems.push(`${rangeText(window)}: ${error.message}`);
    }
  }
  return { created, problems };
}

/** Follows the exports (oldest first, a few per poll) and redraws the chart as they end. */
async function followExports(ids, status, mine) {
  let pending = ids;
  let failed = 0;
  while (pending.length && mine === generation) {
    status.textContent = `${ids.length - pending.length} of ${ids.length} exports done…`;
    await sleep(FOLLOW_POLL_MS);
    const batch = pending.slice(0, FOLLOW_BATCH);
    const states = await Promise.all(batch.map((id) =>
      api("GET", `/exports/${encodeURIComponent(id)}`).then((r) => r.backup_history.status)));
    const done = batch.filter((_, i) => !["started", "scheduled"].includes(states[i]));
    failed += states.filter((state) => state === "failed" || state === "cancelled").length;
    pending = pending.filter((id) => !done.includes(id));
    if (done.length && mine === generation) await load(false);
  }
  return failed;
}

async function backUp() {
  if (!last) return;
  const results = last;
  const plan = planFor(results);
  const status = byId("coverage-plan-status");
  const button = byId("coverage-backup");
  button.disabled = true;
  const mine = generation;
  try {
    const { created, problems } = await createExports(plan.windows, results.type, status);
    const failed = await followExports(created, status, mine);
    if (mine !== generation) return;
    const n = created.length - failed;
    const parts = [`${n} export${n === 1 ? "" : "s"} finished.`];
    if (failed) parts.push(`${failed} did not finish: see Exports for why.`);
    if (problems.length) parts.push(`Not started: ${problems.join(" ")}`);
    status.textContent = parts.join(" ");
    await load(false);
  } catch (error) {
    status.textContent = error.message;
  } finally {
    button.disabled = false;
  }
}

function redraw() {
  cancelAnimationFrame(resizeFrame);
  resizeFrame = requestAnimationFrame(() => {
    if (visible && last) {
      const sums = summarize(last);
      drawChart(byId("coverage-chart"), last.days, last.limit, last.type, summaryText(last, sums), last.today);
    }
  });
}

export function init() {
  byId("coverage-form").addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  for (const id of ["coverage-type", "coverage-days", "coverage-end"]) {
    byId(id).addEventListener("change", load);
  }
  byId("coverage-backup").addEventListener("click", backUp);
  new ResizeObserver(redraw).observe(byId("coverage-chart"));
}

export function show() {
  visible = true;
  load();
}

export function hide() {
  visible = false;
}

export function reset() {
  hide();
  generation += 1;
  last = null;
  appToday = null;
  byId("coverage-chart").replaceChildren();
  replaceChildren(byId("coverage-summary"));
  replaceChildren(byId("coverage-table").querySelector("tbody"));
  byId("coverage-plan").hidden = true;
  byId("coverage-plan-status").textContent = "";
  say(byId("coverage-error"), "");
  byId("coverage-form").reset();
}
