"""API-key hashes: forms, pepper, and a lookup that compares every candidate."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from gateway.identity import apikeys
from gateway.identity.apikeys import KeyIndex, hash_key, hash_key_command, parse_hash


def test_plain_and_peppered_forms() -> None:
    assert hash_key("k", None) == "sha256:" + hashlib.sha256(b"k").hexdigest()
    peppered = hash_key("k", b"pepper")
    assert peppered == "hmac-sha256:" + hmac.new(b"pepper", b"k", hashlib.sha256).hexdigest()
    assert peppered != hash_key("k", b"other")


def test_hash_key_command_generates_or_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_PEPPER", "s3cret-pepper")
    key, stored = hash_key_command("TEST_PEPPER")
    assert key.startswith("cgw_")
    assert len(key) > 40
    assert stored == hash_key(key, b"s3cret-pepper")
    monkeypatch.delenv("TEST_PEPPER")
    assert hash_key_command("TEST_PEPPER", "given") == ("given", hash_key("given", None))


@pytest.mark.parametrize(
    "bad", ["md5:abc", "sha256", "sha256:xyz", "sha256:" + "a" * 63, "plain:" + "a" * 64]
)
def test_parse_hash_refuses_malformed(bad: str) -> None:
    with pytest.raises(ValueError, match="API key hash"):
        parse_hash(bad)


def test_index_finds_plain_and_peppered_keys() -> None:
    index = KeyIndex([(hash_key("alpha", None), "a"), (hash_key("beta", b"p"), "b")], pepper=b"p")
    assert index.find("alpha") == "a"
    assert index.find("beta") == "b"
    assert index.find("gamma") is None
    # Without the pepper a peppered key cannot match.
    assert KeyIndex([(hash_key("beta", b"p"), "b")], pepper=None).find("beta") is None


def test_lookup_compares_every_candidate_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """All stored hashes share one bucket here; a match on the first and on the last
    candidate must cost the same number of compare_digest calls (no early exit, no ==)."""
    monkeypatch.setattr(apikeys, "_BUCKET", 0)
    keys = [f"key-{i}" for i in range(20)]
    index = KeyIndex([(hash_key(k, None), k) for k in keys], pepper=None)
    calls: list[int] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    for probe in ("key-0", "key-19", "missing"):
        calls.clear()
        found = index.find(probe)
        assert found == (probe if probe != "missing" else None)
        assert len(calls) == len(keys)
