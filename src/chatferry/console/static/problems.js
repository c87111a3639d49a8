// The problem table of a failed import: errors.Data as rows a person can read.

import { h } from "./dom.js";

/** Row numbers start at 1 here; the API's `row` is a 0-based index into the file. */
export function rowNumber(problem) {
  return Number.isInteger(problem.row) ? String(problem.row + 1) : "—";
}

export function problemTable(data, caption) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "records problems" },
      h("caption", {}, caption),
      h(
        "thead",
        {},
        h("tr", {}, ["Row", "Key", "Field", "Message"].map((name) => h("th", { scope: "col" }, name))),
      ),
      h(
        "tbody",
        {},
        data.map((problem) =>
          h(
            "tr",
            {},
            h("td", { "data-label": "Row" }, rowNumber(problem)),
            h("td", { "data-label": "Key" }, problem.key || "—"),
            h("td", { "data-label": "Field" }, problem.field || "—"),
            h("td", { "data-label": "Message" }, problem.message),
          ),
        ),
      ),
    ),
  );
}
