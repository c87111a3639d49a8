// One time zone in the console: the app's. The API gives every time with the app's
// UTC offset, the console shows it with the zone's name, and "Run at" is read in the
// same zone (not the browser's): the zone comes from GET /app at sign-in.

let appZone = null; // { timezone, utc_offset, today } from GET /app

export function setAppZone(app) {
  appZone = app ? { timezone: app.timezone, utcOffset: app.utc_offset, today: app.today } : null;
  for (const el of document.querySelectorAll("[data-zone-name]")) el.textContent = zoneName();
}

/** "Asia/Jakarta (UTC+07:00)", or "" before sign-in. */
export function zoneName() {
  return appZone ? `${appZone.timezone} (UTC${appZone.utcOffset})` : "";
}

export function appTimezone() {
  return appZone ? appZone.timezone : "UTC";
}

/** "2024-03-10T09:30:00+07:00" -> "2024-03-10 09:30" (the API's time in the app's zone). */
export function formatMoment(rfc3339) {
  if (!rfc3339) return "";
  const match = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d)/.exec(rfc3339);
  return match ? `${match[1]} ${match[2]}` : rfc3339;
}

const PARTS = { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" };

/** Minutes the zone is ahead of UTC at the instant `utcMillis`. */
function offsetMinutes(timezone, utcMillis) {
  const format = new Intl.DateTimeFormat("en-US", { ...PARTS, timeZone: timezone, hourCycle: "h23" });
  const part = Object.fromEntries(format.formatToParts(new Date(utcMillis)).map((p) => [p.type, p.value]));
  const wall = Date.UTC(+part.year, +part.month - 1, +part.day, +part.hour, +part.minute, +part.second);
  return Math.round((wall - Math.floor(utcMillis / 1000) * 1000) / 60000);
}

function pad(n) {
  return String(Math.trunc(Math.abs(n))).padStart(2, "0");
}

function offsetText(minutes) {
  return `${minutes >= 0 ? "+" : "-"}${pad(minutes / 60)}:${pad(minutes % 60)}`;
}

/**
 * An <input type=datetime-local> value ("2030-01-05T02:00") read as a wall time in the
 * app's zone, as RFC 3339 with that zone's offset at that time ("...+07:00"). A wall
 * time that a DST change repeats gets the first of its two offsets; one that it skips,
 * the offset before the change.
 */
export function zonedInputToRfc3339(value, timezone = appTimezone()) {
  const match = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d)(?::(\d\d))?/.exec(value || "");
  if (!match) return value || ""; // let the API say what is wrong
  const [, y, mo, d, hh, mm, ss = "00"] = match;
  const wall = Date.UTC(+y, +mo - 1, +d, +hh, +mm, +ss);
  let offset = offsetMinutes(timezone, wall);
  const second = offsetMinutes(timezone, wall - offset * 60000);
  if (second !== offset) offset = second;
  return `${y}-${mo}-${d}T${hh}:${mm}:${ss}${offsetText(offset)}`;
}
