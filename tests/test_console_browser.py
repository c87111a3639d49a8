"""The web console in a real browser (support/browser.py): headless Chromium from the
system packages, driven by Playwright, against a real ``chatferry serve`` process.

Every test blocks requests that leave the server (the console must work offline),
fails on Content-Security-Policy violations and page errors, and saves screenshots of
each state at desktop width and at 375 px into test-artifacts/screenshots/, each after
axe-core found no violation.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Page, expect

from chatferry.db.engine import transaction
from chatferry.demo.generate import DemoSpec, generate
from chatferry.runtime import Runtime
from client_helpers import assert_one_line_error, client_env, run_client
from support.apps import Credentials
from support.browser import STORAGE_KEY, Console, go_to, row, sign_in, snap
from support.http import API
from support.rows import add_users, app_pk
from support.servers import run_cli
from support.waiting import wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]


def app_today(timezone: str) -> date:
    return datetime.now(ZoneInfo(timezone)).date()


def noon_utc(day: date, timezone: str) -> datetime:
    return datetime.combine(day, time(12), ZoneInfo(timezone)).astimezone(UTC)


# ---------------------------------------------------------------------------- sign-in


def test_sign_in_wrong_secret_then_right_then_sign_out(
    start_server: Any, open_console: Any, new_app: Any
) -> None:
    creds = new_app()
    server = start_server()
    console = open_console(server)
    page = console.page
    page.goto(f"{server.base_url}/")
    expect(page).to_have_url(f"{server.base_url}/console")
    snap(page, "01-sign-in")

    wrong = Credentials(creds.app_id, "not-the-secret")
    expected = console.api(wrong, "GET", "/exports")["error"]["message"]
    page.get_by_label("App id").fill(creds.app_id)
    page.get_by_label("Secret").fill(wrong.secret)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text(expected)
    snap(page, "02-sign-in-wrong-secret")

    # The right secret, by keyboard only: the secret field has focus after the error.
    expect(page.get_by_label("Secret")).to_be_focused()
    page.keyboard.press("Control+A")
    page.keyboard.type(creds.secret)
    page.keyboard.press("Enter")
    expect(page.locator("#session-app")).to_have_text(creds.app_id)
    expect(page.get_by_role("heading", name="What is backed up")).to_be_visible()

    stored = json.loads(page.evaluate(f"sessionStorage.getItem('{STORAGE_KEY}')"))
    assert stored == {"appId": creds.app_id, "secret": creds.secret}
    assert page.evaluate("localStorage.length") == 0
    assert page.context.cookies() == []
    page.reload()  # the tab keeps its session
    expect(page.locator("#session-app")).to_have_text(creds.app_id)

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.evaluate(f"sessionStorage.getItem('{STORAGE_KEY}')") is None
    expect(page.get_by_label("Secret")).to_have_value("")
    assert not any(creds.secret in url for url in console.urls)
    assert creds.secret not in server.log_path.read_text()


def test_a_rotated_secret_signs_the_tab_out_with_the_apis_message(
    start_server: Any, open_console: Any, new_app: Any, settings_env: dict[str, str]
) -> None:
    creds = new_app()
    server = start_server()
    console = open_console(server)
    sign_in(console, creds)
    done = run_cli(settings_env, "apps", "rotate-secret", creds.app_id)
    assert done.returncode == 0, done.stderr
    expected = console.api(creds, "GET", "/exports")["error"]["message"]
    tabs = console.page.get_by_role("navigation", name="Console sections")
    tabs.get_by_role("link", name="Exports").click()
    expect(console.page.get_by_role("alert")).to_have_text(expected)
    expect(console.page.get_by_role("heading", name="Sign in")).to_be_visible()


# ---------------------------------------------------------------------------- exports


def test_exports_progress_download_cancel_and_delete(
    start_server: Any,
    start_worker: Any,
    open_console: Any,
    new_app: Any,
    runtime: Runtime,
    tmp_path: Path,
) -> None:
    creds = new_app(timezone="Asia/Jakarta")
    with transaction(runtime.sessions) as session:
        generate(session, app_pk(runtime, creds.app_id), DemoSpec(20, 10, 400, 3, seed=7))
    server = start_server(None, "--no-worker")  # jobs wait until the worker below starts
    console = open_console(server)
    page = console.page
    sign_in(console, creds)
    go_to(page, "Exports")

    # A bad range: the API's own message, as it words it.
    bad = {"type": "comments", "start_date": "2024-03-02", "end_date": "2024-03-01"}
    expected = console.api(creds, "POST", "/exports", json=bad)["error"]["message"]
    page.get_by_label("From day").fill("2024-03-02")
    page.get_by_label("To day").fill("2024-03-01")
    page.get_by_role("button", name="Create export").click()
    expect(page.locator("#export-error")).to_have_text(expected)
    page.get_by_label("From day").fill("")
    page.get_by_label("To day").fill("")

    page.get_by_role("button", name="Create export").click()
    started = page.locator("#exports-table tbody tr[data-status='started']")
    expect(started).to_have_count(1)
    unique_id = started.get_attribute("data-id")
    expect(started.get_by_role("progressbar")).to_be_visible()
    snap(page, "03-export-started")

    start_worker()
    finished = row(page, "exports-table", unique_id)
    expect(finished).to_have_attribute("data-status", "finished", timeout=30_000)
    expect(finished.locator("td[data-label='Rows']")).to_have_text("400")
    snap(page, "04-export-finished")

    record = console.api(creds, "GET", f"/exports/{unique_id}")["results"]["backup_history"]
    with page.expect_download() as download_info:
        finished.get_by_role("link", name="Download").click()
    download = download_info.value
    # The spec's file name, with the ':' that file systems refuse made '_' by Chromium.
    assert download.suggested_filename == record["original_filename"].replace(":", "_")
    path = tmp_path / "downloaded.json"
    download.save_as(path)
    assert len(json.loads(path.read_text())) == 400

    # Later: "Run at" is a time in the app's zone (Asia/Jakarta), whatever the browser's.
    later = datetime.now(ZoneInfo("Asia/Jakarta")) + timedelta(hours=2)
    page.get_by_label("Run at (optional)").fill(later.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_role("button", name="Create export").click()
    scheduled = page.locator("#exports-table tbody tr[data-status='scheduled']")
    expect(scheduled).to_have_count(1)
    scheduled_id = scheduled.get_attribute("data-id")
    run_at = console.api(creds, "GET", f"/exports/{scheduled_id}")["results"]["backup_history"]
    assert datetime.fromisoformat(run_at["run_at"]) == later.replace(second=0, microsecond=0)
    snap(page, "05-export-scheduled")
    page.once("dialog", lambda dialog: dialog.accept())
    scheduled.get_by_role("button", name=f"Cancel export {scheduled_id}").click()
    expect(row(page, "exports-table", scheduled_id)).to_have_count(0)
    assert console.api(creds, "GET", f"/exports/{scheduled_id}")["status"] == 404

    page.once("dialog", lambda dialog: dialog.accept())
    finished.get_by_role("button", name=f"Delete export {unique_id}").click()
    expect(row(page, "exports-table", unique_id)).to_have_count(0)
    expect(page.locator("#exports-message")).to_have_text("The export was deleted.")


# ---------------------------------------------------------------------------- imports


def users_file(*rows: dict[str, Any]) -> bytes:
    return json.dumps(list(rows)).encode()


def user_row(email: str) -> dict[str, Any]:
    return {
        "Email": email,
        "Name": email.split("@")[0],
        "AvatarUrl": "",
        "AuthenticationToken": f"token-{email}",
        "Password": "correct horse",
        "CreateAt": "2024-05-10T11:46:30Z",
    }


def users_on_import_day(console: Console, creds: Credentials) -> int:
    day = {"type": "users", "start_date": "2024-05-10", "end_date": "2024-05-10"}
    rows: int = console.api(creds, "GET", "/stats/daily", params=day)["results"]["days"][0]["rows"]
    return rows


def latest_import(console: Console, creds: Credentials) -> dict[str, Any]:
    records: list[dict[str, Any]] = console.api(creds, "GET", "/imports")["results"][
        "backup_histories"
    ]
    return records[0]


def test_import_bad_file_shows_problems_then_good_file_dry_run_then_for_real(
    start_server: Any, open_console: Any, new_app: Any
) -> None:
    creds = new_app()
    server = start_server()
    console = open_console(server)
    page = console.page
    sign_in(console, creds)
    go_to(page, "Imports")

    bad = users_file(
        user_row("ana@example.com"),
        {**user_row("not-an-email"), "AuthenticationToken": "token-2"},
        {**user_row("ana@example.com"), "AuthenticationToken": "token-3"},
    )
    page.get_by_label("JSON file").set_input_files(
        files=[{"name": "users_bad.json", "mimeType": "application/json", "buffer": bad}]
    )
    expect(page.locator("#view-imports").get_by_label("Type")).to_have_value("users")
    page.get_by_role("button", name="Check file").click()
    expect(page.get_by_role("heading", name="The file has problems")).to_be_visible()

    record = latest_import(console, creds)
    assert record["dry_run"] is True and record["status"] == "failed"
    result = page.locator("#import-result")
    # The API's summary, with its list called what it is here: the table below.
    shown = record["errors"]["Message"].replace("listed in Data", "listed below")
    expect(result.get_by_role("alert")).to_have_text(shown)
    table_rows = result.locator("table tbody tr")
    expect(table_rows).to_have_count(len(record["errors"]["Data"]))
    for i, problem in enumerate(record["errors"]["Data"]):
        cells = table_rows.nth(i).locator("td")
        expect(cells.nth(0)).to_have_text(str(problem["row"]))
        expect(cells.nth(1)).to_have_text(problem["key"] or "—")
        expect(cells.nth(2)).to_have_text(problem["field"] or "—")
        expect(cells.nth(3)).to_have_text(problem["message"])
    # The 2nd and 3rd objects are bad: rows 2 and 3 in the API and in the table alike.
    assert [problem["row"] for problem in record["errors"]["Data"]] == [2, 3]
    expect(table_rows.locator("td:first-child")).to_have_text(["2", "3"])
    snap(page, "06-import-problems")

    # The good file is dropped on the drop zone.
    good = users_file(user_row("ana@example.com"), user_row("budi@example.com"))
    transfer = page.evaluate_handle(
        """(text) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([text], "users.json", {type: "application/json"}));
            return transfer;
        }""",
        good.decode(),
    )
    page.dispatch_event("#import-drop", "drop", {"dataTransfer": transfer})
    page.get_by_role("button", name="Check file").click()
    expect(page.get_by_role("heading", name="The file is ready to import")).to_be_visible()
    assert latest_import(console, creds)["dry_run"] is True
    assert users_on_import_day(console, creds) == 0  # the dry run wrote nothing
    snap(page, "07-import-dry-run-passed")

    page.get_by_role("button", name="Import for real").click()
    expect(page.get_by_role("heading", name="Imported")).to_be_visible(timeout=30_000)
    final = latest_import(console, creds)
    assert final["dry_run"] is False and final["status"] == "finished"
    assert final["total_rows"] == 2
    assert users_on_import_day(console, creds) == 2
    statuses = page.locator("#imports-table tbody tr")
    expect(statuses).to_have_count(3)
    expect(statuses.nth(0)).to_have_attribute("data-status", "finished")
    expect(statuses.nth(2).locator(".dry-run")).to_have_text("dry run")
    snap(page, "08-import-done")

    # The failed dry run's problems can be shown again from the list.
    statuses.nth(2).get_by_role("button", name="Show 2 problems").click()
    expect(result.locator("table tbody tr")).to_have_count(2)


def test_the_third_object_is_row_3_in_the_api_the_cli_and_the_console(
    start_server: Any, open_console: Any, new_app: Any, tmp_path: Path
) -> None:
    """errors.Data's row is the number a person reads (the file's first object is row
    1), and the CLI's and the console's problem tables show it as it is."""
    creds = new_app()
    server = start_server()
    path = tmp_path / "users.json"
    path.write_bytes(users_file(user_row("a@x.com"), user_row("b@x.com"), user_row("c@x")))
    env = client_env(dict(os.environ), server.base_url, creds.app_id, creds.secret)
    checked = run_client(env, "import", str(path), "--type", "users", "--dry-run")
    assert_one_line_error(checked, 3, "dry run", "ended failed")
    assert "│ 3 │ c@x │ Email │" in " ".join(checked.stdout.split()), checked.stdout

    console = open_console(server)
    record = latest_import(console, creds)
    assert [(p["row"], p["key"], p["field"]) for p in record["errors"]["Data"]] == [
        (3, "c@x", "Email")
    ]
    page = console.page
    sign_in(console, creds)
    go_to(page, "Imports")
    listed = page.locator("#imports-table tbody tr")
    expect(listed).to_have_count(1)
    listed.nth(0).get_by_role("button", name="Show 1 problem").click()
    problem_rows = page.locator("#import-result table tbody tr")
    expect(problem_rows.locator("td:first-child")).to_have_text(["3"])
    expect(problem_rows.locator("td").nth(1)).to_have_text("c@x")
    snap(page, "06b-import-problem-row-3")


# ---------------------------------------------------------------------------- schedules


def schedule_row(page: Page, name: str) -> Any:
    return page.locator("#schedules-table tbody tr").filter(has_text=name)


def test_schedules_create_edit_pause_run_now_and_delete(
    start_server: Any, open_console: Any, new_app: Any, runtime: Runtime
) -> None:
    creds = new_app()
    yesterday = app_today("UTC") - timedelta(days=1)
    add_users(runtime, creds.app_id, [noon_utc(yesterday, "UTC")])
    server = start_server()
    console = open_console(server)
    page = console.page
    sign_in(console, creds)
    go_to(page, "Schedules")

    bad = {"type": "comments", "cron": "every night", "window_days": 1, "keep_last": 7}
    expected = console.api(creds, "POST", "/export_schedules", json=bad)["error"]["message"]
    page.get_by_label("Name (optional)").fill("Nightly users")
    page.locator("#view-schedules").get_by_label("Type").select_option("users")
    form = page.locator("#schedule-form")
    form.get_by_label("When (cron)").fill("every night")
    page.get_by_role("button", name="Create schedule").click()
    expect(page.locator("#schedule-error")).to_have_text(expected)

    form.get_by_label("When (cron)").fill("0 2 * * *")
    page.get_by_role("button", name="Create schedule").click()
    created = schedule_row(page, "Nightly users")
    expect(created).to_have_count(1)
    unique_id = created.get_attribute("data-id")
    snap(page, "09-schedules")

    created.get_by_role("button", name="Edit Nightly users").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_label("Name")).to_be_focused()
    dialog.get_by_label("Days per run").fill("99")
    expected = console.api(
        creds, "PATCH", f"/export_schedules/{unique_id}", json={"window_days": 99}
    )["error"]["message"]
    dialog.get_by_role("button", name="Save").click()
    expect(dialog.get_by_role("alert")).to_have_text(expected)
    snap(page, "10-schedule-edit-error")
    dialog.get_by_label("Name").fill("Users, twice a day")
    dialog.get_by_label("When (cron)").fill("0 2,14 * * *")
    dialog.get_by_label("Days per run").fill("2")
    dialog.get_by_label("Keep last").fill("5")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    edited = row(page, "schedules-table", unique_id)
    expect(edited.locator("td[data-label='Name']")).to_have_text("Users, twice a day")
    expect(edited.locator("td[data-label='When'] code")).to_have_text("0 2,14 * * *")
    expect(edited.locator("td[data-label='Days per run']")).to_have_text("2")
    expect(edited.locator("td[data-label='Keep']")).to_have_text("5")
    saved = console.api(creds, "GET", f"/export_schedules/{unique_id}")["results"]
    assert saved["export_schedule"]["name"] == "Users, twice a day"

    edited.get_by_role("button", name="Pause Users, twice a day").click()
    expect(edited).to_have_attribute("data-paused", "true")
    expect(edited.locator("td[data-label='State']")).to_have_text("paused")
    snap(page, "11-schedule-paused")
    edited.get_by_role("button", name="Resume Users, twice a day").click()
    expect(edited).to_have_attribute("data-paused", "false")

    edited.get_by_role("button", name="Run now Users, twice a day").click()
    expect(page.locator("#schedules-message")).to_contain_text("export")
    runs = console.api(creds, "GET", "/exports")["results"]["backup_histories"]
    assert runs and {r["schedule_id"] for r in runs} == {unique_id}
    snap(page, "12-schedule-ran")

    page.once("dialog", lambda d: d.accept())
    edited.get_by_role("button", name="Delete Users, twice a day").click()
    expect(row(page, "schedules-table", unique_id)).to_have_count(0)
    assert console.api(creds, "GET", f"/export_schedules/{unique_id}")["status"] == 404


# ---------------------------------------------------------------------------- coverage


def day_mark(page: Page, day: date) -> Any:
    return page.locator(f"#coverage-chart g.day[data-date='{day.isoformat()}']")


def test_coverage_chart_marks_backed_up_days_and_backs_up_the_rest(
    start_server: Any, open_console: Any, new_app: Any, runtime: Runtime
) -> None:
    zone = "Asia/Jakarta"
    creds = new_app(timezone=zone)
    today = app_today(zone)
    old, empty, covered, covered_too = (today - timedelta(days=n) for n in (5, 4, 3, 2))
    moments = [noon_utc(old, zone)] * 2 + [noon_utc(covered, zone)] + [noon_utc(covered_too, zone)]
    add_users(runtime, creds.app_id, moments)
    server = start_server()
    body = {"type": "users", "start_date": covered.isoformat(), "end_date": covered_too.isoformat()}
    export = httpx.post(
        f"{server.base_url}{API}/exports", json=body, headers=creds.headers, timeout=10
    ).json()["results"]
    wait_for(
        lambda: (
            httpx.get(
                f"{server.base_url}{API}/exports/{export['unique_id']}",
                headers=creds.headers,
            ).json()["results"]["backup_history"]["status"]
            == "finished"
        )
    )

    console = open_console(server)
    page = console.page
    sign_in(console, creds)
    page.locator("#view-coverage").get_by_label("Type").select_option("users")
    expect(page.locator("#coverage-chart g.day")).to_have_count(90)
    expect(day_mark(page, covered)).to_have_attribute("data-backed-up", "true")
    expect(day_mark(page, covered_too)).to_have_attribute("data-backed-up", "true")
    expect(day_mark(page, covered)).to_have_class("day day-backed")
    expect(day_mark(page, old)).to_have_attribute("data-backed-up", "false")
    expect(day_mark(page, old)).to_have_class("day day-missing")
    expect(day_mark(page, old)).to_have_attribute("data-rows", "2")
    expect(day_mark(page, empty)).to_have_class("day day-empty")
    expect(page.locator("#coverage-chart g.limit")).to_have_attribute("data-limit", "1000")
    expect(page.locator(".stat-backed strong")).to_have_text("2")
    expect(page.locator(".stat-missing strong")).to_have_text("1")
    page.get_by_text("Show the days as a table").click()
    old_row = page.locator(f"#coverage-table tr[data-date='{old.isoformat()}'] td")
    expect(old_row).to_have_text([old.isoformat(), "2", "no"])
    page.get_by_text("Show the days as a table").click()  # closed again for the pictures
    snap(page, "13-coverage")

    expect(page.locator("#coverage-plan-text")).to_contain_text(old.isoformat())
    page.get_by_role("button", name="Back up these days").click()
    expect(day_mark(page, old)).to_have_attribute("data-backed-up", "true", timeout=30_000)
    expect(page.locator(".stat-missing strong")).to_have_text("0")
    expect(page.locator("#coverage-plan")).to_be_hidden()
    expect(page.locator("#coverage-plan-status")).to_have_text("1 export finished.")
    snap(page, "14-coverage-all-backed-up")

    page.locator("#view-coverage").get_by_label("Days", exact=True).select_option("30")
    expect(page.locator("#coverage-chart g.day")).to_have_count(30)


# ---------------------------------------------------------------------------- docs, a11y


def test_docs_render_offline_under_the_csp_and_try_it_out_works(
    start_server: Any, open_console: Any, new_app: Any
) -> None:
    creds = new_app()
    server = start_server()
    console = open_console(server)
    page = console.page
    response = page.goto(f"{server.base_url}/docs")
    assert response is not None
    assert "script-src 'self'" in response.headers["content-security-policy"]
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("chatferry")
    snap(page, "15-docs")

    page.get_by_role("button", name="Authorize").first.click()
    modal = page.locator(".modal-ux")
    for scheme, value in (("AppId", creds.app_id), ("Secret", creds.secret)):
        section = modal.locator(".auth-container").filter(has_text=scheme)
        section.locator("input").fill(value)
        section.get_by_role("button", name="Apply credentials").click()
    modal.locator("button.close-modal").click()
    operation = page.locator(".opblock").filter(has_text="/api/v2.1/rest/stats/daily")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.locator("input[placeholder='type']").fill("users")
    operation.get_by_role("button", name="Execute").click()
    status = operation.locator(".live-responses-table tbody .response-col_status")
    expect(status).to_have_text("200")
    snap(page, "16-docs-try-it-out")


KEYBOARD_CHECK = """() => {
  const visible = (el) => el.getClientRects().length > 0 && !el.closest("[hidden]");
  const controls = [...document.querySelectorAll("a[href], button, input, select, summary")]
    .filter(visible);
  const unlabelled = controls
    .filter((el) => el.matches("input, select"))
    .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label"))
    .map((el) => el.id);
  controls.forEach((el, i) => { el.dataset.kbd = String(i); });
  return { count: controls.length, unlabelled };
}"""


# Which control has focus, and whether it shows a focus ring. Inside a date input the
# browser's own calendar button takes focus last; it draws its own ring.
FOCUSED = """() => {
  const el = document.activeElement;
  const pickerButton = el.matches("input[type=date], input[type=datetime-local]")
    && !el.matches(":focus");
  const ringed = getComputedStyle(el).outlineStyle !== "none" || pickerButton;
  return { index: el.dataset.kbd || "", ringed, id: el.id, tag: el.tagName };
}"""


def test_every_control_is_labelled_and_reachable_by_keyboard(
    start_server: Any, open_console: Any, new_app: Any
) -> None:
    creds = new_app()
    server = start_server()
    console = open_console(server)
    page = console.page
    sign_in(console, creds)
    for tab in ("Coverage", "Exports", "Imports", "Schedules"):
        go_to(page, tab)
        page.wait_for_load_state("networkidle")
        found = page.evaluate(KEYBOARD_CHECK)
        assert found["unlabelled"] == [], (tab, found)
        reached: set[str] = set()
        page.locator("body").focus()
        everything = {str(i) for i in range(found["count"])}
        for _ in range(found["count"] * 2 + 30):  # a date input holds several stops
            if reached == everything:
                break
            page.keyboard.press("Tab")
            focused = page.evaluate(FOCUSED)
            if focused["index"]:
                reached.add(focused["index"])
                assert focused["ringed"], (tab, focused)
        assert reached == everything, tab
