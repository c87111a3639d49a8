// What the record lists (exports, imports, schedules) share: their cells (a short id
// with a copy button, dates and sizes that never wrap, "—" for a value not known yet,
// actions on one line) and their list behaviour (a page, the pager, polling).

import { api } from "./api.js";
import { Poller, byId, cell, formatBytes, formatNumber, h, replaceChildren, rowsOrEmpty, say } from "./dom.js";
import { PAGE_SIZE, renderPager } from "./pager.js";
import { stopWatching, watchEnds } from "./jobwait.js";

export const EMPTY = "—";

export function shortId(uniqueId) {
  return uniqueId.slice(0, 8);
}

async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  const area = h("textarea", { class: "visually-hidden", readonly: true });
  area.value = text;
  document.body.append(area);
  area.select();
  document.execCommand("copy");
  area.remove();
}

/** The first 8 characters of the id (the full id as its title) and a button that copies it. */
export function idCell(record, noun, messageEl) {
  const short = shortId(record.unique_id);
  const copy = async () => {
    try {
      await copyText(record.unique_id);
      say(messageEl, `Copied the id of ${noun} ${short}: ${record.unique_id}`);
    } catch {
      say(messageEl, `Could not copy: the id of ${noun} ${short} is ${record.unique_id}`);
    }
  };
  return cell("Id", h("span", { class: "id-cell" },
    h("code", { class: "short-id", title: record.unique_id }, short),
    h("button", {
      type: "button", class: "secondary copy", onclick: copy,
      "aria-label": `Copy the id of ${noun} ${short}`,
    }, "Copy")));
}

export function statusBadge(status) {
  return h("span", { class: `badge status-${status}` }, status);
}

export function progressBar(record, noun) {
  return h("progress", {
    max: 100, value: record.percentage, "aria-label": `${noun} ${shortId(record.unique_id)} progress`,
  });
}

/** A count, or "—" while it is not known (a scheduled or running job). */
export function countCell(label, value, known) {
  return cell(label, known ? h("span", { class: "nowrap num" }, formatNumber(value)) : EMPTY);
}

export function sizeCell(bytes, known) {
  return cell("Size", known ? h("span", { class: "nowrap num" }, formatBytes(bytes)) : EMPTY);
}

export function dayRange(start, end) {
  return h("span", { class: "nowrap" }, start === end ? start : `${start} – ${end}`);
}

/** A small secondary button whose accessible name starts with its text. */
export function actionButton(text, name, onclick) {
  return h("button", { type: "button", class: "secondary", "aria-label": `${text} ${name}`, onclick }, text);
}

export function actionsCell(...actions) {
  return cell("", h("div", { class: "row-actions" }, actions));
}

/**
 * One page of an API list in a table, with its pager and polling. Options: table,
 * pager, message (element ids), path, key (the results key), row(record), columns,
 * empty (text), nextPoll(records) -> ms or null, errorPoll (ms after an error, or
 * null), seen(records) (called with each page).
 */
export class RecordList {
  constructor(options) {
    this.options = options;
    this.page = 1;
    this.visible = false;
    this.poller = new Poller(() => this.refresh());
  }

  message(text) {
    say(byId(this.options.message), text);
  }

  async refresh() {
    const { table, pager, path, key, row, columns, empty, nextPoll, errorPoll, seen } = this.options;
    try {
      const results = await api("GET", path, { query: { page: this.page, limit: PAGE_SIZE } });
      const records = results[key];
      rowsOrEmpty(byId(table).querySelector("tbody"), records.map(row), columns, empty);
      renderPager(byId(pager), results.meta, (p) => { this.page = p; this.load(); });
      if (seen) seen(records);
      // Each running record's end is waited for (?wait=): it shows the moment it ends.
      if (this.visible && this.options.waitFor) {
        watchEnds(this.options.waitFor, records, () => this.load());
      }
      return this.visible && nextPoll ? nextPoll(records) : null;
    } catch (error) {
      this.message(error.message);
      return this.visible ? (errorPoll ?? null) : null;
    }
  }

  async load() {
    this.poller.stop();
    const next = await this.refresh();
    if (this.visible && typeof next === "number") this.poller.schedule(next);
  }

  first() {
    this.page = 1;
    this.load();
  }

  show() {
    this.visible = true;
    this.load();
  }

  hide() {
    this.visible = false;
    this.poller.stop();
    stopWatching();
  }

  reset() {
    this.hide();
    this.page = 1;
    replaceChildren(byId(this.options.table).querySelector("tbody"));
    this.message("");
  }
}
