"""The web UI in Debian's chromium (Playwright, /usr/bin/chromium) against a real node: dashboard,
form and validation message, the schedule read back as it is typed, times in the job's zone,
live output, kill, toggle, delete, screenshots, and a clean console (but for the browser's own
log lines of the 400s the tests provoke on purpose)."""

import re
import shutil
import time

import pytest
import requests
from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
# Flags for this machine's closed network: no background requests, no sandbox as root.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PROVOKED = "Failed to load resource: the server responded with a status of 400 (Bad Request)"
TICKER = "for i in 1 2 3 4 5 6; do echo tick$i; sleep 0.5; done"


class Console:
    """Every console error and uncaught page error, with whether a 400 was being provoked; a test
    that provokes one counts it in `provoked`."""

    def __init__(self):
        self.errors, self.provoking, self.provoked = [], False, 0

    def on_console(self, msg):
        if msg.type == "error":
            self.errors.append((msg.text, self.provoking))

    def on_page_error(self, err):
        self.errors.append((f"uncaught: {err}", False))

    def unexpected(self):
        allowed = [e for e in self.errors if e == (PROVOKED, True)]
        return [e for e in self.errors if e not in allowed] + allowed[self.provoked:]


@pytest.fixture(scope="module")
def console():
    return Console()


@pytest.fixture(scope="module")
def page(node, console, tmp_path_factory):
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"the UI tests need Debian's chromium at {CHROMIUM} (scripts/test installs it as root)")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, args=FLAGS, headless=True,
            viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.on("console", console.on_console)
        page.on("pageerror", console.on_page_error)
        page.on("dialog", lambda dialog: dialog.accept())  # the UI confirms deletes with window.confirm
        try:
            yield page
        finally:
            context.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    return tmp_path_factory.mktemp("screenshots")


def api_job(node, name, command, **extra):
    body = {"name": name, "schedule": "@manually", "executor": "shell",
            "executor_config": {"shell": "true", "command": command}, **extra}
    assert requests.post(f"{node.api()}/v1/jobs", json=body, timeout=10).status_code == 201


def test_dashboard_shows_jobs_leader_and_members(node, page, shots):
    api_job(node, "ui-hello", "echo hello", displayname="Hello from the UI test")
    assert requests.post(f"{node.api()}/v1/jobs/ui-hello", timeout=10).status_code == 202
    page.goto(f"{node.api()}/")  # Dkron's redirect for browsers
    assert page.url.endswith("/ui/")
    row = page.locator("#job-table tr[data-job='ui-hello']")
    row.locator(".badge.success").wait_for()  # the run finished and the dashboard refreshed itself
    assert "Hello from the UI test" in row.inner_text()
    assert page.locator("[data-card='Leader'] b").inner_text() == "s1"
    assert page.locator("#member-table tr[data-member='s1']").inner_text().count("alive") == 1
    page.screenshot(path=str(shots / "dashboard.png"), full_page=True)
    assert (shots / "dashboard.png").stat().st_size > 10_000


def test_the_form_shows_the_apis_validation_message_then_creates_a_job_that_runs_live(node, page, console, shots):
    page.click("#new-job")
    page.fill("#f-name", "UI Job")
    page.fill("#f-schedule", "@manually")
    page.fill("#f-executor_config", '{"shell": "true", "command": "%s"}' % TICKER)
    console.provoking, console.provoked = True, console.provoked + 1
    page.click("#save")
    page.locator("#form-error:not([hidden])").wait_for()
    assert "illegal character" in page.inner_text("#form-error")  # the server's own words
    page.fill("#f-name", "ui-ticker")
    console.provoking = False  # after a round trip to the page: its log of the 400 has arrived
    page.click("#save")
    page.locator("#job-name", has_text="ui-ticker").wait_for()
    page.click("#run")
    live = page.locator("#live-output")
    live.wait_for()
    page.wait_for_function("document.querySelector('#live-output').textContent.includes('tick1')")
    # Live: the first lines are on screen while the run is still going.
    assert page.locator("#live-status .badge.running").count() == 1
    assert "tick6" not in live.inner_text()
    page.screenshot(path=str(shots / "job-running.png"), full_page=True)
    page.locator("#live-status .badge.success").wait_for()
    assert live.inner_text().split() == [f"tick{i}" for i in range(1, 7)]
    page.locator("#execution-table tr[data-status='success']").wait_for()
    page.locator("#execution-table .show-output").first.click()
    assert "tick6" in page.locator("#execution-table .output-row").inner_text()
    assert page.locator("#chart rect.success").count() == 1
    page.screenshot(path=str(shots / "job.png"), full_page=True)
    assert (shots / "job.png").stat().st_size > 10_000


def test_a_long_run_is_killed_from_its_page(node, page):
    api_job(node, "ui-sleeper", "echo going to sleep; sleep 60")
    page.goto(f"{node.api()}/ui/#/jobs/ui-sleeper")
    page.click("#run")
    page.wait_for_function("(document.querySelector('#live-output') || {}).textContent?.includes('going to sleep')")
    started = time.monotonic()
    page.click("#kill")
    page.locator("#live-status .badge.killed").wait_for()
    assert time.monotonic() - started < 50  # ended by the kill, not by the 60 s sleep
    page.locator("#execution-table tr[data-status='killed']").wait_for()


def test_edit_keeps_the_name_and_saves_through_put(node, page):
    page.goto(f"{node.api()}/ui/#/jobs/ui-hello")
    page.click("#edit")
    page.locator("#f-name[readonly]").wait_for()
    page.wait_for_function("document.querySelector('#f-displayname').value === 'Hello from the UI test'")
    page.fill("#f-displayname", "Edited in the browser")
    page.click("#save")
    page.locator("dd[data-field='displayname']", has_text="Edited in the browser").wait_for()
    assert requests.get(f"{node.api()}/v1/jobs/ui-hello", timeout=10).json()["displayname"] == "Edited in the browser"


def test_toggle_then_delete(node, page):
    page.goto(f"{node.api()}/ui/#/jobs/ui-hello")
    toggle = page.locator("#toggle")
    toggle.wait_for()
    page.locator("#toggle", has_text="Disable").wait_for()
    toggle.click()
    page.locator("#toggle", has_text="Enable").wait_for()
    assert page.inner_text("dd[data-field='disabled']") == "true"
    assert requests.get(f"{node.api()}/v1/jobs/ui-hello", timeout=10).json()["disabled"] is True
    page.click("#delete")  # window.confirm is accepted by the fixture
    page.locator("#job-table").wait_for()
    page.locator("#job-table tr[data-job='ui-ticker']").wait_for()
    assert page.locator("#job-table tr[data-job='ui-hello']").count() == 0
    assert requests.get(f"{node.api()}/v1/jobs/ui-hello", timeout=10).status_code == 404


def test_the_form_reads_the_schedule_back_as_it_is_typed(node, page, console, shots):
    page.goto(f"{node.api()}/ui/#/new")
    page.fill("#f-name", "ui-preview")
    page.fill("#f-timezone", "America/New_York")
    page.fill("#f-schedule", "*/15 * * * *")
    page.locator("#schedule-words", has_text="Every 15 minutes (America/New_York time)").wait_for()
    assert page.locator("#schedule-next li").count() == 5
    first = page.locator("#schedule-next time").first
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:(00|15|30|45):00 E[SD]T", first.inner_text())
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:00\.000Z \(UTC\)", first.get_attribute("title"))
    assert "real time" in page.inner_text("#schedule-dst")
    page.fill("#f-schedule", "0 30 9 ? * MON#2")  # the day forms, in words
    page.locator("#schedule-words", has_text="on the second Monday of the month").wait_for()
    assert "wall clock" in page.inner_text("#schedule-dst")
    console.provoking, console.provoked = True, console.provoked + 1
    page.fill("#f-schedule", "0 0 0 32 * *")
    page.locator("#schedule-error").wait_for()  # the API's 400, in the parser's words
    assert page.inner_text("#schedule-error") == \
        "can't parse job schedule '0 0 0 32 * *': day-of-month: 32 is out of range 1-31"
    assert page.locator("#schedule-next").count() == 0
    page.screenshot(path=str(shots / "schedule-error.png"), full_page=True)
    page.fill("#f-schedule", "@daily")
    page.locator("#schedule-words", has_text="At 00:00").wait_for()
    console.provoking = False  # after a round trip: the browser's log of the 400 has arrived
    page.screenshot(path=str(shots / "schedule-preview.png"), full_page=True)
    assert requests.get(f"{node.api()}/v1/jobs/ui-preview", timeout=10).status_code == 404  # nothing was saved


def test_times_show_in_the_jobs_zone_with_each_runs_lateness_and_jitter(node, page, shots):
    api_job(node, "ui-tokyo", "true", schedule="*/2 * * * * *", timezone="Asia/Tokyo", jitter="300ms")
    try:
        page.goto(f"{node.api()}/ui/#/jobs/ui-tokyo")
        page.locator("#job-zone", has_text="Times in Asia/Tokyo (UTC on hover)").wait_for()
        row = page.locator("#execution-table tr[data-status='success']").first
        row.wait_for()
        scheduled = row.locator("td.scheduled time")
        assert scheduled.inner_text().endswith("GMT+9") and scheduled.get_attribute("title").endswith("Z (UTC)")
        assert re.fullmatch(r"-?\d+ ms|-?\d+\.\d+ s", row.locator("td.late").inner_text())
        ran = [x for x in requests.get(f"{node.api()}/v1/jobs/ui-tokyo/executions", timeout=10).json()
               if x["id"] == row.get_attribute("data-execution")][0]
        assert 0 <= ran["jitter_ms"] < 300 and row.locator("td.jitter").inner_text() == f"{ran['jitter_ms']} ms"
        assert page.locator("dd[data-field='next'] time").inner_text().endswith("GMT+9")
        page.screenshot(path=str(shots / "job-zone.png"), full_page=True)
        page.goto(f"{node.api()}/ui/#/")
        assert page.locator("#job-table tr[data-job='ui-tokyo'] td.next time").inner_text().endswith("GMT+9")
    finally:
        requests.delete(f"{node.api()}/v1/jobs/ui-tokyo", timeout=10)


def test_a_failed_attempt_shows_when_its_retry_is_due_and_the_counters_show_skips(node, page):
    api_job(node, "ui-retry", "exit 4", retries=1, retry_interval="10m")
    assert requests.post(f"{node.api()}/v1/jobs/ui-retry", timeout=10).status_code == 202
    page.goto(f"{node.api()}/ui/#/jobs/ui-retry")
    pending = page.locator("#execution-table tr[data-status='failed'] .retry-at")
    pending.wait_for()
    assert pending.inner_text().startswith("retry at ")
    assert page.locator("dd[data-field='skipped_count']").inner_text() == "0"
    assert page.locator("dd[data-field='max_retry_interval']").inner_text() == "1h"


def test_the_console_shows_no_errors(console):
    assert (PROVOKED, True) in console.errors, "the provoked 400s were not seen: is the console watched at all?"
    assert not console.unexpected(), console.errors
