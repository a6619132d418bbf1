"""The dashboard in a real browser: Playwright driving Debian's chromium against `b24sync serve`.

Screenshots of every page land in a temporary directory, or in docs/screenshots/ (linked from
the README) with ``make screenshots``, so ``make test`` leaves the tree clean.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from b24emu.server import free_port
from tests.portal import API_KEY, process, running_portal, service_env, wait_healthy

SCREENSHOTS = Path(
    os.environ.get("B24SYNC_SCREENSHOTS") or tempfile.mkdtemp(prefix="b24sync-shots-")
)
CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

playwright_api = pytest.importorskip("playwright.sync_api")
ENGLISH_WORDS = re.compile(
    r"\b(idle|running|queued|success|failed|full|incremental|by_ids|disabled|interrupted|skipped)\b"
)


@pytest.fixture
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.skip(
            f"no chromium at {CHROMIUM}: install Debian's `chromium` package (.ci/run does) "
            "or set CHROMIUM_PATH"
        )
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        yield browser
        browser.close()


def test_dashboard_end_to_end(database_url: str, browser: object) -> None:
    expect = playwright_api.expect
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    counts = {"deal": 800, "contact": 60, "lead": 40, "company": 20}
    with (
        running_portal(counts) as (emu, webhook),
        process("serve", "--port", str(port), env=service_env(database_url, webhook)) as proc,
    ):
        wait_healthy(base, proc)
        context = browser.new_context(  # type: ignore[attr-defined]
            locale="en-US", viewport={"width": 1280, "height": 860}
        )
        page = context.new_page()

        # login: refused, then accepted; the webhook token never shows
        page.goto(base + "/")
        expect(page).to_have_url(base + "/login")
        page.fill("#token", "wrong")
        page.click("#login")
        expect(page.locator("#login-error")).to_be_visible()
        page.screenshot(path=SCREENSHOTS / "login.png")
        page.fill("#token", API_KEY)
        page.click("#login")
        expect(page).to_have_url(base + "/")
        assert "***" in page.inner_text("header") and emu.webhook_token not in page.content()

        # overview: the scheduler's first syncs finish, then a full sync by button reaches 100 %
        deal = page.locator("[data-entity=deal]")
        expect(deal.locator("[data-field=rows]")).to_have_text("800", timeout=30_000)
        expect(deal.locator("[data-field=state]")).to_have_text("idle", timeout=30_000)
        deal.locator("[data-type=full]").click()
        expect(deal.locator("[data-field=progress]")).to_contain_text("success", timeout=30_000)
        expect(deal.locator("[data-field=bar]")).to_have_attribute(
            "style", "width: 100%;", timeout=10_000
        )
        # the card's last run follows without a reload: when, what, how long, result
        expect(deal.locator("[data-field=last-run]")).to_have_text(
            re.compile(r"(now|seconds? ago) · full · \d+\.\d s · success"), timeout=10_000
        )
        when = deal.locator("[data-field=last-run] time")
        expect(when).to_have_attribute("title", re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"))
        expect(page.locator("h2.group")).to_have_text(
            ["CRM objects", "History", "References", "Links and rows"]
        )
        expect(deal.locator("[data-field=error]")).to_be_hidden()
        # a per-parent stream says what its full sync will cost: 800 deals, 50 a call, + listing
        cost = page.locator("[data-entity=deal_productrow] [data-field=cost]")
        expect(cost).to_have_text("A full sync takes API calls: ≈ 18")
        page.screenshot(path=SCREENSHOTS / "overview.png", full_page=True)

        # schedules: change and see the change persist
        page.click("[data-nav=schedules]")
        page.fill("tr[data-entity=deal] [name=interval_minutes]", "45")
        page.uncheck("tr[data-entity=lead] [name=enabled]")
        page.click("#save-schedules")
        expect(page.locator("#schedules-result")).to_have_text("Saved")
        page.reload()
        expect(page.locator("tr[data-entity=deal] [name=interval_minutes]")).to_have_value("45")
        expect(page.locator("tr[data-entity=lead] [name=enabled]")).not_to_be_checked()
        page.screenshot(path=SCREENSHOTS / "schedules.png", full_page=True)

        # runs: the log (syncs; event batches on request), its chart with axes, a run's page
        page.click("[data-nav=runs]")
        expect(page.locator("#runs-table tbody tr").first).to_be_visible()
        assert page.locator("#runs-chart rect").count() >= 5
        expect(page.locator("#runs-chart .records-axis").first).to_be_visible()
        expect(page.locator("#runs-table")).not_to_contain_text("events")
        page.screenshot(path=SCREENSHOTS / "runs.png", full_page=True)
        page.locator("#runs-table tbody tr a").first.click()
        expect(page.locator("#run-detail")).to_contain_text("Records per second")
        expect(page.locator("#run-detail")).to_contain_text("API calls")

        # events: inbound webhook mode: the outbound-webhook steps, nothing that answers 409
        page.click("[data-nav=events]")
        expect(page.locator("#events-mode")).to_have_text("inbound_webhook")
        expect(page.locator("#outbound-steps")).to_contain_text("/api/v1/webhooks/bitrix")
        expect(page.locator("[data-action=register]")).to_have_count(0)
        page.screenshot(path=SCREENSHOTS / "events.png", full_page=True)

        # schema: labels from the portal's metadata
        page.click("[data-nav=schema]")
        expect(page.locator("#schema-table")).to_contain_text("uf_crm_")
        expect(page.locator("#schema-table")).to_contain_text("TITLE")
        page.screenshot(path=SCREENSHOTS / "schema.png", full_page=True)

        # test data: create fills both tables; a second page sees busy; clear empties them
        page.click("[data-nav=testdata]")
        other = context.new_page()
        other.goto(base + "/testdata")
        emu.faults.latency_ms = 250  # 12 batch calls for 300 + 300: about 3 s of busy
        page.fill("#seed-count", "300")
        page.click("#seed-create")
        expect(other.locator("#seed-busy")).to_be_visible(timeout=10_000)
        expect(other.locator("#seed-create")).to_be_disabled()
        # a second click that gets through anyway (a stale page, a script) is refused by the server
        refused = other.evaluate(
            "fetch('/bitrix/webhook/push-to-bitrix?count=1', {method: 'POST'})"
            ".then(async (r) => [r.status, (await r.json()).detail])"
        )
        assert refused[0] == 409 and "busy" in refused[1].lower(), refused
        expect(page.locator("#companies-count")).to_have_text("300", timeout=30_000)
        expect(page.locator("#seed-report")).to_contain_text('"api_calls"')  # kept, no reload
        expect(page.locator("#contacts-table tbody tr")).to_have_count(300)
        expect(page.locator("#companies-table tbody tr").first).to_contain_text(" ")
        expect(other.locator("#seed-create")).to_be_enabled(timeout=10_000)
        emu.faults.latency_ms = 0
        page.screenshot(path=SCREENSHOTS / "testdata.png")
        page.click("#seed-clear")
        expect(page.locator("#contacts-count")).to_have_text("0", timeout=30_000)
        expect(page.locator("#companies-table tbody tr")).to_have_count(0)
        assert len(emu.portal.store("contact").records) == 60  # the portal's own stayed

        # Russian: every page, and no English word for a state, a status or a run type
        page.goto(base + "/?lang=ru")
        expect(page.locator("[data-nav=overview]")).to_have_text("Обзор")
        page.screenshot(path=SCREENSHOTS / "overview-ru.png")
        run_page = page.locator("[data-field=last-run] a").first.get_attribute("href")
        pages = ["/", "/runs", "/runs?events=1", str(run_page), "/schedules", "/events"]
        for path in [*pages, "/schema?entity=status", "/testdata"]:
            page.goto(base + path)
            page.wait_for_timeout(300)  # the live view's first snapshot
            shown = page.inner_text("main")
            assert not ENGLISH_WORDS.search(shown), (path, ENGLISH_WORDS.findall(shown))
        context.close()

        # a phone: no page is wider than the screen
        phone = browser.new_context(locale="ru-RU", viewport={"width": 390, "height": 844})  # type: ignore[attr-defined]
        phone.add_cookies([{"name": "b24sync_token", "value": API_KEY, "url": base}])
        small = phone.new_page()
        for path in ["/", "/runs", "/schedules", "/events", "/schema", "/testdata"]:
            small.goto(base + path)
            width = small.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, (path, width)
        small.screenshot(path=SCREENSHOTS / "overview-phone.png", full_page=True)

        # the API's documentation renders with no internet; the icon is there
        small.goto(base + "/docs")
        expect(small.locator(".swagger-ui .info .title")).to_contain_text("b24sync", timeout=15_000)
        expect(small.locator(".swagger-ui .authorize")).to_be_visible()
        assert small.request.get(base + "/favicon.ico").status == 200
        phone.close()
