"""Chain + verifier: every tampering case is reported; duplicates are accepted."""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from gateway.audit.chain import ChainWriter
from gateway.audit.seal import SealedChain
from gateway.audit.verify import VerifyReport, canonical_without_mac, verify_events

KEY = bytes(range(32))
SIGNER = Ed25519PrivateKey.generate()
PUBLIC = SIGNER.public_key()


def _event(i: int) -> dict[str, Any]:
    return {
        "class_uid": 6003,
        "time": 1_700_000_000_000 + i,
        "message": f"access {i}",
        "unmapped": {"crm": {"record_ids": [f"C{i}"], "decision": {"outcome": "allow"}}},
    }


def _chain(
    n: int, *, seal_every: int = 4, close: bool = True, writer: str = "host:1:aa"
) -> list[dict[str, Any]]:
    sealed = SealedChain(ChainWriter(KEY, writer), SIGNER, every=seal_every, interval=1e9)
    lines = []
    for i in range(n):
        lines.append(sealed.append(_event(i)))
        if sealed.unsealed >= seal_every:
            lines.append(sealed.seal())
    if close:
        lines.append(sealed.seal(closing=True))
    return [orjson.loads(line) for line in lines]


def _verify(events: list[dict[str, Any]], **kw: Any) -> VerifyReport:
    return verify_events(events, KEY, PUBLIC, **kw)


def _only(report: VerifyReport) -> Any:
    (chain,) = report.chains.values()
    return chain


def test_clean_chain_verifies_and_is_closed() -> None:
    events = _chain(10)
    report = _verify(events, require_closed=True)
    chain = _only(report)
    assert report.ok
    assert report.exit_code == 0
    assert chain.closed
    assert chain.unsealed_tail == 0
    assert chain.seals == 3
    assert chain.records == len(events) == 13


def test_wrong_key_fails_every_record() -> None:
    report = verify_events(_chain(3), b"x" * 32, PUBLIC)
    assert len(_only(report).mac_bad) == 4
    assert report.exit_code == 10


def test_edit_detected() -> None:
    events = _chain(10)
    events[3]["unmapped"]["crm"]["decision"]["outcome"] = "deny"
    chain = _only(_verify(events))
    assert chain.mac_bad == [4]


def test_delete_detected_as_gap() -> None:
    events = _chain(10)
    del events[5:7]
    report = _verify(events)
    assert _only(report).missing == [(6, 7)]
    assert report.exit_code == 20


def test_swapped_payloads_detected() -> None:
    events = _chain(6)
    a, b = events[1], events[2]
    a["unmapped"]["crm"], b["unmapped"]["crm"] = b["unmapped"]["crm"], a["unmapped"]["crm"]
    assert _only(_verify(events)).mac_bad == [2, 3]


def test_renumbered_records_detected() -> None:
    events = _chain(6)
    events[1]["unmapped"]["integrity"]["seq"], events[2]["unmapped"]["integrity"]["seq"] = 3, 2
    chain = _only(_verify(events))
    assert chain.mac_bad == [2, 3]


def test_storage_order_is_not_evidence() -> None:
    """The spool replays late: lines out of order verify, and are counted."""
    events = _chain(8)
    events[1], events[5] = events[5], events[1]
    report = _verify(events)
    assert report.ok
    assert _only(report).reordered >= 1


def test_truncated_tail_leaves_chain_open() -> None:
    events = _chain(10)
    cut = events[:-2]  # drop the closing seal and the last event
    report = _verify(cut, require_closed=True)
    chain = _only(report)
    assert not chain.closed
    assert chain.unsealed_tail == 1
    assert report.exit_code == 21
    assert _verify(cut).exit_code == 0  # a live writer is open too


def test_forged_mac_detected() -> None:
    events = _chain(5)
    events[2]["unmapped"]["integrity"]["mac"] = "0" * 64
    chain = _only(_verify(events))
    assert chain.mac_bad == [3]
    assert chain.link_bad == [4]  # the next record points at the real MAC


def test_forged_record_recomputed_without_key() -> None:
    """An attacker re-MACs an edited record with a guessed key: still caught."""
    events = _chain(5)
    target = events[2]
    target["message"] = "nothing to see"
    import hashlib
    import hmac

    target["unmapped"]["integrity"]["mac"] = hmac.new(
        b"guess" * 8, canonical_without_mac(target), hashlib.sha256
    ).hexdigest()
    assert _only(_verify(events)).mac_bad == [3]


def test_replayed_sequence_with_other_content_is_a_conflict() -> None:
    events = _chain(5)
    forged = copy.deepcopy(events[2])
    forged["unmapped"]["crm"]["record_ids"] = ["C999"]
    report = _verify([*events, forged])
    chain = _only(report)
    assert chain.conflicts == [3]
    assert chain.mac_bad == []  # the genuine variant verifies and is used for links
    assert report.exit_code == 12


def test_exact_duplicates_accepted() -> None:
    events = _chain(6)
    report = _verify(events + [copy.deepcopy(e) for e in events[:4]], require_closed=True)
    assert report.ok
    assert _only(report).duplicates == 4


def test_two_writers_verified_together() -> None:
    one, two = _chain(5, writer="h:1:a"), _chain(7, writer="h:2:b")
    mixed = [e for pair in zip(one, two, strict=False) for e in pair] + two[len(one) :]
    report = _verify(mixed, require_closed=True)
    assert report.ok
    assert len(report.chains) == 2
    two[3]["message"] = "edited"
    report = _verify(one + two)
    assert report.chains["h:1:a"].ok
    assert report.chains["h:2:b"].mac_bad == [4]


def test_bad_seal_signature_detected() -> None:
    events = _chain(8)
    other = Ed25519PrivateKey.generate().public_key()
    report = verify_events(events, KEY, other)
    assert report.exit_code == 30
    assert len(_only(report).seal_bad) == 3


def test_missing_public_key_is_said_not_hidden() -> None:
    events = _chain(8)
    report = verify_events(events, KEY, None)
    assert report.exit_code == 0  # the HMAC chain and the seal links still hold
    assert report.to_dict()["signatures_checked"] is False
    assert "seal signatures were NOT checked" in report.summary()
    assert _verify(events).to_dict()["signatures_checked"] is True
    assert "NOT checked" not in _verify(events).summary()


def test_deleted_seal_detected() -> None:
    events = _chain(8)
    seal_at = next(i for i, e in enumerate(events) if "seal" in e["unmapped"])
    del events[seal_at]
    chain = _only(_verify(events))
    assert chain.missing == [(5, 5)]
    assert chain.seal_bad  # the next seal's from_seq/prev_sig no longer line up


def test_malformed_records_counted() -> None:
    events: list[Any] = [*_chain(2), {"no": "integrity"}]
    report = _verify(events)
    assert report.malformed == 1
    assert report.exit_code == 13


def test_report_renders() -> None:
    report = _verify(_chain(3))
    assert report.to_dict()["chains"][0]["records"] == 4
    assert "closed" in report.summary()


_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=20)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | _text,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text("abcdefghij_一般é😀", min_size=1, max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(payload=st.dictionaries(st.text("abcdefgh", min_size=1, max_size=5), _json, max_size=5))
def test_emitter_and_verifier_canonical_forms_agree(payload: dict[str, Any]) -> None:
    """orjson (emitter) and stdlib json (verifier) give the same bytes for our records."""
    writer = ChainWriter(KEY, "w")
    event = {**payload, "unmapped": {"crm": payload}}
    line = writer.append(event)
    assert orjson.loads(line) == json.loads(line)
    report = verify_events([orjson.loads(line)], KEY, None)
    assert report.ok, report.summary()


def test_short_key_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        ChainWriter(b"short")


def test_open_chain_with_old_last_seal_is_stale() -> None:
    events = _chain(10)[:-2]  # closing seal and last record gone
    fresh = _verify(events, allow_open=3600)
    assert fresh.exit_code == 0  # last seal is recent: a live writer
    later = _verify(events, allow_open=3600)
    later.now_ms += 2 * 3600 * 1000
    assert later.exit_code == 21
    assert "STALE" in later.summary()


def test_idle_writer_seals_on_heartbeat() -> None:
    sealed = SealedChain(ChainWriter(KEY, "w"), SIGNER, every=10, interval=5, heartbeat=60)
    lines = [sealed.append(_event(1)), sealed.seal()]
    now = time.monotonic()
    assert not sealed.seal_due(now + 30)
    assert sealed.seal_due(now + 61)
    lines += [sealed.seal(), sealed.seal(closing=True)]
    events = [orjson.loads(line) for line in lines]
    assert events[2]["unmapped"]["seal"]["count"] == 0  # an empty heartbeat seal
    report = verify_events(events, KEY, PUBLIC, require_closed=True)
    assert report.ok, report.summary()


def test_unserialisable_event_leaves_the_chain_intact() -> None:
    writer = ChainWriter(KEY, "w")
    lines = [writer.append(_event(1))]
    with pytest.raises(TypeError):
        writer.append({"time": object()})
    lines.append(writer.append(_event(2)))
    report = verify_events([orjson.loads(line) for line in lines], KEY, None)
    assert report.ok
    assert report.chains["w"].last_seq == 2


def _chain_with(key: bytes, signer: Ed25519PrivateKey, writer: str, n: int = 6) -> list[Any]:
    sealed = SealedChain(ChainWriter(key, writer), signer, every=3, interval=1e9)
    lines = [sealed.append(_event(i)) for i in range(n)]
    lines.append(sealed.seal(closing=True))
    return [orjson.loads(line) for line in lines]


def test_after_a_rotation_old_chains_verify_with_the_retired_keys() -> None:
    old_key, old_signer = b"o" * 32, Ed25519PrivateKey.generate()
    before = _chain_with(old_key, old_signer, "host:1:before")
    after = _chain_with(KEY, SIGNER, "host:2:after")
    report = verify_events(
        before + after, KEY, PUBLIC,
        retired_keys=[b"z" * 32, old_key], retired_public_keys=[old_signer.public_key()],
        require_closed=True,
    )  # fmt: skip
    assert report.ok, report.summary()
    assert report.chains["host:1:before"].retired_key == 2
    assert report.chains["host:2:after"].retired_key is None
    assert "retired key 2" in report.summary()
    # Without the retired keys the old chain is a forgery, and so is its seal.
    alone = verify_events(before + after, KEY, PUBLIC)
    assert alone.exit_code == 10 and alone.chains["host:2:after"].ok
    no_old_seal_key = verify_events(before, KEY, PUBLIC, retired_keys=[old_key])
    assert no_old_seal_key.exit_code == 30


def test_a_retired_key_does_not_excuse_an_edit() -> None:
    old_key = b"o" * 32
    events = _chain_with(old_key, SIGNER, "host:1:before")
    events[2]["unmapped"]["crm"]["decision"]["outcome"] = "deny"
    chain = _only(verify_events(events, KEY, PUBLIC, retired_keys=[old_key]))
    assert chain.retired_key == 1 and chain.mac_bad == [3]
    # An edit of the first record: no key verifies it, so the chain is checked with the
    # current key and every record is reported, never silently accepted.
    events = _chain_with(old_key, SIGNER, "host:1:before")
    events[0]["message"] = "edited"
    report = verify_events(events, KEY, PUBLIC, retired_keys=[old_key])
    assert report.exit_code == 10 and _only(report).mac_bad
