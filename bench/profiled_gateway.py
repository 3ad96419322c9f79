"""Run one gateway worker under pyinstrument and write the profile on exit.

    .venv/bin/python bench/profiled_gateway.py SETTINGS.yaml OUT.txt

Used by bench/run.py to profile the hot path under load: sampling starts on
SIGUSR1 (sent after the warm-up, so start-up imports and cold caches are not
in the profile) and SIGTERM ends the run. The profiler samples the main thread,
i.e. the whole event loop: handler, codecs, masking, policy, audit, and
aiohttp's own parsing and writing. Writes OUT.txt (call tree), OUT.html and
OUT.top.json (self and inclusive time per function, for the report).
"""

from __future__ import annotations

import json
import signal
import sys
from collections import defaultdict
from pathlib import Path

from pyinstrument import Profiler
from pyinstrument.frame import Frame

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.server import serve
from gateway.settings import load_settings


def self_times(root: Frame, top: int = 100) -> dict[str, object]:
    """Self and inclusive time per function over the whole tree.

    Self time says where the CPU is; inclusive time (recursion counted once)
    says which stage is responsible. Synthetic "[self]" frames are skipped:
    their time is already in their parent's total_self_time.
    """
    own: dict[str, float] = defaultdict(float)
    total: dict[str, float] = defaultdict(float)
    todo: list[tuple[Frame, frozenset[str]]] = [(root, frozenset())]
    while todo:
        frame, above = todo.pop()
        if frame.is_synthetic:
            continue
        name = f"{frame.function} ({frame.file_path_short}:{frame.line_no})"
        own[name] += frame.total_self_time
        if name not in above:
            total[name] += frame.time
        todo += [(child, above | {name}) for child in frame.children]
    whole = root.time or 1.0

    def rows(d: dict[str, float]) -> list[dict[str, object]]:
        ranked = sorted(d.items(), key=lambda kv: kv[1], reverse=True)[:top]
        return [
            {"function": k, "s": round(v, 3), "pct": round(100 * v / whole, 1)} for k, v in ranked
        ]

    return {"total_s": round(whole, 3), "self": rows(own), "inclusive": rows(total)}


def main() -> None:
    settings = load_settings(Path(sys.argv[1]))
    out = Path(sys.argv[2])
    profiler = Profiler(interval=0.0005, async_mode="disabled")
    signal.signal(signal.SIGUSR1, lambda *_: profiler.is_running or profiler.start())
    try:
        serve(settings, announce=lambda _msg: None)
    finally:
        if profiler.is_running:
            profiler.stop()
        session = profiler.last_session
        if session is not None:
            out.write_text(profiler.output_text(unicode=True, color=False, show_all=False))
            out.with_suffix(".html").write_text(profiler.output_html())
            root = session.root_frame()
            if root is not None:
                out.with_suffix(".top.json").write_text(json.dumps(self_times(root), indent=1))


if __name__ == "__main__":
    main()
