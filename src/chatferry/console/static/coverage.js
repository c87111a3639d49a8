// The coverage page: rows per day and which days a finished export still on file covers,
// from GET /stats/daily; and a one-click backup of the days that are not covered.

import { api } from "./api.js";
import { drawChart, dayState } from "./chart.js";
import { addDays, byId, cell, formatNumber, h, replaceChildren, say } from "./dom.js";
import { planBackups } from "./plan.js";

const FOLLOW_POLL_MS = 1000;
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

function renderPlan(results, sums) {
  const plan = planBackups(results.days, results.limit, results.max_export_days);
  const box = byId("coverage-plan");
  box.hidden = sums.missing.length === 0;
  const parts = [];
  if (plan.windows.length) {
    const n = plan.windows.length;
    parts.push(`${n} export${n > 1 ? "s" : ""} would back up the days with rows that are not covered: `
      + `${plan.windows.map(rangeText).join(", ")}.`);
  }
  if (plan.tooBig.length) {
    parts.push(`${plan.tooBig.map((d) => `${d.date} (${formatNumber(d.rows)} rows)`).join(", ")} `
      + `${plan.tooBig.length > 1 ? "have" : "has"} more rows than one export may hold `
      + `(${formatNumber(results.limit)}): ask the operator to raise the limit.`);
  }
  byId("coverage-plan-text").textContent = parts.join(" ");
  const button = byId("coverage-backup");
  button.hidden = plan.windows.length === 0;
  button.textContent = `Back up ${plan.windows.length > 1 ? `these days in ${plan.windows.length} exports` : "these days"}`;
  return plan;
}

function render(results) {
  last = results;
  const sums = summarize(results);
  renderSummary(results, sums);
  drawChart(byId("coverage-chart"), results.days, results.limit, results.type, summaryText(results, sums));
  renderTable(results);
  renderPlan(results, sums);
}

async function load() {
  const mine = ++generation;
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

async function createExports(windows, type) {
  const created = [];
  const problems = [];
  for (const window of windows) {
    try {
      const record = await api("POST", "/exports", {
        json: { type, start_date: window.start, end_date: window.end },
      });
      created.push(record);
    } catch (error) {
      problems.push(`${rangeText(window)}: ${error.message}`);
    }
  }
  return { created, problems };
}

async function followExports(records, status, mine) {
  let pending = records.map((r) => r.unique_id);
  while (pending.length && mine === generation) {
    status.textContent = `${records.length - pending.length} of ${records.length} exports finished…`;
    await sleep(FOLLOW_POLL_MS);
    const states = await Promise.all(pending.map((id) =>
      api("GET", `/exports/${encodeURIComponent(id)}`).then((r) => r.backup_history.status)));
    pending = pending.filter((_, i) => states[i] === "started" || states[i] === "scheduled");
  }
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
    const { created, problems } = await createExports(plan.windows, results.type);
    await followExports(created, status, mine);
    if (mine !== generation) return;
    const done = `${created.length} export${created.length === 1 ? "" : "s"} finished.`;
    status.textContent = problems.length ? `${done} Not started: ${problems.join(" ")}` : done;
    await load();
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
