"""Run one gateway worker under pyinstrument and write a text profile on exit.

    .venv/bin/python bench/profiled_gateway.py SETTINGS.yaml OUT.txt

Used by bench/run.py to profile the hot path under load (SIGTERM ends the run).
The profiler samples the main thread, i.e. the whole event loop: handler,
codecs, masking, policy and audit, and aiohttp's own parsing.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

from pyinstrument import Profiler
from pyinstrument.frame import Frame

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.server import serve
from gateway.settings import load_settings


def main() -> None:
    settings = load_settings(Path(sys.argv[1]))
    out = Path(sys.argv[2])
    profiler = Profiler(interval=0.0005, async_mode="disabled")
    profiler.start()
    try:
        serve(settings, announce=lambda _msg: None)
    finally:
        profiler.stop()
        out.write_text(profiler.output_text(unicode=True, color=False, show_all=False))
        out.with_suffix(".html").write_text(profiler.output_html())
        root = profiler.last_session.root_frame() if profiler.last_session else None
        if root is not None:
            out.with_suffix(".top.json").write_text(json.dumps(self_times(root), indent=1))


def self_times(root: Frame, top: int = 40) -> dict[str, object]:
    """Self time per function over the whole tree: what the CPU did, not who called it."""
    own: dict[str, float] = defaultdict(float)
    total: dict[str, float] = defaultdict(float)
    todo = [(root, frozenset[str]())]
    while todo:
        frame, above = todo.pop()
        name = f"{frame.function} ({frame.file_path_short}:{frame.line_no})"
        own[name] += frame.total_self_time
        if name not in above:  # recursion counts once
            total[name] += frame.time
        todo += [(child, above | {name}) for child in frame.children]
    whole = root.time or 1.0
    ranked = sorted(own.items(), key=lambda kv: kv[1], reverse=True)[:top]
    cumulative = sorted(total.items(), key=lambda kv: kv[1], reverse=True)[:top]
    return {
        "total_s": round(whole, 3),
        "self": [
            {"function": k, "s": round(v, 3), "pct": round(100 * v / whole, 1)} for k, v in ranked
        ],
        "inclusive": [
            {"function": k, "s": round(v, 3), "pct": round(100 * v / whole, 1)}
            for k, v in cumulative
        ],
    }


if __name__ == "__main__":
    main()
