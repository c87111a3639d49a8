// Waiting for jobs to end: `GET /exports/{id}?wait=S` (and imports) answers as soon as
// the job leaves scheduled/started, so a list shows a finished job at once, without a
// reload and without polling faster. One waiting request per running record.

import { api } from "./api.js";

export const WAIT_SECONDS = 30;
const RUNNING = new Set(["started", "scheduled"]);
const watching = new Map(); // "exports:<id>" -> generation of the watch
let generation = 0;

async function watch(kind, id, mine, onEnded) {
  const key = `${kind}:${id}`;
  try {
    while (mine === generation) {
      const path = `/${kind}/${encodeURIComponent(id)}`;
      const results = await api("GET", path, { query: { wait: WAIT_SECONDS } });
      if (!RUNNING.has(results.backup_history.status)) {
        if (mine === generation) onEnded(results.backup_history);
        return;
      }
    }
  } catch {
    // Gone, or the server is away: the list's own refresh shows what happened.
  } finally {
    if (watching.get(key) === mine) watching.delete(key);
  }
}

/** Waits on every running record of the list; `onEnded(record)` when one ends. */
export function watchEnds(kind, records, onEnded) {
  for (const record of records) {
    const key = `${kind}:${record.unique_id}`;
    if (!RUNNING.has(record.status) || watching.get(key) === generation) continue;
    watching.set(key, generation);
    watch(kind, record.unique_id, generation, onEnded);
  }
}

/** Forgets every watch (a view hidden, a sign-out): their answers are ignored. */
export function stopWatching() {
  generation += 1;
  watching.clear();
}
