// The coverage page: rows per day and which days a finished export still on file covers,
// from GET /stats/daily; and a one-click backup of the days that are not covered.

import { api } from "./api.js";
import { drawChart, dayState } from "./chart.js";
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

function summarize(results) {
  const days = results.days;
  const backed = days.filter((d) => d.backed_up).length;
  const missing = days.filter((d) => dayState(d) === "missing");
  const missingRows = missing.reduce((sum, d) => sum + d.rows, 0);
  const empty = days.filter((d) => dayState(d) === "empty").length;
  return { backed, missing, missingRows, empty, total: days.length };
}

function summaryText(results, sums) {
  return `${results.start_date} to ${results.end_date} (${results.timezone}): `
    + `${sums.backed} of ${sums.total} days backed up; `
    + `${sums.missing.length} days with ${formatNumber(sums.missingRows)} ${results.type} not backed up; `
    + `${sums.empty} days without rows.`;
}

function renderSummary(results, sums) {
  replaceChildren(
    byId("coverage-summary"),
    h("p", {}, `${results.start_date} to ${results.end_date}, days in ${results.timezone}.`),
    h("ul", { class: "stats" },
      h("li", { class: "stat stat-backed" }, h("strong", {}, String(sums.backed)), ` of ${sums.total} days backed up`),
      h("li", { class: "stat stat-missing" }, h("strong", {}, String(sums.missing.length)),
        sums.missing.length
          ? ` days with ${formatNumber(sums.missingRows)} ${results.type} not backed up`
          : ` days with ${results.type} not backed up`),
      h("li", { class: "stat stat-empty" }, h("strong", {}, String(sums.empty)), " days without rows")),
  );
}

function renderTable(results) {
  const state = { backed: "yes", missing: "no", empty: "no (no rows)" };
  replaceChildren(
    byId("coverage-table").querySelector("tbody"),
    results.days.map((d) => h("tr", { dataset: { date: d.date } },
      cell("Day", d.date),
      cell("Rows", formatNumber(d.rows)),
      cell("Backed up", state[dayState(d)]))),
  );
}

function rangeText(window) {
  return window.start === window.end ? window.start : `${window.start} – ${window.end}`;
}

const LISTED_WINDOWS = 6;

function planText(plan, results) {
  const parts = [];
  const n = plan.windows.length;
  if (n) {
    const days = plan.windows.map(rangeText);
    const listed = n > LISTED_WINDOWS ? `${days.slice(0, LISTED_WINDOWS).join(", ")} and ${n - LISTED_WINDOWS} more` : days.join(", ");
    parts.push(`${n} export${n > 1 ? "s" : ""} would back up the days with rows that are not covered `
      + `(at most ${formatNumber(results.limit)} rows and ${results.max_export_days + 1} days each): ${listed}.`);
  }
  if (plan.tooBig.length) {
    parts.push(`${plan.tooBig.map((d) => `${d.date} (${formatNumber(d.rows)} rows)`).join(", ")} `
      + `${plan.tooBig.length > 1 ? "have" : "has"} more rows than one export may hold `
      + `(${formatNumber(results.limit)}): ask the operator to raise the limit.`);
  }
  return parts.join(" ");
}

function renderPlan(results, sums) {
  const plan = planBackups(results.days, results.limit, results.max_export_days);
  byId("coverage-plan").hidden = sums.missing.length === 0;
  byId("coverage-plan-text").textContent = planText(plan, results);
  const button = byId("coverage-backup");
  const n = plan.windows.length;
  button.hidden = n === 0;
  button.textContent = n > 1 ? `Back up these days in ${n} exports` : "Back up these days";
}

function render(results) {
  last = results;
  const sums = summarize(results);
  renderSummary(results, sums);
  drawChart(byId("coverage-chart"), results.days, results.limit, results.type, summaryText(results, sums));
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
    if (!params.end_date) appToday = results.end_date;
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
  const plan = planBackups(results.days, results.limit, results.max_export_days);
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
      drawChart(byId("coverage-chart"), last.days, last.limit, last.type, summaryText(last, sums));
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
