// Previous/next paging over the API's `meta` (page, limit, total).

import { h, replaceChildren } from "./dom.js";

export const PAGE_SIZE = 20;

/** Renders the pager into `nav`; `go(page)` loads another page. */
export function renderPager(nav, meta, go) {
  const page = meta ? meta.page : 1;
  const pages = meta ? Math.max(1, Math.ceil(meta.total / meta.limit)) : 1;
  if (pages <= 1) {
    replaceChildren(nav);
    return;
  }
  replaceChildren(
    nav,
    h("button", { type: "button", class: "secondary", disabled: page <= 1, onclick: () => go(page - 1) }, "Newer"),
    h("span", { "aria-live": "polite" }, ` Page ${page} of ${pages} `),
    h("button", { type: "button", class: "secondary", disabled: page >= pages, onclick: () => go(page + 1) }, "Older"),
  );
}
