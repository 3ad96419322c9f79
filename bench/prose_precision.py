"""Precision and recall of the free-text detectors on the labelled prose corpora, and their speed.

    .venv/bin/python bench/prose_precision.py

Positive corpus (`tests/unit/core/corpora/prose_positive.tsv`): each row names a
span that must be found with its category; a found span of another category or
with other bounds counts as a miss. Negative corpus (`prose_negative.txt`):
every hit on it is a false positive. Precision = true hits / all hits over both
corpora; recall = labelled spans found / labelled spans. Speed is the uncached
scan (`_detect`, not the memoised `detect`), in MB/s of UTF-8, of the compiled
scan and of the Python one side by side, over both corpora, over the demo CRM's
notes, and over the same notes joined 50 to a text.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.core import detectors
from gateway.core.detectors import native
from gateway.demo.data import generate_customers, generate_note

CORPORA = Path(__file__).resolve().parents[1] / "tests" / "unit" / "core" / "corpora"


def _lines(name: str) -> list[str]:
    text = (CORPORA / name).read_text(encoding="utf-8")
    return [ln for ln in text.splitlines() if ln and not ln.startswith("#")]


def main() -> None:
    labelled: dict[str, set[tuple[str, str]]] = {}
    for row in _lines("prose_positive.tsv"):
        text, category, span = row.split("\t")
        labelled.setdefault(text, set()).add((category, span))
    negatives = _lines("prose_negative.txt")
    true_hits = false_hits = found = 0
    total = sum(len(v) for v in labelled.values())
    for text, want in labelled.items():
        got = {(h.category, text[h.start : h.end]) for h in detectors._detect(text)}
        found += len(want & got)
        true_hits += len(got & want)
        false_hits += len(got - want)
    fp_lines = 0
    for text in negatives:
        found_there = detectors._detect(text)
        false_hits += len(found_there)
        fp_lines += bool(found_there)
    all_hits = true_hits + false_hits
    print(
        f"positive: {len(labelled)} texts, {total} labelled spans; negative: {len(negatives)} lines"
    )
    if all_hits:
        print(f"precision {true_hits}/{all_hits} = {true_hits / all_hits:.3f}")
    print(f"recall    {found}/{total} = {found / total:.3f}")
    print(f"negative lines with a hit: {fp_lines}")
    texts = list(labelled) + negatives
    notes = [generate_note(7, i, c)["text"] for i, c in enumerate(generate_customers(count=500))]
    compiled, why = native.status()
    print(f"detectors: {why}")
    for label, corpus in (("corpora", texts), ("demo notes", notes), ("notes x50", _joined(notes))):
        size = sum(len(t.encode()) for t in corpus)
        rates = [f"{name} {_rate(scan, corpus):.2f}" for name, scan in _scans(compiled)]
        print(f"uncached scan, {label} ({size} bytes): {', '.join(rates)} MB/s (best of 5)")


def _scans(compiled: bool) -> list[tuple[str, Callable[[str], object]]]:
    python = ("python", detectors.python_detect)
    return [("compiled", detectors._detect), python] if compiled else [python]


def _joined(notes: list[str]) -> list[str]:
    return ["".join(notes[i : i + 50]) for i in range(0, len(notes), 50)]


def _rate(scan: Callable[[str], object], texts: list[str]) -> float:
    size = sum(len(t.encode()) for t in texts)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(4):
            for t in texts:
                scan(t)
        best = min(best, time.perf_counter() - t0)
    return 4 * size / best / 1e6


if __name__ == "__main__":
    main()
