"""From an enforcement report to the ids the detector counts per level."""

from __future__ import annotations

from gateway.core.report import EnforcementReport, RecordSummary, ReportSummary
from gateway.monitor.anomaly import ids_by_level


def test_single_record_response_is_exact() -> None:
    report = EnforcementReport()
    report.add_record("C000001", None, None)
    report.clear_records["L3"] += 1
    assert ids_by_level(report.summary()) == {"*": ["C000001"], "L3": ["C000001"]}


def test_list_counts_every_id_at_each_level_shown_in_clear() -> None:
    report = EnforcementReport()
    for i in range(3):
        report.add_record(f"C00000{i}", None, None)
    report.clear_records["L4"] += 1  # one record of three showed L4 in clear
    out = ids_by_level(report.summary())
    assert out["L4"] == ["C000000", "C000001", "C000002"]
    assert "L3" not in out


def test_exact_ids_per_level_win_when_the_report_has_them() -> None:
    summary = ReportSummary(
        records=RecordSummary(
            ids=("C1", "C2"),
            clear_by_level={"L4": 1},
            clear_ids_by_level={"L4": ("C2",), "L2": ()},
        )
    )
    assert ids_by_level(summary) == {"*": ["C1", "C2"], "L4": ["C2"]}


def test_refused_request_has_no_ids() -> None:
    assert ids_by_level(None) == {}
    assert ids_by_level(ReportSummary()) == {}
    assert ids_by_level(ReportSummary(records=RecordSummary(clear_by_level={"L4": 2}))) == {}


def test_masked_decoy_is_still_visible_under_star() -> None:
    report = EnforcementReport()
    report.add_record("C999901", None, None)  # nothing shown in clear
    assert ids_by_level(report.summary()) == {"*": ["C999901"]}
