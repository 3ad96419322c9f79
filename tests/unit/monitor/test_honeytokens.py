"""Honeytoken lookups: decoys found once each, in order, whatever the level."""

from __future__ import annotations

from gateway.monitor.honeytokens import Honeytokens


def test_hits_in_first_seen_order_without_repeats() -> None:
    decoys = Honeytokens(["C999901", " C999902 ", ""])
    assert len(decoys) == 2
    assert "C999902" in decoys
    assert decoys.hits(["C1", "C999902", "C999901", "C999902"]) == ["C999902", "C999901"]
    assert decoys.hits(["C1", "C2"]) == []


def test_hits_by_level_merges_levels() -> None:
    decoys = Honeytokens(["C999901"])
    assert decoys.hits_by_level({"L1": ["C999901"], "L4": ["C999901", "C5"]}) == ["C999901"]
    assert decoys.hits_by_level({"L1": ["C5"]}) == []


def test_no_decoys_configured() -> None:
    decoys = Honeytokens([])
    assert not decoys
    assert decoys.hits(["C999901"]) == []
    assert decoys.hits_by_level({"L1": ["C999901"]}) == []
