// The console's entry point: sign-in, sign-out and the views behind the tabs.

import { api, clearCredentials, credentials, onUnauthorized, saveCredentials } from "./api.js";
import { byId, say } from "./dom.js";
import * as coverage from "./coverage.js";
import * as exportsView from "./exports.js";
import * as importsView from "./imports.js";
import * as quotas from "./quotas.js";
import * as schedules from "./schedules.js";
import * as webhooks from "./webhooks.js";
import { setAppZone } from "./time.js";

const VIEWS = {
  coverage,
  exports: exportsView,
  imports: importsView,
  schedules,
  webhooks,
};
const DEFAULT_VIEW = "coverage";
let current = null;

function viewFromHash() {
  const name = window.location.hash.replace(/^#/, "");
  return Object.hasOwn(VIEWS, name) ? name : DEFAULT_VIEW;
}

function hideAll() {
  for (const section of document.querySelectorAll("main > .view")) section.hidden = true;
  if (current) VIEWS[current].hide();
  current = null;
}

function markTab(name) {
  for (const link of byId("tabs").querySelectorAll("a")) {
    if (link.dataset.view === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function showView(name, moveFocus) {
  hideAll();
  const section = byId(`view-${name}`);
  section.hidden = false;
  markTab(name);
  current = name;
  document.title = `${section.querySelector("h1").textContent} · chatferry console`;
  VIEWS[name].show();
  if (moveFocus) section.querySelector("h1").focus();
}

function showSignIn(message) {
  hideAll();
  byId("tabs").hidden = true;
  byId("session").hidden = true;
  byId("view-signin").hidden = false;
  document.title = "Sign in · chatferry console";
  say(byId("signin-error"), message);
  const saved = credentials();
  if (saved) byId("signin-app-id").value = saved.appId;
  byId(byId("signin-app-id").value ? "signin-secret" : "signin-app-id").focus();
}

/** The app's name and time zone (GET /app): every time the console shows is in it. */
async function loadApp(creds) {
  const results = await api("GET", "/app", { creds, quiet401: !credentials() });
  setAppZone(results.app);
}

function showSignedIn(moveFocus) {
  const creds = credentials();
  byId("view-signin").hidden = true;
  byId("tabs").hidden = false;
  byId("session").hidden = false;
  byId("session-app").textContent = creds.appId;
  showView(viewFromHash(), moveFocus);
}

async function signIn(event) {
  event.preventDefault();
  const appId = byId("signin-app-id").value.trim();
  const secret = byId("signin-secret").value;
  const button = byId("signin-submit");
  button.disabled = true;
  say(byId("signin-error"), "");
  try {
    // Any authenticated call checks the credentials; this one also gives the time zone.
    await loadApp({ appId, secret });
    saveCredentials(appId, secret);
    byId("signin-secret").value = "";
    showSignedIn(true);
  } catch (error) {
    say(byId("signin-error"), error.message);
    byId("signin-secret").focus();
  } finally {
    button.disabled = false;
  }
}

function signOut(message) {
  clearCredentials();
  setAppZone(null);
  byId("signin-app-id").value = "";
  byId("signin-secret").value = "";
  for (const view of Object.values(VIEWS)) view.reset();
  quotas.reset();
  showSignIn(message);
}

function start() {
  for (const view of Object.values(VIEWS)) view.init();
  quotas.init();
  byId("signin-form").addEventListener("submit", signIn);
  byId("sign-out").addEventListener("click", () => signOut(""));
  onUnauthorized((message) => signOut(message));
  window.addEventListener("hashchange", () => {
    if (credentials()) showView(viewFromHash(), true);
  });
  if (credentials()) {
    loadApp(credentials()).then(() => showSignedIn(false), (error) => {
      if (error.status !== 401) showSignIn(error.message);
    });
  } else {
    showSignIn("");
  }
}

start();
