// The problem table of a failed import: errors.Data as rows a person can read.

import { cell, h } from "./dom.js";

/** The API's `row` is already the row number (the file's first object is row 1); null
 * for a problem of the whole file. */
export function rowNumber(problem) {
  return Number.isInteger(problem.row) ? String(problem.row) : "—";
}

export function problemTable(data, caption) {
  return h(
    "div",
    { class: "table-wrap" },
    h("p", { class: "help" }, "Rows are numbered from 1, the first object in the file being row 1."),
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
            cell("Row", rowNumber(problem)),
            cell("Key", problem.key || "—"),
            cell("Field", problem.field || "—"),
            cell("Message", problem.message),
          ),
        ),
      ),
    ),
  );
}
