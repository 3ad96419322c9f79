"""Bearer secrets in URLs are credentials; record ids and file names are not."""

from __future__ import annotations

import pytest

from gateway.core.detectors import detect

TOKEN = "x7kKYxSWRExN1lj_TeeoOOSwgIOFFMe5D9aJeraOzWY"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"/portal/invoice/{TOKEN}", TOKEN),
        (f"http://h/api/public/invoice/{TOKEN}/", TOKEN),
        ("https://h/dl?file=a.pdf&token=abcd1234", "abcd1234"),
        ("https://h/x?access_token=eyJabc.def", "eyJabc.def"),
        ("https://h/x?expires=1&sig=0123456789abcdef", "0123456789abcdef"),
        ("https://b.s3/x?X-Amz-Signature=" + "ab" * 32, "ab" * 32),
        ("https://h/cb#access_token=Zz9Yy8Xx7Ww6", "Zz9Yy8Xx7Ww6"),
        ("https://h/x?key=AbCdEf0123456789xyz", "AbCdEf0123456789xyz"),
        (f"see https://h/files/{TOKEN}", TOKEN),
        ("/share/3f2c9a1b-7d4e-4f5a-9b8c-1d2e3f4a5b6c", "3f2c9a1b-7d4e-4f5a-9b8c-1d2e3f4a5b6c"),
    ],
)
def test_token_urls_are_credentials(text: str, secret: str) -> None:
    hits = [(h.category, text[h.start : h.end]) for h in detect(text)]
    assert ("credentials", secret) in hits


@pytest.mark.parametrize(
    "text",
    [
        "/api/contacts/3f2c9a1b-7d4e-4f5a-9b8c-1d2e3f4a5b6c/",
        "/api/customers/export.csv",
        "https://h/x?key=name&sort=asc",
        "/static/js/app.0123456789abcdef0123456789abcdef.js",
        "/docs/customer-onboarding-checklist-2026-edition-final/",
        "/blobs/" + "0123456789abcdef" * 4,
    ],
)
def test_ids_and_names_are_not(text: str) -> None:
    assert [h for h in detect(text) if h.category == "credentials"] == []
