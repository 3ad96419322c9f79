from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.settings import REPO_ROOT


def test_check_config_accepts_the_shipped_examples(capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("gateway.yaml", "demo.yaml"):
        assert main(["check-config", str(REPO_ROOT / "config" / name)]) == 0
        assert "OK" in capsys.readouterr().out


def test_check_config_prints_every_error_with_its_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(
        "upstream:\n  url: not-a-url\nlisten:\n  workers: 0\npolicy:\n  engine: nope\n",
        encoding="utf-8",
    )
    assert main(["check-config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert "upstream.url:" in err
    assert "listen.workers:" in err
    assert "policy.engine:" in err
    assert "3 problem(s)" in err


def test_check_config_looks_for_opa_where_the_gateway_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file naming only the upstream, outside the source tree, is fine (the repo's
    .tools/bin/opa is found as at start-up); a wrong explicit binary is named."""
    minimal = tmp_path / "minimal.yaml"
    minimal.write_text("upstream:\n  url: http://127.0.0.1:9\n", encoding="utf-8")
    assert main(["check-config", str(minimal)]) == 0
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(
        "upstream:\n  url: http://127.0.0.1:9\npolicy:\n  opa_binary: /nonexistent/opa\n",
        encoding="utf-8",
    )
    assert main(["check-config", str(wrong)]) == 1
    err = capsys.readouterr().err
    assert "policy.opa_binary: '/nonexistent/opa' is not an executable file" in err


def test_check_config_follows_referenced_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "config").mkdir()
    cfg = tmp_path / "config" / "gateway.yaml"
    cfg.write_text(
        "upstream:\n  url: http://127.0.0.1:9\npolicy:\n  engine: static\n"
        "classification:\n  taxonomy: config/missing-taxonomy.yaml\n",
        encoding="utf-8",
    )
    assert main(["check-config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert "classification.taxonomy:" in err
    assert "does not exist" in err


def test_explain_sample_shows_category_level_and_action(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = tmp_path / "sample.json"
    sample.write_text(
        json.dumps(
            {
                "results": [
                    {
                        "id": "C1",
                        "name": "张伟",
                        "mobile": "13812345678",
                        "notes": "身份证11010519491231002X",
                    }
                ]
            },
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    crm = str(REPO_ROOT / "config" / "crm" / "demo.yaml")
    assert main(["explain", "--crm", crm, "--sample", str(sample), "--level", "L1"]) == 0
    out = capsys.readouterr().out
    assert "mobile" in out
    assert "L2" in out
    assert "mask" in out
    assert "13812345678" not in out


def test_hash_key_prints_a_directory_hash(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["users", "hash-key", "some-key"]) == 0
    assert capsys.readouterr().out.strip().startswith("sha256:")


def test_grants_print_a_table_with_one_row_per_record() -> None:
    from gateway.access.cli import grants_table

    records = [
        {"id": "r-1", "state": "active", "type": "grade_b", "subject": "u-sales",
         "requested_by": "u-sales", "approved_by": ["u-sec"], "expires": "2026-12-05T00:00:00Z"},
        {"id": "r-22", "status": "pending", "kind": "account", "subject": "u-new-hire",
         "requested_by": "u-hr", "approved_by": []},
    ]  # fmt: skip
    lines = grants_table(records).splitlines()
    assert lines[0].split() == ["ID", "STATE", "TYPE", "LEVEL", "SUBJECT", "REQUESTED", "BY",
                                "APPROVED", "BY", "EXPIRES"]  # fmt: skip
    assert lines[1].split() == ["r-1", "active", "grade_b", "-", "u-sales", "u-sales", "u-sec",
                                "2026-12-05T00:00:00Z"]  # fmt: skip
    assert lines[2].split() == ["r-22", "pending", "account", "-", "u-new-hire", "u-hr", "-", "-"]
    assert [line.find("u-") for line in lines[1:]] == [lines[0].index("SUBJECT")] * 2
    assert grants_table([]) == "no requests or grants"
