// Splits the days with rows that no export holds as they are now (not backed up, or
// changed since their export) into export windows that fit the server's limits: at most
// `maxDays` + 1 days (end - start <= maxDays) and `limit` rows. Today and later days are
// never offered: they are not over.

/** Runs of consecutive days before `today` not backed up (zero-row days included). */
function uncoveredRuns(days, today) {
  const runs = [];
  let run = [];
  for (const day of days) {
    if (day.backed_up || (today && day.date >= today)) {
      if (run.length) runs.push(run);
      run = [];
    } else {
      run.push(day);
    }
  }
  if (run.length) runs.push(run);
  return runs;
}

/** Drops leading and trailing zero-row days that did not change: nothing there needs a backup. */
function trim(days) {
  const idle = (day) => day.rows === 0 && !day.changed;
  let first = 0;
  let last = days.length - 1;
  while (first <= last && idle(days[first])) first += 1;
  while (last >= first && idle(days[last])) last -= 1;
  return days.slice(first, last + 1);
}

function splitRun(run, limit, maxDays, plan) {
  let window = [];
  let rows = 0;
  const close = () => {
    const kept = trim(window);
    if (kept.length) plan.windows.push({ start: kept[0].date, end: kept[kept.length - 1].date, rows });
    window = [];
    rows = 0;
  };
  for (const day of run) {
    if (day.rows > limit) {
      close();
      plan.tooBig.push(day);
      continue;
    }
    if (window.length && (window.length > maxDays || rows + day.rows > limit)) close();
    window.push(day);
    rows += day.rows;
  }
  close();
}

/** {windows: [{start, end, rows}], tooBig: [day]} for `days` from GET /stats/daily. */
export function planBackups(days, limit, maxDays, today) {
  const plan = { windows: [], tooBig: [] };
  for (const run of uncoveredRuns(days, today)) splitRun(run, limit, maxDays, plan);
  return plan;
}
