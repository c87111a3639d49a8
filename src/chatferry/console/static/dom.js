// Small DOM helpers: elements are built with createElement and textContent only, so
// nothing the API returns is ever parsed as HTML, and no inline style is ever set.

import { appTimezone, formatMoment } from "./time.js";

const SVG_NS = "http://www.w3.org/2000/svg";

function setAttributes(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
}

function appendAll(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** An HTML element: h("td", {class: "x"}, "text", otherNode). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttributes(el, attrs);
  appendAll(el, children);
  return el;
}

/** An SVG element, same call shape as h(). */
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttributes(el, attrs);
  appendAll(el, children);
  return el;
}

export function byId(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`the page has no element #${id}`);
  return el;
}

export function replaceChildren(el, ...children) {
  el.replaceChildren();
  appendAll(el, children);
}

/** Shows a message in a role=alert/status element, or hides it when empty. */
export function say(el, message) {
  el.textContent = message || "";
  el.hidden = !message;
}

const numberFormat = new Intl.NumberFormat("en");

export function formatNumber(value) {
  return numberFormat.format(value);
}

export function formatBytes(bytes) {
  if (!bytes) return "0 B";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/** A <time> element showing the API's time in the app's zone, the zone's name as its title. */
export function momentCell(value) {
  if (!value) return "—";
  return h("time", { datetime: value, title: `${value}, ${appTimezone()}`, class: "nowrap" }, formatMoment(value));
}

/** An ISO day (YYYY-MM-DD) moved by n days, computed in UTC so DST never shifts it. */
export function addDays(isoDay, n) {
  const [y, m, d] = isoDay.split("-").map(Number);
  const moved = new Date(Date.UTC(y, m - 1, d + n));
  return moved.toISOString().slice(0, 10);
}

/**
 * Calls `task` again `delay(result)` ms after each run while the delay is a number;
 * stop() ends it. A run never overlaps the previous one.
 */
export class Poller {
  constructor(task) {
    this.task = task;
    this.timer = null;
    this.running = false;
  }

  schedule(ms) {
    this.stop();
    this.running = true;
    this.timer = setTimeout(() => this.run(), ms);
  }

  async run() {
    this.timer = null;
    const next = await this.task();
    if (this.running && typeof next === "number") this.schedule(next);
  }

  stop() {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}

/** A cell with a label for the narrow (card) layout of tables. */
export function cell(label, ...children) {
  return h("td", { "data-label": label }, h("div", { class: "cell" }, ...children));
}

/** The rows of a list, or one row saying the list is empty. */
export function rowsOrEmpty(tbody, rows, columns, emptyText) {
  if (rows.length) {
    replaceChildren(tbody, rows);
  } else {
    replaceChildren(tbody, h("tr", { class: "empty" }, h("td", { colspan: columns }, emptyText)));
  }
}
