"""The console's views as issue 22 found them wanting, in a real browser at 1280 and 375
px (support/browser.py: screenshots after axe-core found no violation at either width).

Coverage that tells the truth (a day changed since its export, today never offered, the
headline over days with rows); one time zone, the app's; lists that keep their shape;
the small things (a stale message, a redundant button, the off-scale limit, clipped focus
rings, same-named links, /docs); and the README's "Try it" path through the console.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect

from chatferry.db.engine import transaction
from chatferry.demo.generate import DemoSpec, generate
from chatferry.runtime import Runtime
from support.apps import Credentials
from support.browser import Console, go_to, row, sign_in, snap
from support.rows import add_users, app_pk
from support.waiting import wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]

ZONE = "Asia/Jakarta"


def app_today(timezone: str = ZONE) -> date:
    return datetime.now(ZoneInfo(timezone)).date()


def noon_utc(day: date, timezone: str = ZONE) -> datetime:
    return datetime.combine(day, time(12), ZoneInfo(timezone)).astimezone(UTC)


def export_now(console: Console, creds: Credentials, **body: Any) -> dict[str, Any]:
    """An export created through the API, once it finished."""
    record: dict[str, Any] = console.api(creds, "POST", "/exports", json=body)["results"]
    path = f"/exports/{record['unique_id']}"

    def finished() -> bool:
        status: str = console.api(creds, "GET", path)["results"]["backup_history"]["status"]
        return status == "finished"

    wait_for(finished, timeout=30)
    return record


def day_mark(page: Page, day: date) -> Any:
    return page.locator(f"#coverage-chart g.day[data-date='{day.isoformat()}']")


# ---------------------------------------------------------------------------- coverage


def test_coverage_shows_a_changed_day_never_offers_today_and_counts_days_with_rows(
    start_server: Any, open_console: Any, new_app: Any, runtime: Runtime
) -> None:
    creds = new_app(timezone=ZONE)
    today = app_today()
    old, changed, kept = (today - timedelta(days=n) for n in (5, 3, 2))
    add_users(runtime, creds.app_id, [noon_utc(old)] * 2 + [noon_utc(changed), noon_utc(kept)])
    add_users(runtime, creds.app_id, [noon_utc(today)] * 3)
    server = start_server()
    console = open_console(server)
    body = {"type": "users", "start_date": changed.isoformat(), "end_date": kept.isoformat()}
    export_now(console, creds, **body)
    add_users(runtime, creds.app_id, [noon_utc(changed)])  # after its export: 2 rows, file 1

    page = console.page
    sign_in(console, creds)
    page.locator("#view-coverage").get_by_label("Type").select_option("users")
    expect(day_mark(page, changed)).to_have_class("day day-changed")
    expect(day_mark(page, changed)).to_have_attribute("data-backed-up", "false")
    expect(day_mark(page, kept)).to_have_class("day day-backed")
    expect(day_mark(page, old)).to_have_class("day day-missing")
    expect(day_mark(page, today)).to_have_class("day day-open")
    expect(page.locator("#coverage-legend .key-changed")).to_have_text("changed since its export")
    # The headline counts the whole days with rows: old, changed and kept (today is not over).
    expect(page.locator(".stat-backed")).to_have_text("1 of 3 days with rows backed up")
    expect(page.locator(".stat-changed strong")).to_have_text("1")
    expect(page.locator(".stat-missing strong")).to_have_text("1")
    expect(page.locator("#coverage-summary p")).to_contain_text(f"Today, {today.isoformat()}")
    plan = page.locator("#coverage-plan-text")
    expect(plan).to_contain_text("and the 1 day changed since its export")
    expect(plan).to_contain_text(old.isoformat())
    expect(plan).to_contain_text(changed.isoformat())
    expect(plan).not_to_contain_text(today.isoformat())
    # What a whole-app backup holds beyond these exports (issue 18).
    expect(page.locator("#coverage-plan-holds")).to_contain_text("attachments")
    page.get_by_text("Show the days as a table").click()
    cells = page.locator(f"#coverage-table tr[data-date='{changed.isoformat()}'] td")
    expect(cells).to_have_text([changed.isoformat(), "2", "no: changed since its export"])
    page.get_by_text("Show the days as a table").click()
    snap(page, "21-coverage-changed-day")

    page.get_by_role("button", name="Back up these days").click()
    expect(page.locator(".stat-backed")).to_have_text(
        "3 of 3 days with rows backed up", timeout=30_000
    )
    expect(day_mark(page, changed)).to_have_class("day day-backed")
    expect(day_mark(page, today)).to_have_class("day day-open")
    made = console.api(creds, "GET", "/exports")["results"]["backup_histories"]
    assert all(record["end_date"] < today.isoformat() for record in made)
    snap(page, "22-coverage-all-whole-days-backed-up")


def test_the_limit_far_above_the_bars_is_a_label_not_a_line_over_them(
    start_server: Any, open_console: Any, new_app: Any, runtime: Runtime
) -> None:
    creds = new_app(timezone=ZONE)
    add_users(runtime, creds.app_id, [noon_utc(app_today() - timedelta(days=1))] * 3)
    server = start_server()
    console = open_console(server)
    page = console.page
    sign_in(console, creds)
    page.locator("#view-coverage").get_by_label("Type").select_option("users")
    limit = page.locator("#coverage-chart g.limit")
    expect(limit).to_have_attribute("data-on-scale", "false")
    expect(limit.locator("line")).to_have_count(0)
    expect(limit).to_have_text("↑ export row limit 1,000, far above this scale")
    # The form reloads on every change: no "Show" button to press.
    expect(page.locator("#coverage-form").get_by_role("button")).to_have_count(0)


# ---------------------------------------------------------------------------- lists

# Every date, time, count and size in the lists is one line (an inline element that
# wraps has client rectangles on several lines), each row's actions sit on one line inside the
# table, and each column keeps its width.
SHAPE = """(table) => {
  const lines = (e) => new Set([...e.getClientRects()].map((r) => Math.round(r.top))).size;
  const el = document.getElementById(table);
  const box = el.getBoundingClientRect();
  const wrapped = [...el.querySelectorAll("tbody time, tbody .nowrap, tbody .num, tbody .short-id")]
    .filter((e) => lines(e) !== 1).map((e) => e.textContent);
  const actions = [...el.querySelectorAll("tbody .row-actions")].filter((group) => {
    const tops = new Set([...group.children].map((c) => Math.round(c.getBoundingClientRect().top)));
    return tops.size > 1 || group.getBoundingClientRect().right > box.right + 0.5;
  }).map((group) => group.textContent);
  const widths = [...el.querySelectorAll("thead th")]
    .map((th) => Math.round(th.getBoundingClientRect().width));
  return { wrapped, actions, widths };
}"""


def shape(page: Page, table: str) -> dict[str, Any]:
    found: dict[str, Any] = page.evaluate(SHAPE, table)
    assert found["wrapped"] == [], (table, found)
    assert found["actions"] == [], (table, found)
    return found


def test_lists_keep_their_shape_with_ids_marks_and_dashes(
    start_server: Any, open_console: Any, new_app: Any, runtime: Runtime
) -> None:
    creds = new_app(timezone=ZONE)
    yesterday = app_today() - timedelta(days=1)
    add_users(runtime, creds.app_id, [noon_utc(yesterday)] * 3)
    server = start_server()
    console = open_console(server)
    page = console.page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    day = yesterday.isoformat()
    first = export_now(console, creds, type="users", start_date=day, end_date=day)
    export_now(console, creds, type="users", start_date=day, end_date=day)  # the same again
    sign_in(console, creds)
    go_to(page, "Exports")
    table = page.locator("#exports-table tbody tr")
    expect(table).to_have_count(2)
    before = shape(page, "exports-table")["widths"]

    # Identical rows are told apart by a short id with a copy button.
    first_row = row(page, "exports-table", first["unique_id"])
    expect(first_row.locator(".short-id")).to_have_text(first["unique_id"][:8])
    first_row.get_by_role("button", name=f"Copy the id of export {first['unique_id'][:8]}").click()
    assert page.evaluate("navigator.clipboard.readText()") == first["unique_id"]
    names = page.locator("#exports-table a.button").evaluate_all(
        "links => links.map((a) => a.getAttribute('aria-label'))"
    )
    assert len(names) == 2 and len(set(names)) == 2, names
    assert all(name.startswith("Download users export ") for name in names), names

    # A scheduled export (counts unknown: "—") and a schedule's run (marked) join the list.
    later = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    waiting = console.api(creds, "POST", "/exports", json={"type": "comments", "run_at": later})
    schedule = console.api(
        creds,
        "POST",
        "/export_schedules",
        json={"type": "rooms", "cron": "0 2 * * *", "window_days": 30, "keep_last": 3},
    )["results"]["export_schedule"]
    ran = console.api(creds, "POST", f"/export_schedules/{schedule['unique_id']}/run")
    made = ran["results"]["backup_histories"][0]
    page.get_by_role("button", name="Refresh").click()
    expect(table).to_have_count(4)
    scheduled = row(page, "exports-table", waiting["results"]["unique_id"])
    expect(scheduled.locator("td[data-label='Rows']")).to_have_text("—")
    expect(scheduled.locator("td[data-label='Size']")).to_have_text("—")
    marked = row(page, "exports-table", made["unique_id"])
    expect(marked.locator(".from-schedule")).to_have_text("schedule")
    expect(first_row.locator(".from-schedule")).to_have_count(0)
    wait_for(lambda: marked.get_attribute("data-status") == "finished", timeout=30)
    after = shape(page, "exports-table")["widths"]
    assert after == before, "the columns changed width when other rows came"
    snap(page, "23-exports-list")

    go_to(page, "Schedules")
    expect(page.locator("#schedules-table tbody tr")).to_have_count(1)
    shape(page, "schedules-table")
    snap(page, "24-schedules-list")


# ---------------------------------------------------------------------------- time zone


def test_every_time_is_in_the_apps_zone_named_and_run_at_is_read_in_it(
    start_server: Any, open_console: Any, new_app: Any
) -> None:
    creds = new_app(timezone=ZONE)
    server = start_server()
    console = open_console(server, timezone_id="America/New_York")  # the browser's zone
    page = console.page
    sign_in(console, creds)
    expect(page.locator("#session-zone")).to_have_text("Asia/Jakarta (UTC+07:00)")
    go_to(page, "Exports")
    expect(page.locator("#export-run-at-help")).to_contain_text("Asia/Jakarta (UTC+07:00)")

    # Too far ahead: the API's refusal in Jakarta's time, with the latest allowed time.
    page.get_by_label("Run at (optional)").fill("2999-01-05T02:00")
    page.get_by_role("button", name="Create export").click()
    error = page.locator("#export-error")
    expect(error).to_contain_text("2999-01-05 02:00 Asia/Jakarta (UTC+07:00)")
    expect(error).to_contain_text("the latest allowed is")
    snap(page, "25-run-at-too-far")

    later = datetime.now(ZoneInfo(ZONE)).replace(second=0, microsecond=0) + timedelta(hours=3)
    page.get_by_label("Run at (optional)").fill(later.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_role("button", name="Create export").click()
    waiting = page.locator("#exports-table tbody tr[data-status='scheduled']")
    expect(waiting).to_have_count(1)
    record = console.api(creds, "GET", f"/exports/{waiting.get_attribute('data-id')}")
    run_at = record["results"]["backup_history"]["run_at"]
    assert datetime.fromisoformat(run_at) == later
    expect(waiting.locator("td[data-label='Status'] time")).to_have_text(
        later.strftime("%Y-%m-%d %H:%M")
    )
    expect(waiting.locator("td[data-label='Status'] time")).to_have_attribute(
        "title", f"{run_at}, {ZONE}"
    )

    # The offset is the zone's at that date, daylight saving time included.
    sent = page.evaluate(ZONED, [[value, zone] for value, zone, _ in ZONED_CASES])
    assert sent == [expected for _, _, expected in ZONED_CASES]


ZONED = """async (cases) => {
  const time = await import("/console/static/time.js");
  return cases.map(([value, zone]) => time.zonedInputToRfc3339(value, zone));
}"""
ZONED_CASES = [
    ("2026-07-01T09:30", "America/New_York", "2026-07-01T09:30:00-04:00"),
    ("2026-12-01T09:30", "America/New_York", "2026-12-01T09:30:00-05:00"),
    ("2026-11-01T01:30", "America/New_York", "2026-11-01T01:30:00-04:00"),  # repeated
    ("2026-12-01T09:30", "Asia/Kolkata", "2026-12-01T09:30:00+05:30"),
    ("2026-12-01T00:00", "Pacific/Kiritimati", "2026-12-01T00:00:00+14:00"),
    ("2026-12-01T23:59", "UTC", "2026-12-01T23:59:00+00:00"),
]


# ---------------------------------------------------------------------------- small things

# Whether the focused element's focus ring (outline width + offset around its box) lies
# inside every ancestor that clips (overflow other than visible).
RING_INSIDE = """() => {
  const el = document.activeElement;
  const style = getComputedStyle(el);
  const grow = parseFloat(style.outlineWidth) + parseFloat(style.outlineOffset);
  const r = el.getBoundingClientRect();
  for (let box = el.parentElement; box; box = box.parentElement) {
    const s = getComputedStyle(box);
    if (s.overflowX === "visible" && s.overflowY === "visible") continue;
    const b = box.getBoundingClientRect();
    if (r.left - grow < b.left - 0.5 || r.right + grow > b.right + 0.5
        || r.top - grow < b.top - 0.5 || r.bottom + grow > b.bottom + 0.5) return box.className;
  }
  return "";
}"""


def test_no_stale_message_unclipped_tab_rings_and_docs_that_lead_back(
    start_server: Any, open_console: Any, new_app: Any, runtime: Runtime
) -> None:
    creds = new_app(timezone=ZONE)
    add_users(runtime, creds.app_id, [noon_utc(app_today() - timedelta(days=1))])
    server = start_server()
    console = open_console(server)
    page = console.page
    sign_in(console, creds)
    go_to(page, "Exports")
    page.locator("#view-exports").get_by_label("Type").select_option("users")
    page.get_by_role("button", name="Create export").click()
    finished = page.locator("#exports-table tbody tr[data-status='finished']")
    expect(finished).to_have_count(1, timeout=30_000)
    short = (finished.get_attribute("data-id") or "")[:8]
    # The message beside the list follows the export: never "started" beside a finished row.
    expect(page.locator("#exports-message")).to_have_text(f"Export of users ({short}) finished.")

    for name in ("Coverage", "Exports", "Imports", "Schedules"):
        link = page.get_by_role("navigation", name="Console sections").get_by_role(
            "link", name=name
        )
        link.focus()
        page.keyboard.press("Shift+Tab")
        page.keyboard.press("Tab")  # focused by keyboard: the ring shows
        expect(link).to_be_focused()
        assert page.evaluate(RING_INSIDE) == "", f"the focus ring of {name} is clipped"

    page.goto(f"{server.base_url}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("chatferry")
    description = page.locator(".swagger-ui .info .description")
    expect(description).to_contain_text("the Authorize button below")
    expect(description).not_to_contain_text("above")
    assert page.locator("main").count() == 1
    snap(page, "26-docs")
    page.get_by_role("link", name="Back to the console").click()
    expect(page).to_have_url(f"{server.base_url}/console")
    expect(page.locator("#session-app")).to_have_text(creds.app_id)


# ---------------------------------------------------------------------------- Try it


def users_json(*emails: str) -> bytes:
    rows = [
        {
            "Email": email,
            "Name": email.split("@")[0],
            "Password": "a-long-password",
            "AuthenticationToken": f"tok-{i}",
        }
        for i, email in enumerate(emails)
    ]
    return json.dumps(rows).encode()


def choose_file(page: Page, name: str, data: bytes) -> None:
    page.get_by_label("JSON file").set_input_files(
        files=[{"name": name, "mimeType": "application/json", "buffer": data}]
    )


def test_the_readme_try_it_path_through_the_console(
    start_server: Any, open_console: Any, new_app: Any, runtime: Runtime, tmp_path: Path
) -> None:
    creds = new_app("Sample", timezone=ZONE)
    with transaction(runtime.sessions) as session:
        generate(session, app_pk(runtime, creds.app_id), DemoSpec(40, 20, 400, 10, seed=3))
    server = start_server()
    console = open_console(server)
    page = console.page
    sign_in(console, creds)
    expect(page.locator(".stat-backed")).to_contain_text("days with rows backed up")
    snap(page, "30-try-it-coverage")

    # An export: create it, watch it finish, download the file.
    go_to(page, "Exports")
    page.get_by_role("button", name="Create export").click()
    finished = page.locator("#exports-table tbody tr[data-status='finished']")
    expect(finished).to_have_count(1, timeout=30_000)
    with page.expect_download() as download_info:
        finished.get_by_role("link", name="Download comments export").click()
    path = tmp_path / "comments.json"
    download_info.value.save_as(path)
    rows = finished.locator("td[data-label='Rows']").inner_text()
    assert len(json.loads(path.read_text())) == int(rows.replace(",", ""))
    snap(page, "31-try-it-export")

    # An import: a dry run that finds a problem (the same email twice), then a good file.
    go_to(page, "Imports")
    choose_file(page, "users.json", users_json("ayu@example.com", "ayu@example.com", "b@x.io"))
    page.get_by_role("button", name="Check file").click()
    expect(page.get_by_role("heading", name="The file has problems")).to_be_visible()
    result = page.locator("#import-result")
    expect(result.locator(".checked")).to_have_text(
        "3 users rows checked (a dry run); nothing was written."
    )
    expect(result.get_by_role("alert")).not_to_contain_text("Data")
    failed = page.locator("#imports-table tbody tr[data-status='failed']")
    expect(failed.locator("td[data-label='Rows']")).to_have_text("3 checked")
    expect(
        failed.get_by_role("button", name=re.compile(r"^Show 1 problem of users.json"))
    ).to_be_visible()
    snap(page, "32-try-it-dry-run-problem")

    choose_file(page, "users.json", users_json("ayu@example.com"))
    page.get_by_role("button", name="Check file").click()
    page.get_by_role("button", name="Import for real").click()
    expect(page.get_by_role("heading", name="Imported")).to_be_visible(timeout=30_000)
    expect(page.locator("#imports-table tbody tr")).to_have_count(3)
    shape(page, "imports-table")
    snap(page, "33-try-it-imported")

    # A schedule, then the coverage of the day the export covered.
    go_to(page, "Schedules")
    page.get_by_label("Name (optional)").fill("Nightly comments")
    page.get_by_role("button", name="Create schedule").click()
    expect(page.locator("#schedules-table tbody tr")).to_have_count(1)
    snap(page, "34-try-it-schedules")
    go_to(page, "Coverage")
    yesterday = app_today() - timedelta(days=1)
    expect(day_mark(page, yesterday)).to_have_attribute("data-backed-up", "true")
    snap(page, "35-try-it-coverage-after")
