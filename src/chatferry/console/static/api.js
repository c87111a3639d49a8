// The chatferry API as the console uses it. The app id and secret live in this tab's
// sessionStorage only and leave it only as the QISCUS-SDK-* request headers.

export const BASE = "/api/v2.1/rest";
const STORAGE_KEY = "chatferry.console.credentials";

export class ApiError extends Error {
  constructor(status, message, body = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.body = body;
  }
}

export function credentials() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(STORAGE_KEY) || "null");
    return saved && saved.appId && saved.secret ? saved : null;
  } catch {
    return null;
  }
}

export function saveCredentials(appId, secret) {
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify({ appId, secret }));
}

export function clearCredentials() {
  sessionStorage.removeItem(STORAGE_KEY);
}

const listeners = new Set();

/** Called with the API's message when a request is refused with 401 (secret rotated). */
export function onUnauthorized(listener) {
  listeners.add(listener);
}

function headersFor(creds, extra = {}) {
  return {
    "QISCUS-SDK-APP-ID": creds.appId,
    "QISCUS-SDK-SECRET": creds.secret,
    Accept: "application/json",
    ...extra,
  };
}

function urlFor(path, query) {
  const url = new URL(BASE + path, window.location.origin);
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
  }
  return url.pathname + url.search;
}

async function readBody(response) {
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

function errorFrom(response, body) {
  const message = body && body.error && typeof body.error.message === "string"
    ? body.error.message
    : `the server answered ${response.status} ${response.statusText || ""}`.trim();
  return new ApiError(response.status, message, body);
}

/**
 * One API call; resolves to the envelope's `results`, rejects with an ApiError whose
 * message is the API's own. Options: query, json (a body to send as JSON), form
 * (a FormData), creds (defaults to the signed-in app), quiet401 (no sign-out on 401).
 */
export async function api(method, path, options = {}) {
  const creds = options.creds || credentials();
  if (!creds) throw new ApiError(401, "You are signed out: sign in with your app id and secret.");
  const init = { method, headers: headersFor(creds), credentials: "omit", cache: "no-store" };
  if (options.json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.json);
  } else if (options.form) {
    init.body = options.form;
  }
  let response;
  try {
    response = await fetch(urlFor(path, options.query), init);
  } catch {
    throw new ApiError(0, "Could not reach the chatferry server: check that it is running and try again.");
  }
  const body = await readBody(response);
  if (!response.ok || !body || body.status !== 200) {
    const error = errorFrom(response, body);
    if (response.status === 401 && !options.quiet401) listeners.forEach((l) => l(error.message));
    throw error;
  }
  return body.results;
}
