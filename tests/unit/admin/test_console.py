"""Console pieces without a server: message catalogs, the live view's projection of
audit events (metadata only), sessions' idle and absolute timeouts."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.admin.console.i18n import LANGUAGES, MissingMessage, Translator, catalog
from gateway.admin.console.live import elide, project
from gateway.admin.console.sessions import Sessions
from gateway.audit.event import build_access_event
from gateway.audit.governance import Actor, Change, build_governance_alert, build_governance_event
from gateway.core.model import Subject
from gateway.core.report import EnforcementReport
from gateway.settings.stages import ConsoleSettings
from gateway.state.sessions import MemorySessionStore, digest

TEMPLATES = Path(__file__).resolve().parents[3] / "gateway" / "admin" / "console" / "templates"


def test_both_catalogs_have_the_same_keys_and_every_template_key() -> None:
    zh, en = catalog("zh"), catalog("en")
    assert set(zh) == set(en)
    used: set[str] = set()
    for path in TEMPLATES.glob("*.html"):
        used |= set(re.findall(r"\bt\('([a-z_.-]+)'", path.read_text(encoding="utf-8")))
    fixed = {k for k in used if not k.endswith(".")}
    for lang in LANGUAGES:
        assert fixed <= set(catalog(lang)), sorted(fixed - set(catalog(lang)))
    # The prefixes templates complete at run time have their full sets.
    for prefix, names in {
        "state.": ("pending", "active", "approved", "rejected", "withdrawn", "expired",
                   "revoked", "consumed"),
        "op.": ("view", "modify", "delete", "export"),
        "unit.": ("minutes", "hours", "days"),
        "outcome.": ("justified", "unjustified"),
        "review_status.": ("open", "closed"),
        "lang.": LANGUAGES,
    }.items():  # fmt: skip
        assert {prefix + n for n in names} <= set(en), prefix
    # Chinese is really translated (not the English copied over) for the page titles.
    assert all(zh[k] != en[k] for k in en if k.startswith("nav."))


def test_a_missing_key_is_an_error_not_a_blank() -> None:
    with pytest.raises(MissingMessage):
        Translator("en")("no.such.key")
    assert Translator("zh")("review.summary", confirmed=1, revoked=2, open=3) == (
        "确认 1，撤销 2，待定 3"
    )


def _access_event() -> dict[str, Any]:
    rep = EnforcementReport()
    rep.add_record("C000010", "A", "VIP")
    rep.add_field("mobile", "L3", "masked", 1)
    rep.add_field("name", "L2", "clear", 1)
    return build_access_event(
        request_id="req-1",
        subject_dict={
            **Subject(id="u-7", roles=("sales",), clearance="L3").to_policy(),
            "ip": "10.1.2.3",
        },
        request_dict={"method": "GET", "route": "/api/customers/C000010/notes/123456"},
        decision_dict={"allow": True, "reason": "role sales", "revision": "rev-9"},
        report_dict=rep.to_audit(),
        status=200,
        latency_ms=3.0,
        now=1_700_000_000.0,
    )


def test_live_rows_hold_metadata_and_no_record_ids() -> None:
    event = _access_event()
    assert "C000010" in orjson.dumps(event).decode()  # the trail has the record id...
    row = project(event)
    assert row is not None and row["kind"] == "access"
    assert "C000010" not in orjson.dumps(row).decode()  # ... the console row does not
    assert row["route"] == "/api/customers/…/notes/…"
    assert (row["actor"], row["outcome"], row["records_seen"]) == ("u-7", "allow_masked", 1)
    assert row["fields_clear"] == "L2:1" and row["fields_masked"] == "L3:1"
    released = _access_event()
    released["unmapped"]["crm"]["phase"] = "release"  # durable copy before the data left
    assert project(released) is None  # one row per request: the final event's


def test_live_rows_for_governance_events_and_alerts() -> None:
    actor = Actor(id="u-sec1", department="security", via="console")
    gov = project(build_governance_event(Change("request_approved", actor, subject="u-rm",
                                                reason="ok")))  # fmt: skip
    assert gov is not None
    assert gov == {**gov, "kind": "governance", "action": "request_approved",
                   "actor": "u-sec1", "subject": "u-rm"}  # fmt: skip
    alert = project(build_governance_alert("break_glass", subject="u-it1", message="bg by u-it1",
                                           uid="x"))  # fmt: skip
    assert alert is not None and alert["kind"] == "alert"
    assert alert["title"] == "Break-glass access opened"
    assert project({"class_uid": 9999, "unmapped": {}}) is None  # seals and others: no row


def test_elide_keeps_route_words_only() -> None:
    assert elide("/api/customers/C000123") == "/api/customers/…"
    assert elide("/api/v1/customers") == "/api/v1/customers"
    assert elide("/x/0123456789abcdef0123") == "/x/…"


async def test_sessions_end_after_idle_and_absolute_timeouts() -> None:
    store = MemorySessionStore()
    subject = Subject(id="u-1", auth_method="api_key", attributes={"credential_id": "k-1"})
    sessions = Sessions(store, ConsoleSettings(session_idle=0.3, session_max=0.9))
    s = await sessions.start(subject)
    assert len(s.id) >= 40 and s.id != s.csrf and s.credential_id == "k-1"
    assert digest(s.id) != s.id  # the store is keyed by a digest, never the cookie value
    for _ in range(3):  # used within the idle timeout: alive
        await asyncio.sleep(0.15)
        assert await sessions.resolve(s.id) is not None
    await asyncio.sleep(0.5)  # past the 0.9 s absolute limit whatever the use
    assert await sessions.resolve(s.id) is None
    s2 = await sessions.start(subject)
    await asyncio.sleep(0.4)  # unused past the idle timeout
    assert await sessions.resolve(s2.id) is None
    assert await sessions.resolve("") is None and await sessions.resolve("x" * 500) is None
    assert s.csrf_ok(s.csrf) and not s.csrf_ok("") and not s.csrf_ok(s.csrf[:-1])
