"""`make help` names every target a newcomer can run."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from gateway.settings import REPO_ROOT


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_help_lists_every_phony_target() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    [phony] = re.findall(r"^\.PHONY:(.*)$", makefile, flags=re.MULTILINE)
    targets = set(phony.split()) - {"help"}
    out = subprocess.run(
        ["make", "--no-print-directory", "-s", "help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    listed = {m.group(1) for m in re.finditer(r"^make (\S+)\s+- \S", out, flags=re.MULTILINE)}
    assert targets - listed == set(), out
    assert listed <= targets | {"help"}
