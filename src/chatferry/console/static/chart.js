// The coverage chart: rows per day as bars, the export row limit as a line, and under
// each day a mark saying whether a finished export covers it. Plain SVG; every color
// and font comes from app.css classes (no inline styles, so the CSP holds).

import { formatNumber, s } from "./dom.js";

const HEIGHT = 260;
const MARGIN = { top: 22, right: 12, bottom: 44, left: 52 };
const MARK_HEIGHT = 10;
const MIN_LABEL_GAP = 64;
const dayLabel = new Intl.DateTimeFormat("en", { month: "short", day: "numeric", timeZone: "UTC" });

/** 1, 2, 2.5, 5 times a power of ten: the smallest such number >= value. */
function niceCeil(value) {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  const steps = power >= 10 ? [1, 2, 2.5, 5, 10] : [1, 2, 4, 5, 10]; // whole rows only
  return steps.find((f) => f * power >= value) * power;
}

/** The top of the y axis, and whether the limit line fits under it. */
function scaleFor(days, limit) {
  const most = Math.max(0, ...days.map((d) => d.rows));
  if (most === 0 || limit <= most * 2.5) {
    return { top: niceCeil(Math.max(most, limit) * 1.08), limitOnScale: true };
  }
  return { top: niceCeil(most * 1.1), limitOnScale: false };
}

/**
 * A day's state: "backed" (a kept export holds all its rows as they are now), "changed"
 * (a kept export covers it, but its rows changed since), "open" (today or later: not over,
 * never offered for export), "missing" (rows no export covers) or "empty" (no rows).
 */
export function dayState(day, today) {
  if (day.backed_up) return "backed";
  if (day.changed) return "changed";
  if (today && day.date >= today) return "open";
  return day.rows > 0 ? "missing" : "empty";
}

export const STATE_TEXT = {
  backed: "backed up",
  changed: "changed since its export",
  open: "not over yet",
  missing: "not backed up",
  empty: "no rows",
};

function stateText(day, type, today) {
  return `${day.date}: ${formatNumber(day.rows)} ${type}, ${STATE_TEXT[dayState(day, today)]}`;
}

function yAxis(geometry, scale) {
  const { plotTop, plotBottom, left, right } = geometry;
  const ticks = Number.isInteger(scale.top / 2) ? [0, scale.top / 2, scale.top] : [0, scale.top];
  return ticks.map((value) => {
    const y = plotBottom - (value / scale.top) * (plotBottom - plotTop);
    return s("g", { class: "tick" },
      s("line", { class: "grid", x1: left, x2: right, y1: y, y2: y }),
      s("text", { class: "axis-label", x: left - 6, y: y + 4, "text-anchor": "end" }, formatNumber(value)));
  });
}

function xLabels(geometry, days) {
  const every = Math.max(1, Math.ceil(MIN_LABEL_GAP / geometry.slot));
  const labels = [];
  for (let i = 0; i < days.length; i += every) {
    const x = geometry.left + (i + 0.5) * geometry.slot;
    const text = dayLabel.format(new Date(`${days[i].date}T00:00:00Z`));
    const atEdge = x > geometry.right - MIN_LABEL_GAP / 2; // keep the last label inside
    labels.push(s("text", {
      class: "axis-label",
      x: atEdge ? geometry.right : x,
      y: geometry.height - 8,
      "text-anchor": atEdge ? "end" : "middle",
    }, text));
  }
  return labels;
}

function dayGroup(geometry, scale, day, index, type, today) {
  const { left, slot, plotTop, plotBottom } = geometry;
  const x = left + index * slot;
  const barWidth = slot >= 4 ? slot * 0.78 : Math.max(slot - 0.5, 0.6);
  const barX = x + (slot - barWidth) / 2;
  const barHeight = Math.min(1, day.rows / scale.top) * (plotBottom - plotTop);
  const state = dayState(day, today);
  return s("g", {
    class: `day day-${state}`,
    dataset: {
      date: day.date, rows: String(day.rows), backedUp: String(day.backed_up), changed: String(Boolean(day.changed)),
    },
  },
  s("title", {}, stateText(day, type, today)),
  s("rect", { class: "hit", x, y: plotTop, width: slot, height: plotBottom - plotTop + MARK_HEIGHT + 6 }),
  day.rows > 0
    ? s("rect", { class: `bar bar-${state}`, x: barX, y: plotBottom - barHeight, width: barWidth, height: Math.max(barHeight, 1) })
    : null,
  s("rect", { class: `mark mark-${state}`, x: barX, y: plotBottom + 5, width: barWidth, height: MARK_HEIGHT }));
}

/** The export row limit: a dashed line where it is on the scale; far above it, only a
 * label over the plot (a line there would sit just above the bars, as if it were near). */
function limitLine(geometry, scale, limit) {
  const { left, right, plotTop, plotBottom } = geometry;
  const data = { limit: String(limit), onScale: String(scale.limitOnScale) };
  if (!scale.limitOnScale) {
    return s("g", { class: "limit limit-off-scale", dataset: data },
      s("text", { class: "limit-label", x: right - 4, y: plotTop - 8, "text-anchor": "end" },
        `↑ export row limit ${formatNumber(limit)}, far above this scale`));
  }
  const y = plotBottom - (limit / scale.top) * (plotBottom - plotTop);
  return s("g", { class: "limit", dataset: data },
    s("line", { class: "limit-line", x1: left, x2: right, y1: y, y2: y }),
    s("text", { class: "limit-label", x: right - 4, y: y - 5, "text-anchor": "end" },
      `export row limit ${formatNumber(limit)}`));
}

/** Draws the chart for `days` ([{date, rows, backed_up, changed}]) into `container`. */
export function drawChart(container, days, limit, type, summary, today) {
  const width = Math.max(280, Math.floor(container.clientWidth || 600));
  const geometry = {
    width,
    height: HEIGHT,
    left: MARGIN.left,
    right: width - MARGIN.right,
    plotTop: MARGIN.top,
    plotBottom: HEIGHT - MARGIN.bottom,
    slot: (width - MARGIN.left - MARGIN.right) / Math.max(days.length, 1),
  };
  const scale = scaleFor(days, limit);
  const chart = s("svg", {
    class: "coverage-svg",
    viewBox: `0 0 ${width} ${HEIGHT}`,
    width,
    height: HEIGHT,
    role: "img",
    "aria-labelledby": "chart-title chart-desc",
  },
  s("title", { id: "chart-title" }, `${type} created per day, and days backed up`),
  s("desc", { id: "chart-desc" }, summary),
  yAxis(geometry, scale),
  days.map((day, i) => dayGroup(geometry, scale, day, i, type, today)),
  limitLine(geometry, scale, limit),
  xLabels(geometry, days));
  container.replaceChildren(chart);
}
