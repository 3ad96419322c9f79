"""The directory file: demo content, CSV form, validation, lookups and live reload."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.identity.apikeys import hash_key
from gateway.identity.authn.base import DirectoryHandle
from gateway.identity.directory import Directory, demo_keys

from .conftest import DEMO_DIRECTORY


def test_demo_directory_has_the_documented_subjects() -> None:
    directory = Directory.load(DEMO_DIRECTORY)
    admin = directory.get("u-admin")
    assert admin is not None
    assert admin.subject.clearance == "L4"
    assert admin.subject.roles == ("security_admin",)
    assert admin.subject.department == "security"
    partner = directory.get("u-partner-01")
    assert partner is not None
    assert partner.subject.partner
    assert partner.subject.allowed_networks == ("127.0.0.0/8",)
    # A bare date means through the end of that day, Asia/Shanghai.
    assert partner.subject.partner_expires == datetime(2027, 6, 30, 16, 0, tzinfo=UTC)
    departed = directory.get("u-departed")
    assert departed is not None
    assert departed.subject.disabled
    for approver, department in (("u-sec-approver", "security"), ("u-it-approver", "it")):
        entry = directory.get(approver)
        assert entry is not None and entry.subject.department == department
        assert entry.subject.roles == ("approver",) and entry.subject.clearance == "L1"
    assert len(directory) == 10


def test_demo_keys_block_matches_the_hashes() -> None:
    keys = demo_keys(DEMO_DIRECTORY)
    assert set(keys) == {
        "u-admin",
        "u-sales-01",
        "u-manager",
        "u-partner-01",
        "u-service",
        "u-cs",
        "u-auditor",
        "u-departed",
        "u-sec-approver",
        "u-it-approver",
    }
    directory = Directory.load(DEMO_DIRECTORY)
    for subject_id, key in keys.items():
        found = directory.find_api_key(key)
        assert found is not None
        assert found[0].subject.id == subject_id
    assert "demo-admin-key" not in DEMO_DIRECTORY.read_text().split("subjects:", 1)[1]


def test_lookup_by_email_alias_and_id() -> None:
    directory = Directory.from_data(
        {
            "subjects": [
                {"id": "u-1", "email": "One@Example.com", "aliases": ["oidc|123", "CN=one"]},
            ]
        }
    )
    assert directory.find("email", "one@example.com") is directory.get("u-1")
    assert directory.find("alias", "oidc|123") is directory.get("u-1")
    assert directory.find("alias", "u-1") is directory.get("u-1")
    assert directory.find("id", "oidc|123") is None


def test_csv_directory(tmp_path: Path) -> None:
    path = tmp_path / "dir.csv"
    path.write_text(
        "id,email,roles,clearance,partner,partner_expires,allowed_networks,"
        "api_key_hash,api_key_routes,api_key_methods,api_key_expires\n"
        f"u-p,p@x.example,partner;reader,L1,true,2027-01-31,10.0.0.0/8;127.0.0.1/32,"
        f"{hash_key('csv-key', None)},/api/*,GET,2027-01-31\n"
        "u-q,q@x.example,sales,L2,,,,,,,\n",
        encoding="utf-8",
    )
    directory = Directory.load(path)
    found = directory.find_api_key("csv-key")
    assert found is not None
    entry, key = found
    assert entry.subject.roles == ("partner", "reader")
    assert entry.subject.partner
    assert entry.subject.allowed_networks == ("10.0.0.0/8", "127.0.0.1/32")
    assert key.methods == ("GET",)
    assert key.allows("GET", "/api/customers")
    assert not key.allows("POST", "/api/customers")
    assert not key.allows("GET", "/admin")
    assert directory.get("u-q") is not None


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"subjects": [{"id": "u", "clearance": "L9"}]}, "clearance"),
        ({"subjects": [{"id": "u", "api_keys": [{"id": "k", "hash": "abc"}]}]}, "hash"),
        ({"subjects": [{"id": "u", "allowed_networks": ["not-a-net"]}]}, "allowed_networks"),
        ({"subjects": [{"id": "u", "unknown": 1}]}, "unknown"),
        ({"subjects": [{"id": "u"}, {"id": "u"}]}, "twice"),
    ],
)
def test_invalid_directories_are_refused_with_the_key(data: object, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        Directory.from_data(data, source="dir.yaml")
    assert fragment in " ".join([info.value.message, *info.value.problems])


def test_handle_reloads_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text("subjects: [{id: u-1, clearance: L2}]\n")
    handle = DirectoryHandle.load(path, None, check_every=0)
    assert not handle.current().get("u-1").subject.disabled  # type: ignore[union-attr]
    path.write_text("subjects: [{id: u-1, clearance: L2, disabled: true}]\n")
    later = time.time() + 5
    os.utime(path, (later, later))
    assert handle.current().get("u-1").subject.disabled  # type: ignore[union-attr]
    # A broken edit keeps the last good directory.
    path.write_text("subjects: [{id: u-1, clearance: L99}]\n")
    os.utime(path, (later + 5, later + 5))
    assert handle.current().get("u-1") is not None
