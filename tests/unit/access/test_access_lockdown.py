"""The lockdown overlay: applied to any decision, it caps what is shown in clear."""

from __future__ import annotations

from pathlib import Path

from gateway.access.lockdown import overlay
from gateway.core.model import ALLOW, BLOCK, Action, Decision, RecordRule, Verb
from gateway.core.taxonomy import Taxonomy

ROOT = Path(__file__).resolve().parents[3]
TAXONOMY = Taxonomy.load(ROOT / "config" / "taxonomy.yaml")
PROFILE = {"max_clear_level": "L1", "block_exports": True, "block_writes": False}


def _decision() -> Decision:
    by_level = {c: (c, cat.level) for c, cat in TAXONOMY.categories.items()}
    return Decision(
        allow=True,
        reason="allowed",
        revision="r1",
        fields=dict.fromkeys(by_level, ALLOW),
        levels={lv.code: ALLOW for lv in TAXONOMY.levels},
        records=(RecordRule(when={"grade": ["A"]}, fields=dict.fromkeys(by_level, ALLOW)),),
    )


def test_everything_above_l1_is_at_least_masked() -> None:
    out = overlay(_decision(), PROFILE, TAXONOMY, "view")
    for category, action in out.fields.items():
        level = TAXONOMY.categories[category].level
        if TAXONOMY.level_rank(level) > 1:
            assert action.verb is not Verb.ALLOW, category
        else:
            assert action == ALLOW
    assert out.levels["L2"].verb is Verb.MASK and out.levels["L1"] == ALLOW
    assert all(
        a.verb is not Verb.ALLOW
        for c, a in out.records[0].fields.items()
        if TAXONOMY.level_rank(TAXONOMY.categories[c].level) > 1
    )


def test_stricter_actions_stay_and_exports_are_refused() -> None:
    d = _decision()
    strict = Decision(allow=True, reason="", revision="r1", fields={"bank_card": BLOCK}, levels={})
    assert overlay(strict, PROFILE, TAXONOMY, "view").fields["bank_card"] == BLOCK
    refused = overlay(d, PROFILE, TAXONOMY, "export")
    assert refused.allow is False and "lockdown" in refused.reason
    assert overlay(d, {**PROFILE, "block_writes": True}, TAXONOMY, "modify").allow is False
    assert overlay(d, PROFILE, TAXONOMY, "modify").allow is True


def test_a_profile_naming_no_known_level_masks_everything() -> None:
    out = overlay(_decision(), {"max_clear_level": "??"}, TAXONOMY, "view")
    assert all(a.verb is not Verb.ALLOW for a in out.levels.values())
    assert Action(Verb.MASK, "standard") in out.levels.values()


def test_lockdown_is_enforced_even_in_report_only_mode() -> None:
    import dataclasses

    rolling_out = dataclasses.replace(_decision(), report_only=True)
    assert overlay(rolling_out, PROFILE, TAXONOMY, "view").report_only is False
    denied = dataclasses.replace(Decision.deny("x"), report_only=True)
    assert overlay(denied, PROFILE, TAXONOMY, "view").report_only is False
