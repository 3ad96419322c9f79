"""Migrate and seed a BottleCRM database for end-to-end tests; print what was seeded as JSON.

Runs inside the BottleCRM virtualenv (Python 3.12) with
DJANGO_SETTINGS_MODULE=settings_sqlite and BOTTLECRM_DATA_DIR set. Orgs, users,
memberships and personal access tokens are made with the ORM (BottleCRM only
mints tokens for signed-in users); customer records go through BottleCRM's own
REST API in-process (django.test.Client), so its validation and normalisation
apply exactly as they would for a real client.

Customer values come from the gateway's demo generator (gateway/demo/data.py,
standard library only), so they carry valid resident-ID check digits, valid
Luhn card numbers and real mobile segments.

Where the PII goes in BottleCRM (it has no ID-number field):
- contact/lead `custom_fields.id_number` (身份证号码), `custom_fields.bank_card`
  (银行卡号), `custom_fields.annual_income` (年收入): per-org custom fields
  defined here through `POST /api/custom-fields/`;
- record facts for the gateway's policy, also custom fields: `grade` (A/B/C),
  `tier` (VIP/重要/一般/潜在/流失), `owner` (the relationship manager's gateway
  employee id, e.g. u-sales-01) and `consent_marketing` (checkbox);
- `phone` (mobile), `email`, `address_line`/`city`/`state`/`postcode`/`country`;
- `description` (shown as "Notes"): free text quoting the mobile and ID number;
- `organization` (contact employer) / `company_name` (lead).

Stdout carries exactly one JSON document; progress goes to stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

import django  # noqa: E402

django.setup()

from common.models import Org, PersonalAccessToken, Profile, User  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

from gateway.demo.data import Customer, generate_customers, surname_of  # noqa: E402

ORG_NAME = "华信财富管理有限公司"
OTHER_ORG_NAME = "东方远景投资咨询有限公司"
SEED = int(os.environ.get("BOTTLECRM_SEED", "11"))
CONTACTS = 12
LEADS = 5
ACCOUNTS = 3
# Contacts assigned to the sales user (a USER sees only what is assigned to them).
SALES_CONTACTS = 6


def _choices(*values: str) -> list[dict[str, str]]:
    return [{"value": v, "label": v} for v in values]


# (key, label, type, dropdown options). grade/tier/owner/consent_marketing are the
# record facts the gateway's policy reads (config/crm/bottlecrm.yaml `record:`).
CUSTOM_FIELDS: tuple[tuple[str, str, str, list[dict[str, str]] | None], ...] = (
    ("id_number", "身份证号码", "text", None),
    ("bank_card", "银行卡号", "text", None),
    ("annual_income", "年收入", "number", None),
    ("grade", "客户信息等级", "dropdown", _choices("A", "B", "C")),
    ("tier", "客户层级", "dropdown", _choices("VIP", "重要", "一般", "潜在", "流失")),
    ("owner", "客户经理工号", "text", None),
    ("consent_marketing", "同意营销", "checkbox", None),
)


def log(message: str) -> None:
    print(f"seed: {message}", file=sys.stderr, flush=True)


def make_org(name: str) -> Org:
    return Org.objects.create(
        name=name,
        company_name=name,
        default_currency="CNY",
        default_country="CN",
        timezone="Asia/Shanghai",
    )


def make_member(org: Org, email: str, name: str, *, admin: bool) -> tuple[Profile, str]:
    """A user with one membership in `org` and an unrestricted personal access token."""
    user = User.objects.create_user(email=email, password=None, name=name)
    profile = Profile.objects.create(
        user=user,
        org=org,
        role="ADMIN" if admin else "USER",
        is_organization_admin=admin,
        has_sales_access=True,
        has_marketing_access=admin,
    )
    raw, _pat = PersonalAccessToken.generate(profile=profile, name="e2e")
    return profile, raw


class Api:
    """BottleCRM's REST API, called in-process with a personal access token."""

    def __init__(self, token: str) -> None:
        self._client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {token}")

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        resp = self._client.post(path, data=json.dumps(body), content_type="application/json")
        payload = resp.json()
        if resp.status_code not in (200, 201) or payload.get("error") is True:
            raise RuntimeError(f"POST {path} -> {resp.status_code}: {payload}")
        return dict(payload)

    def get(self, path: str) -> dict[str, Any]:
        resp = self._client.get(path)
        if resp.status_code != 200:
            raise RuntimeError(f"GET {path} -> {resp.status_code}: {resp.content[:300]!r}")
        return dict(resp.json())


def split_address(customer: Customer) -> dict[str, str]:
    """BottleCRM's address columns from the demo's one-line Chinese address."""
    text = customer["address"]
    # Province (省/市) then city then district; municipalities repeat the city name.
    province_end = text.find("省", 0, 5)
    if province_end < 0:
        province_end = text.find("市")
    province = text[: province_end + 1]
    rest = text[province_end + 1 :]
    city = province
    if "市" in rest[:5]:
        city_end = rest.find("市")
        city, rest = rest[: city_end + 1], rest[city_end + 1 :]
    return {
        "address_line": rest,
        "city": city,
        "state": province,
        "postcode": "100000",
        "country": "CN",
    }


def person_fields(customer: Customer) -> dict[str, Any]:
    surname = surname_of(customer["name"])
    return {
        "last_name": surname,
        "first_name": customer["name"][len(surname) :],
        "email": customer["email"],
        "phone": customer["mobile"],
        "description": (
            f"客户{customer['name']}，手机{customer['mobile']}，"
            f"身份证号{customer['id_number']}。{customer['notes']}"
        ),
        "custom_fields": {
            "id_number": customer["id_number"],
            "bank_card": customer["bank_card"],
            "annual_income": customer["annual_income"],
            "grade": customer["grade"],
            "tier": customer["tier"],
            "owner": customer["owner"],
            "consent_marketing": customer["consent"]["marketing"],
        },
        **split_address(customer),
    }


def seeded_row(
    kind: str, record_id: str, customer: Customer, body: dict[str, Any]
) -> dict[str, Any]:
    return {
        "kind": kind,
        "id": record_id,
        "source_id": customer["id"],
        "name": customer["name"],
        "id_number": customer["id_number"],
        "mobile": customer["mobile"],
        "bank_card": customer["bank_card"],
        "annual_income": customer["annual_income"],
        "grade": customer["grade"],
        "tier": customer["tier"],
        "owner": customer["owner"],
        "consent_marketing": customer["consent"]["marketing"],
        "email": body["email"],
        "last_name": body.get("last_name"),
        "first_name": body.get("first_name"),
        "address_line": body["address_line"],
        "city": body["city"],
        "state": body["state"],
        "description": body["description"],
    }


def seed_org(
    admin_token: str,
    sales_profile: Profile | None,
    customers: list[Customer],
    *,
    n_contacts: int,
    n_leads: int,
    n_accounts: int,
) -> dict[str, list[dict[str, Any]]]:
    api = Api(admin_token)
    for target in ("Contact", "Lead"):
        for order, (key, label, field_type, options) in enumerate(CUSTOM_FIELDS):
            definition: dict[str, Any] = {
                "target_model": target,
                "key": key,
                "label": label,
                "field_type": field_type,
                "display_order": order,
            }
            if options:
                definition["options"] = options
            api.post("/api/custom-fields/", definition)
    contacts: list[dict[str, Any]] = []
    pool = iter(customers)
    for i in range(n_contacts):
        customer = next(pool)
        body = person_fields(customer)
        body["organization"] = customer["employer"]
        body["title"] = "客户"
        if sales_profile is not None and i < SALES_CONTACTS:
            body["assigned_to"] = [str(sales_profile.id)]
        created = api.post("/api/contacts/", body)
        row = seeded_row("contact", created["id"], customer, body)
        row["assigned_to_sales"] = "assigned_to" in body
        contacts.append(row)
    leads: list[dict[str, Any]] = []
    for _ in range(n_leads):
        customer = next(pool)
        body = person_fields(customer)
        body["title"] = f"{customer['name']} 理财咨询"
        body["company_name"] = customer["employer"]
        body["status"] = "assigned"
        if sales_profile is not None:
            body["assigned_to"] = [str(sales_profile.id)]
        created = api.post("/api/leads/", body)
        leads.append(seeded_row("lead", created["id"], customer, body))
    accounts: list[dict[str, Any]] = []
    for i in range(n_accounts):
        customer = next(pool)
        linked = [c["id"] for c in contacts[i * 2 : i * 2 + 2]]
        body = {
            "name": customer["employer"],
            "email": customer["email"],
            "phone": customer["landline"].replace("-", ""),
            "industry": "FINANCE",
            "description": f"对接人{customer['name']}，手机{customer['mobile']}。",
            "contacts": linked,
            **split_address(customer),
        }
        created = api.post("/api/accounts/", body)
        accounts.append(
            {
                "kind": "account",
                "id": created["id"],
                "name": body["name"],
                "email": body["email"],
                "phone": body["phone"],
                "contact_person": customer["name"],
                "mobile": customer["mobile"],
                "description": body["description"],
                "contacts": linked,
                "address_line": body["address_line"],
                "city": body["city"],
                "state": body["state"],
            }
        )
    deals = seed_deals(api, contacts, accounts) if accounts else []
    return {"contacts": contacts, "leads": leads, "accounts": accounts, "opportunities": deals}


def seed_deals(
    api: Api, contacts: list[dict[str, Any]], accounts: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """One deal per account, naming its first contact and quoting their mobile."""
    pipeline = api.get("/api/opportunities/pipelines/")["pipelines"][0]["id"]
    deals: list[dict[str, Any]] = []
    for account in accounts:
        contact = next(c for c in contacts if c["id"] in account["contacts"])
        body = {
            "name": f"{contact['name']} 基金定投",
            "pipeline": pipeline,
            "account": account["id"],
            "contacts": [contact["id"]],
            "amount": "500000",
            "currency": "CNY",
            "probability": 50,
            "description": f"客户{contact['name']}手机{contact['mobile']}，意向金额50万元。",
        }
        created = api.post("/api/opportunities/", body)
        deals.append(
            {
                "kind": "opportunity",
                "id": created["id"],
                "name": body["name"],
                "account": account["id"],
                "contact": contact["id"],
                "mobile": contact["mobile"],
                "description": body["description"],
            }
        )
    return deals


def migrate() -> None:
    """Apply BottleCRM's ~240 migrations, reusing a migrated template when there is one.

    Migrating from scratch costs about 100 s of CPU on SQLite; copying a template
    that was migrated once per virtualenv makes every later session start in seconds.
    """
    db = Path(settings.DATABASES["default"]["NAME"])
    template = os.environ.get("BOTTLECRM_TEMPLATE_DB")
    if template and Path(template).is_file() and not db.exists():
        log(f"copying migrated template {template}")
        shutil.copyfile(template, db)
    log("migrating")
    call_command("migrate", verbosity=0, interactive=False)
    if template and not Path(template).is_file():
        partial = Path(f"{template}.{os.getpid()}.tmp")
        shutil.copyfile(db, partial)
        partial.replace(template)
        log(f"saved migrated template {template}")


def main() -> dict[str, Any]:
    migrate()
    customers = generate_customers(SEED, CONTACTS + LEADS + ACCOUNTS + 10)

    org = make_org(ORG_NAME)
    admin, admin_token = make_member(org, "admin@huaxin-wealth.example", "管理员", admin=True)
    sales, sales_token = make_member(org, "sales@huaxin-wealth.example", "销售一", admin=False)
    log("seeding records through the REST API")
    records = seed_org(
        admin_token, sales, customers, n_contacts=CONTACTS, n_leads=LEADS, n_accounts=ACCOUNTS
    )

    other = make_org(OTHER_ORG_NAME)
    _, other_token = make_member(other, "admin@dongfang-vision.example", "东方管理员", admin=True)
    other_records = seed_org(
        other_token, None, customers[-3:], n_contacts=3, n_leads=0, n_accounts=0
    )

    # Read back through the API: normalised values (e.g. phone) are what tests will see.
    stored = Api(admin_token).get(f"/api/contacts/?limit={CONTACTS + 10}")["results"]
    phones = {row["id"]: row["phone"] for row in stored}
    for row in records["contacts"]:
        row["phone"] = phones[row["id"]]

    return {
        "org": {"id": str(org.id), "name": org.name, "api_key": org.api_key},
        "users": {
            "admin": {"email": admin.user.email, "profile_id": str(admin.id), "role": "ADMIN"},
            "sales": {"email": sales.user.email, "profile_id": str(sales.id), "role": "USER"},
        },
        "tokens": {"admin": admin_token, "sales": sales_token, "other_admin": other_token},
        "other_org": {
            "id": str(other.id),
            "name": other.name,
            "contacts": other_records["contacts"],
        },
        "custom_fields": [key for key, _, _, _ in CUSTOM_FIELDS],
        **records,
    }


if __name__ == "__main__":
    # BottleCRM prints to stdout (console e-mail, migration notes): keep stdout for the JSON.
    with contextlib.redirect_stdout(sys.stderr):
        seeded = main()
    json.dump(seeded, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")
    log("done")
