// Webhooks: add an endpoint (its secret shown once), send a test ping, see its recent
// deliveries and retry one, delete. The page builds itself inside #webhooks-root.

import { api } from "./api.js";
import { byId, cell, h, momentCell, replaceChildren, rowsOrEmpty, say } from "./dom.js";

const EVENTS = [
  "export.finished", "export.failed", "export.cancelled",
  "import.finished", "import.failed", "ping",
];
const DELIVERY_POLL_MS = 2000;
let opened = null; // the webhook whose deliveries are shown
let timer = null;
let visible = false;

function message(text) {
  say(byId("webhooks-message"), text);
}

function path(id, suffix = "") {
  return `/webhooks/${encodeURIComponent(id)}${suffix}`;
}

function form() {
  const boxes = EVENTS.map((name) => h("label", { class: "check" },
    h("input", { type: "checkbox", name: "event", value: name, checked: name.startsWith("export.") }),
    ` ${name}`));
  return h("form", { id: "webhook-form", class: "card", novalidate: true, onsubmit: add },
    h("h2", {}, "New webhook"),
    h("div", { class: "fields" },
      h("div", { class: "field" },
        h("label", { for: "webhook-url" }, "URL"),
        h("input", { id: "webhook-url", type: "url", placeholder: "https://your-receiver/hooks", autocomplete: "off" })),
      h("div", { class: "field" },
        h("label", { for: "webhook-description" }, "Description (optional)"),
        h("input", { id: "webhook-description", autocomplete: "off" }))),
    h("fieldset", { class: "events" }, h("legend", {}, "Events"), ...boxes),
    h("p", { id: "webhook-error", class: "error", role: "alert", hidden: true }),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Add webhook")));
}

async function add(event) {
  event.preventDefault();
  const events = [...document.querySelectorAll("#webhook-form input[name=event]:checked")].map((b) => b.value);
  const body = { url: byId("webhook-url").value.trim(), events, description: byId("webhook-description").value };
  say(byId("webhook-error"), "");
  try {
    const { webhook } = await api("POST", "/webhooks", { json: body });
    byId("webhook-form").reset();
    showSecret(webhook);
    load();
  } catch (error) {
    say(byId("webhook-error"), error.message);
  }
}

function showSecret(webhook) {
  const box = byId("webhook-secret");
  replaceChildren(box,
    h("p", {}, "Keep this signing secret: it is shown only now. Receivers verify each delivery with it."),
    h("code", { id: "webhook-secret-value" }, webhook.secret));
  box.hidden = false;
}

function webhookRow(webhook) {
  const actions = h("div", { class: "row-actions" },
    h("button", { type: "button", class: "secondary", onclick: () => ping(webhook) }, "Test"),
    h("button", { type: "button", class: "secondary", onclick: () => openDeliveries(webhook.id) }, "Deliveries"),
    h("button", { type: "button", class: "secondary", onclick: () => remove(webhook) }, "Delete"));
  return h("tr", { dataset: { id: webhook.id } },
    cell("URL", webhook.url), cell("Events", webhook.events.join(", ")),
    cell("Description", webhook.description), cell("Created", momentCell(webhook.created_at)),
    cell("", actions));
}

async function ping(webhook) {
  try {
    await api("POST", path(webhook.id, "/test"));
    message(`A ping is on its way to ${webhook.url}.`);
    openDeliveries(webhook.id);
  } catch (error) {
    message(error.message);
  }
}

async function remove(webhook) {
  if (!window.confirm(`Delete the webhook to ${webhook.url}? Nothing more is sent to it.`)) return;
  try {
    await api("DELETE", path(webhook.id));
    message("The webhook was deleted.");
    if (opened === webhook.id) closeDeliveries();
  } catch (error) {
    message(error.message);
  }
  load();
}

function deliveryRow(delivery) {
  const retry = h("button", { type: "button", class: "secondary", onclick: () => retryDelivery(delivery) }, "Retry");
  return h("tr", { dataset: { id: delivery.id, status: delivery.status } },
    cell("Event", delivery.event),
    cell("Status", h("span", { class: `badge status-${delivery.status}` }, delivery.status)),
    cell("Tries", String(delivery.attempts)),
    cell("Last answer", delivery.last_status_code === null ? "" : `HTTP ${delivery.last_status_code}`),
    cell("Error", delivery.last_error),
    cell("Next try", delivery.next_attempt_at ? momentCell(delivery.next_attempt_at) : ""),
    cell("", retry));
}

async function retryDelivery(delivery) {
  try {
    await api("POST", path(opened, `/deliveries/${encodeURIComponent(delivery.id)}/retry`));
    message(`Delivery ${delivery.id} will be tried again now.`);
  } catch (error) {
    message(error.message);
  }
  refreshDeliveries();
}

function openDeliveries(id) {
  opened = id;
  byId("webhook-deliveries").hidden = false;
  refreshDeliveries();
}

function closeDeliveries() {
  opened = null;
  byId("webhook-deliveries").hidden = true;
  if (timer) clearTimeout(timer);
  timer = null;
}

async function refreshDeliveries() {
  if (timer) clearTimeout(timer);
  timer = null;
  if (!opened || !visible) return;
  try {
    const { webhook } = await api("GET", path(opened));
    byId("webhook-deliveries-title").textContent = `Deliveries to ${webhook.url}`;
    const tbody = byId("webhook-deliveries-table").querySelector("tbody");
    rowsOrEmpty(tbody, webhook.deliveries.map(deliveryRow), 7, "No deliveries yet.");
    if (webhook.deliveries.some((d) => d.status === "pending")) {
      timer = setTimeout(refreshDeliveries, DELIVERY_POLL_MS);
    }
  } catch (error) {
    message(error.message);
  }
}

/** A table head; an empty title is the actions column, named for screen readers. */
function tableHead(titles) {
  return h("thead", {}, h("tr", {}, ...titles.map((t) => h("th", { scope: "col" },
    t || h("span", { class: "visually-hidden" }, "Actions")))));
}

function deliveriesPanel() {
  const head = tableHead(["Event", "Status", "Tries", "Last answer", "Error", "Next try", ""]);
  return h("div", { id: "webhook-deliveries", hidden: true },
    h("h2", { id: "webhook-deliveries-title" }, "Deliveries"),
    h("div", { class: "table-wrap" },
      h("table", { class: "records", id: "webhook-deliveries-table", "aria-labelledby": "webhook-deliveries-title" },
        head, h("tbody"))));
}

async function load() {
  try {
    const { webhooks } = await api("GET", "/webhooks");
    const tbody = byId("webhooks-table").querySelector("tbody");
    rowsOrEmpty(tbody, webhooks.map(webhookRow), 5, "No webhooks yet: add one above.");
  } catch (error) {
    message(error.message);
  }
}

export function init() {
  const head = tableHead(["URL", "Events", "Description", "Created", ""]);
  replaceChildren(byId("webhooks-root"),
    form(),
    h("div", { id: "webhook-secret", class: "card result", hidden: true, role: "status" }),
    h("h2", { id: "webhooks-list-title" }, "Your webhooks"),
    h("p", { id: "webhooks-message", role: "status" }),
    h("div", { class: "table-wrap" },
      h("table", { class: "records", id: "webhooks-table", "aria-labelledby": "webhooks-list-title" }, head, h("tbody"))),
    deliveriesPanel());
}

export function show() {
  visible = true;
  load();
  refreshDeliveries();
}

export function hide() {
  visible = false;
  if (timer) clearTimeout(timer);
  timer = null;
}

export function reset() {
  hide();
  closeDeliveries();
  init();
}
