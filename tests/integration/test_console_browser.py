"""Issue 17, item 10, end to end in a real headless Chromium (Debian `chromium`,
driven by Playwright with the system browser; nothing is downloaded).

Each person has their own browser context and signs in on the console's page:

- the requester (u-rm, relationship manager, L3) asks for grade A access on the
  "my requests" page and, before the chain completes, sees the grade A customer
  hidden through the gateway;
- the security approver (u-sec1) and then the IT approver (u-it1) approve in the
  approval queue (IT sees the request as "not yours" until security has approved);
- the requester then sees the customer in clear through the gateway, in the same
  browser context (data-path credential as a header), and withheld again (404, as
  if missing: the policy hides grade A records without a grant) once the one-minute
  grant has expired;
- meanwhile u-it1 opens a break-glass and the security admin closes its review;
- the security admin signs off the periodic review and downloads the CSV and JSON
  evidence;
- every page is screenshotted in both languages.

Screenshots go to var/artifacts/console/ (git-ignored); the path is printed.
"""

from __future__ import annotations

import asyncio
import csv
import io
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from gateway.audit.verify import verify_stream
from tests.conftest import CHROMIUM_ARGS, ROOT, OpaProcess, find_chromium
from tests.integration.console_harness import (
    governance_events,
    key_of,
    pick,
    start_console,
    start_opa,
)
from tests.integration.gateway_harness import Gateway
from tests.integration.policy_http_harness import DemoCrm, start_demo_crm

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

UI = "/_gateway/admin/ui"
ARTIFACTS = ROOT / "var" / "artifacts" / "console"
PAGES = ("requests", "approvals", "grants", "break-glass", "review", "users", "live", "policy")


@pytest.fixture(scope="module")
def opa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpaProcess]:
    server = start_opa(tmp_path_factory.mktemp("console-browser") / "rego")
    yield server
    server.stop()


@pytest.fixture
async def crm() -> AsyncIterator[DemoCrm]:
    c = await start_demo_crm(count=60)
    yield c
    await c.stop()


@pytest.fixture
async def gw(
    tmp_path: Path, crm: DemoCrm, opa: OpaProcess, redis_url: str
) -> AsyncIterator[Gateway]:
    g = await start_console(tmp_path, crm, opa, redis_url)
    yield g
    await g.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    executable = find_chromium()  # fails loudly when chromium is missing
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield b
        await b.close()


class Shots:
    def __init__(self, folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        self.folder = folder
        self.taken: list[Path] = []

    async def take(self, page: Page, name: str) -> None:
        path = self.folder / f"{len(self.taken) + 1:02d}-{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)
        with (self.folder / "index.txt").open("a", encoding="utf-8") as index:
            index.write(f"{path.name}\t{page.url}\n")


async def person(
    browser: Browser,
    gw: Gateway,
    who: str,
    lang: str = "zh",
    shots: Shots | None = None,
    **headers: str,
) -> tuple[BrowserContext, Page]:
    """A browser context of its own for `who`, signed in on the login page."""
    context = await browser.new_context(
        extra_http_headers={k.replace("_", "-"): v for k, v in headers.items()} or None,
        locale="zh-CN" if lang == "zh" else "en-GB",
        accept_downloads=True,
    )
    page = await context.new_page()
    await page.goto(f"{gw.url}{UI}/requests")
    assert page.url.startswith(f"{gw.url}{UI}/login")  # no session: the login page
    if shots is not None:
        await shots.take(page, f"login-{lang}")
    await page.fill("[data-field=credential]", key_of(who))
    await page.click("[data-action=login]")
    await page.wait_for_url(f"{gw.url}{UI}/requests")
    assert await page.get_attribute("[data-me]", "data-me") == f"u-{who}"
    return context, page


async def customer_text(page: Page, gw: Gateway, rec: dict[str, Any]) -> tuple[int, str]:
    resp = await page.goto(f"{gw.url}/api/customers/{rec['id']}")
    assert resp is not None
    return resp.status, await page.inner_text("body")


async def open_page(page: Page, gw: Gateway, name: str, lang: str | None = None) -> None:
    suffix = f"?lang={lang}" if lang else ""
    resp = await page.goto(f"{gw.url}{UI}/{name}{suffix}")
    assert resp is not None and resp.status == 200, (name, resp and resp.status)


async def test_console_end_to_end_in_chromium(gw: Gateway, crm: DemoCrm, browser: Browser) -> None:
    shots = Shots(ARTIFACTS)
    print(f"\nconsole screenshots: {ARTIFACTS}")
    a = pick(crm, grade="A", tier="一般")

    # -- the requester asks for grade A on the page --------------------------------
    rm_ctx, rm = await person(
        browser, gw, "rm", shots=shots, X_API_Key=key_of("rm"), X_Purpose="advisory"
    )
    await shots.take(rm, "requests-zh")
    status, before = await customer_text(rm, gw, a)
    # Without the grant the grade A record is withheld whole (the policy's record rule),
    # and a withheld record answers exactly like a missing one (404).
    assert status == 404 and orjson.loads(before)["error"] == "not_found"
    assert a["name"] not in before and a["mobile"] not in before
    await shots.take(rm, "customer-before-grant")

    await open_page(rm, gw, "requests", "en")
    assert "Request access" in await rm.inner_text("h2")
    await rm.select_option("[data-field=grant_type]", "grade_a")
    await rm.fill("[data-field=duration]", "1")
    await rm.select_option("[data-field=unit]", "minutes")
    await rm.fill("[data-field=purpose]", "complaint 2026-118")
    await rm.fill("[data-field=justification]", "customer complaint about a wealth product")
    await rm.click("[data-action=request]")
    await rm.wait_for_selector("[data-done='done.requested']")
    row = rm.locator("[data-table=my-requests] tr[data-request]")
    assert await row.count() == 1
    rid = str(await row.get_attribute("data-request"))
    assert await row.get_attribute("data-state") == "pending"
    await shots.take(rm, "requests-en-submitted")

    # -- IT may not go first; security approves, then IT ---------------------------
    it_ctx, it1 = await person(browser, gw, "it1", "en", shots)
    await open_page(it1, gw, "approvals")
    assert await it1.get_attribute(f"tr[data-request='{rid}']", "data-mine") == "no"
    await shots.take(it1, "approvals-it-waiting")

    sec_ctx, sec1 = await person(browser, gw, "sec1")
    await open_page(sec1, gw, "approvals")
    mine = sec1.locator(f"tr[data-request='{rid}']")
    assert await mine.get_attribute("data-mine") == "yes"
    await mine.locator("input[name=comment]").fill("complaint file checked")
    await shots.take(sec1, "approvals-security")
    await mine.locator("[data-action=approve]").click()
    await sec1.wait_for_selector("[data-done='done.approved']")
    await shots.take(sec1, "approvals-security-done")

    await open_page(it1, gw, "approvals")
    mine = it1.locator(f"tr[data-request='{rid}']")
    assert await mine.get_attribute("data-mine") == "yes"
    await mine.locator("[data-action=approve]").click()
    await it1.wait_for_selector("[data-done='done.approved']")
    assert await it1.locator(f"tr[data-request='{rid}']").count() == 0  # left the queue
    await shots.take(it1, "approvals-it-done")

    # -- the requester sees the grade A customer in clear --------------------------
    await open_page(rm, gw, "grants")
    assert await rm.locator(f"[data-table=active-grants] tr[data-grant='{rid}']").count() == 1
    await shots.take(rm, "grants-active")
    for _ in range(10):  # the grant reaches the gateway's snapshot within a second
        status, shown = await customer_text(rm, gw, a)
        if a["name"] in shown:
            break
        await asyncio.sleep(0.5)
    assert status == 200 and a["name"] in shown and a["mobile"] in shown
    assert orjson.loads(shown)["customer"]["id_number"] == a["id_number"]  # L3: in clear
    await shots.take(rm, "customer-in-clear")

    # -- break-glass opened by IT, reviewed by the security department --------------
    await open_page(it1, gw, "break-glass")
    await it1.fill("[data-field=bg-justification]", "payment outage incident 4711, on call")
    await it1.click("[data-action=break-glass]")
    await it1.wait_for_selector("[data-done='done.break_glass']")
    assert await it1.locator("[data-table=my-break-glass] tr[data-grant]").count() == 1
    await shots.take(it1, "break-glass-opened")

    admin_ctx, admin = await person(browser, gw, "secadmin")
    await open_page(admin, gw, "break-glass")
    task = admin.locator("[data-table=reviews] tr[data-status=open]")
    assert await task.count() == 1
    review_id = str(await task.get_attribute("data-review"))
    await task.locator("[data-field=outcome]").select_option("justified")
    await task.locator("[data-field=notes]").fill("incident ticket matches; access used as stated")
    await shots.take(admin, "break-glass-review")
    await task.locator("[data-action=close-review]").click()
    await admin.wait_for_selector("[data-done='done.review_closed']")
    closed = admin.locator(f"tr[data-review='{review_id}']")
    assert await closed.get_attribute("data-status") == "closed"
    await shots.take(admin, "break-glass-review-closed")

    # -- the periodic review: every line decided, signed off, exported ---------------
    await open_page(admin, gw, "review")
    lines = admin.locator("select[data-decision]")
    n = await lines.count()
    assert n >= 3
    names = [str(await lines.nth(i).get_attribute("data-decision")) for i in range(n)]
    assert f"grant:{rid}" in names and "clearance:u-rm" in names
    for line in names:
        await admin.select_option(f"select[data-decision='{line}']", "confirm")
    await shots.take(admin, "review-checklist")
    await admin.click("[data-action=sign-review]")
    await admin.wait_for_selector("[data-done='done.review_signed']")
    fresh = admin.locator("[data-table=signed-reviews] tr.fresh")
    assert await fresh.count() == 1
    signed_id = str(await fresh.get_attribute("data-signed"))
    await shots.take(admin, "review-signed")
    async with admin.expect_download() as dl_csv:
        await fresh.locator("[data-export=csv]").click()
    csv_path = await (await dl_csv.value).path()
    rows = list(csv.DictReader(io.StringIO(Path(csv_path).read_text(encoding="utf-8"))))
    assert {r["line"] for r in rows} == set(names)
    assert all(r["decision"] == "confirm" and r["outcome"] == "kept" for r in rows)
    async with admin.expect_download() as dl_json:
        await fresh.locator("[data-export=json]").click()
    evidence = orjson.loads(Path(await (await dl_json.value).path()).read_bytes())
    assert evidence["review_id"] == signed_id and evidence["reviewer"] == "u-secadmin"
    assert evidence["summary"]["confirmed"] == len(names) and len(evidence["sha256"]) == 64
    assert evidence["audit_event_uid"]

    # -- every page, in both languages ----------------------------------------------
    for name in PAGES:
        for lang in ("zh", "en"):
            await open_page(admin, gw, name, lang)
            text = await admin.inner_text("body")
            nav = await admin.inner_text(f"[data-nav='{name}']")
            assert nav and nav in text
            assert a["name"] not in text and a["mobile"] not in text  # no customer values
            await shots.take(admin, f"{name}-{lang}")
    await open_page(admin, gw, "live", "en")
    live = await admin.inner_text("body")
    assert "Break-glass access opened" in live  # the alert, as metadata
    assert "request_approved" in live and "u-sec1" in live
    assert str(a["id"]) not in live

    # -- after expiry the requester no longer sees the customer -----------------------
    for _ in range(90):
        status, shown = await customer_text(rm, gw, a)
        if a["name"] not in shown:
            break
        await asyncio.sleep(1)
    assert status == 404 and orjson.loads(shown)["error"] == "not_found"
    assert a["name"] not in shown and a["mobile"] not in shown
    await shots.take(rm, "customer-withheld-after-expiry")
    await open_page(rm, gw, "grants", "en")
    ended = rm.locator(f"[data-table=ended-grants] tr[data-grant='{rid}']")
    assert await ended.get_attribute("data-state") == "expired"
    await shots.take(rm, "grants-expired")

    # -- the audit chain holds the console's actions and still verifies ---------------
    actions = {(e["action"], e["actor"], e["via"]) for e in governance_events(gw)}
    assert ("request_created", "u-rm", "console") in actions
    assert ("request_approved", "u-sec1", "console") in actions
    assert ("request_approved", "u-it1", "console") in actions
    assert ("break_glass_opened", "u-it1", "console") in actions
    assert ("break_glass_reviewed", "u-secadmin", "console") in actions
    assert ("console_signed_in", "u-rm", "console") in actions
    report = await verify_stream(gw.settings)
    assert report.exit_code == 0, report.summary()

    for ctx in (rm_ctx, it_ctx, sec_ctx, admin_ctx):
        await ctx.close()
    assert len(shots.taken) >= 2 * len(PAGES) + 10
    assert all(p.stat().st_size > 1000 for p in shots.taken)
