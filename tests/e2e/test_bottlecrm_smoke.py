"""BottleCRM itself, called directly: the e2e fixture serves the seeded records.

These pin the upstream behaviour the gateway's catalog (config/crm/bottlecrm.yaml)
relies on: where records sit in each body and which keys hold the seeded PII.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import BottleCRM

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]


def _by_id(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in rows}


def test_health_needs_no_credential(bottlecrm: BottleCRM) -> None:
    assert bottlecrm.request("GET", "/healthz/").status == 200


def test_contacts_list_returns_seeded_pii(bottlecrm: BottleCRM) -> None:
    seeded = bottlecrm.seeded["contacts"]
    reply = bottlecrm.request("GET", "/api/contacts/?limit=100", token=bottlecrm.tokens["admin"])
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/json")
    body = reply.json()
    assert body["count"] == len(seeded)
    rows = _by_id(body["results"])
    # The same rows are repeated under contact_obj_list.
    assert _by_id(body["contact_obj_list"]).keys() == rows.keys()
    for want in seeded:
        got = rows[want["id"]]
        assert (got["last_name"], got["first_name"]) == (want["last_name"], want["first_name"])
        assert got["email"] == want["email"]
        assert got["phone"] == want["mobile"]
        assert got["phone_e164"] == "+86" + want["mobile"]
        assert got["custom_fields"]["id_number"] == want["id_number"]
        assert got["custom_fields"]["bank_card"] == want["bank_card"]
        assert got["custom_fields"]["grade"] == want["grade"]
        assert got["custom_fields"]["tier"] == want["tier"]
        assert got["custom_fields"]["owner"] == want["owner"]
        assert got["custom_fields"]["consent_marketing"] is want["consent_marketing"]
        assert got["address_line"] == want["address_line"]
        assert want["id_number"] in got["description"]
        assert got["org"]["name"] == "华信财富管理有限公司"


def test_sales_user_sees_only_assigned_contacts(bottlecrm: BottleCRM) -> None:
    assigned = {c["id"] for c in bottlecrm.seeded["contacts"] if c["assigned_to_sales"]}
    reply = bottlecrm.request("GET", "/api/contacts/?limit=100", token=bottlecrm.tokens["sales"])
    assert reply.status == 200
    assert set(_by_id(reply.json()["results"])) == assigned


def test_contact_detail_shape(bottlecrm: BottleCRM) -> None:
    want = bottlecrm.seeded["contacts"][0]
    reply = bottlecrm.request(
        "GET", f"/api/contacts/{want['id']}/", token=bottlecrm.tokens["admin"]
    )
    assert reply.status == 200
    obj = reply.json()["contact_obj"]
    assert obj["custom_fields"]["id_number"] == want["id_number"]
    assert obj["phone"] == want["mobile"]


def test_leads_and_accounts_are_where_the_catalog_expects(bottlecrm: BottleCRM) -> None:
    token = bottlecrm.tokens["admin"]
    leads = bottlecrm.request("GET", "/api/leads/?limit=100", token=token).json()
    open_leads = _by_id(leads["open_leads"]["open_leads"])
    for want in bottlecrm.seeded["leads"]:
        assert open_leads[want["id"]]["custom_fields"]["id_number"] == want["id_number"]
        assert open_leads[want["id"]]["phone"] == want["mobile"]
    accounts = bottlecrm.request("GET", "/api/accounts/?limit=100", token=token).json()
    open_accounts = _by_id(accounts["active_accounts"]["open_accounts"])
    for want in bottlecrm.seeded["accounts"]:
        assert open_accounts[want["id"]]["email"] == want["email"]
    deals = bottlecrm.request("GET", "/api/opportunities/?limit=100", token=token).json()
    rows = _by_id(deals["opportunities"])
    for want in bottlecrm.seeded["opportunities"]:
        assert want["mobile"] in rows[want["id"]]["description"]
        assert [c["id"] for c in rows[want["id"]]["contacts"]] == [want["contact"]]


def test_credentials_and_tenants_are_enforced(bottlecrm: BottleCRM) -> None:
    assert bottlecrm.request("GET", "/api/contacts/").status == 403
    assert bottlecrm.request("GET", "/api/contacts/", token="bcrm_pat_unknown").status == 403
    ours = bottlecrm.seeded["contacts"][0]["id"]
    other = bottlecrm.tokens["other_admin"]
    assert bottlecrm.request("GET", f"/api/contacts/{ours}/", token=other).status == 404
    theirs = bottlecrm.request("GET", "/api/contacts/?limit=100", token=other).json()
    assert {r["id"] for r in theirs["results"]} == {
        c["id"] for c in bottlecrm.seeded["other_org"]["contacts"]
    }


def test_writes_go_through(bottlecrm: BottleCRM) -> None:
    token = bottlecrm.tokens["admin"]
    created = bottlecrm.request(
        "POST",
        "/api/contacts/",
        token=token,
        body={"first_name": "测试", "last_name": "周", "phone": "13800138000",
              "custom_fields": {"id_number": "11010519491231002X"}},
    )  # fmt: skip
    assert created.status in (200, 201)
    new_id = created.json()["id"]
    reply = bottlecrm.request("GET", f"/api/contacts/{new_id}/", token=token)
    assert reply.json()["contact_obj"]["custom_fields"]["id_number"] == "11010519491231002X"
    assert bottlecrm.request("DELETE", f"/api/contacts/{new_id}/", token=token).status in (200, 204)
