"""Renderings of a customer page the way an old in-house CRM answers: SOAP-style XML,
JSONP, a GBK CSV export and a household export whose family column packs several
people into one cell (the demo CRM's /api/legacy/* routes).

They carry exactly the records the JSON API carries, so tests can check that the
gateway drops the same records whatever the format.
"""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any
from xml.sax.saxutils import escape, quoteattr

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
CRM_NS = "urn:demo-crm:customers"
_CALLBACK = re.compile(r"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*")


def _value(value: Any) -> str:
    if value is True or value is False:
        return "true" if value else "false"
    return escape(str(value))


def _customer_xml(customer: dict[str, Any]) -> str:
    parts = [f"<c:Customer id={quoteattr(str(customer['id']))}>"]
    for key, value in customer.items():
        if key == "id":
            continue
        if key == "holdings":
            rows = "".join(
                "<c:holding>"
                + "".join(f"<c:{k}>{_value(v)}</c:{k}>" for k, v in h.items())
                + "</c:holding>"
                for h in value
            )
            parts.append(f"<c:holdings>{rows}</c:holdings>")
        elif key == "consent":
            attrs = " ".join(f"{k}={quoteattr(_value(v))}" for k, v in value.items())
            parts.append(f"<c:consent {attrs}/>")
        else:
            parts.append(f"<c:{key}>{_value(value)}</c:{key}>")
    parts.append("</c:Customer>")
    return "".join(parts)


def soap_page(page: dict[str, Any], encoding: str = "GBK") -> str:
    """`GetCustomersResponse` in a SOAP 1.1 envelope; the charset is named only in the
    XML declaration, as such services do."""
    customers = "".join(_customer_xml(c) for c in page["results"])
    return (
        f'<?xml version="1.0" encoding="{encoding}"?>\n'
        f'<soap:Envelope xmlns:soap="{SOAP_NS}" xmlns:c="{CRM_NS}"><soap:Body>'
        f"<c:GetCustomersResponse><c:total>{page['count']}</c:total>"
        f"<c:page>{page['page']}</c:page><c:pageSize>{page['page_size']}</c:pageSize>"
        f"{customers}</c:GetCustomersResponse></soap:Body></soap:Envelope>"
    )


def jsonp_page(page: dict[str, Any], callback: str | None) -> str | None:
    """`callback({...});`, or None for a callback name that is not a JS identifier path."""
    name = callback or "callback"
    if not _CALLBACK.fullmatch(name):
        return None
    return f"/**/{name}({json.dumps(page, ensure_ascii=False)});"


def csv_export(columns: list[str], rows: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return out.getvalue()


HOUSEHOLD_COLUMNS = ["客户编号", "姓名", "等级", "层级", "客户经理", "家庭成员"]


def household_row(customer: dict[str, Any], members: list[tuple[str, str, str]]) -> list[str]:
    """One customer and the family contacts flattened into one cell, as such exports
    do: `王芳/配偶/13912345678；王小明/子女/13800001111`."""
    family = "；".join("/".join(m) for m in members)
    return [
        str(customer["id"]),
        str(customer["name"]),
        str(customer["grade"]),
        str(customer["tier"]),
        str(customer["owner"]),
        family,
    ]
