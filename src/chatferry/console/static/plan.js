// Splits the days with rows that no export covers into export windows that fit the
// server's limits: at most `maxDays` + 1 days (end - start <= maxDays) and `limit` rows.

/** Runs of consecutive days not backed up (zero-row days included). */
function uncoveredRuns(days) {
  const runs = [];
  let run = [];
  for (const day of days) {
    if (day.backed_up) {
      if (run.length) runs.push(run);
      run = [];
    } else {
      run.push(day);
    }
  }
  if (run.length) runs.push(run);
  return runs;
}

/** Drops leading and trailing zero-row days: nothing there needs a backup. */
function trim(days) {
  let first = 0;
  let last = days.length - 1;
  while (first <= last && days[first].rows === 0) first += 1;
  while (last >= first && days[last].rows === 0) last -= 1;
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
export function planBackups(days, limit, maxDays) {
  const plan = { windows: [], tooBig: [] };
  for (const run of uncoveredRuns(days)) splitRun(run, limit, maxDays, plan);
  return plan;
}
