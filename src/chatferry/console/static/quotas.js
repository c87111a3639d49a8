// The app's quotas and what it uses of them (GET /quotas): a small "Usage" panel next
// to the signed-in app's id, read again each time it is opened.

import { api } from "./api.js";
import { byId, formatBytes, formatNumber, h, replaceChildren } from "./dom.js";

const LABELS = {
  exports_per_hour: "Exports created in the last hour",
  imports_per_hour: "Imports created in the last hour",
  active_jobs: "Exports and imports queued or running",
  stored_bytes: "Export files stored",
};

function amount(quota, value) {
  return quota.unit === "bytes" ? formatBytes(value) : formatNumber(value);
}

function quotaRow(quota) {
  const limited = quota.limit > 0;
  const text = limited
    ? `${amount(quota, quota.used)} of ${amount(quota, quota.limit)}`
    : `${amount(quota, quota.used)} (no limit)`;
  const label = LABELS[quota.name] || quota.description;
  return h("li", { class: "quota" },
    h("span", { class: "quota-label" }, label),
    limited
      ? h("meter", { min: 0, max: quota.limit, value: Math.min(quota.used, quota.limit),
        high: quota.limit * 0.8, optimum: 0, "aria-label": `${label}: ${text}` })
      : null,
    h("span", { class: "quota-value", title: `Set by ${quota.setting} or the operator` }, text));
}

async function refresh() {
  const list = byId("quota-list");
  try {
    const results = await api("GET", "/quotas");
    replaceChildren(list, results.quotas.map(quotaRow));
  } catch (error) {
    replaceChildren(list, h("li", { class: "error", role: "alert" }, error.message));
  }
}

/** Adds the panel to the signed-in header (once); it reads the usage when opened. */
export function init() {
  const panel = h("details", { id: "quota-usage", class: "quota-usage" },
    h("summary", {}, "Usage"),
    h("div", { class: "quota-panel" },
      h("p", { class: "quota-title" }, "This app's quotas"),
      h("ul", { id: "quota-list", class: "quota-list", "aria-live": "polite" })));
  panel.addEventListener("toggle", () => {
    if (panel.open) refresh();
  });
  byId("session").insertBefore(panel, byId("sign-out"));
}

/** Closes the panel (on sign-out: the next app must not see this one's figures). */
export function reset() {
  const panel = byId("quota-usage");
  panel.open = false;
  replaceChildren(byId("quota-list"));
}
