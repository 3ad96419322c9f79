"""bench/REPORT.md and the PNG plots, from one results document.

    .venv/bin/python bench/report.py [bench/results/latest.json]

Re-rendering an older results file is how two runs are compared: every number
in the report comes from the JSON, nothing is typed in by hand.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ORDER = ["direct", "nginx-w1", "plain-w1", "gw-allow-w1", "gw-mask-w1"]


def _runs(doc: dict[str, Any], **match: Any) -> list[dict[str, Any]]:
    return [r for r in doc["runs"] if all(r.get(k) == v for k, v in match.items())]


def _one(doc: dict[str, Any], **match: Any) -> dict[str, Any] | None:
    rows = _runs(doc, **match)
    return rows[0] if rows else None


def _ms(us: float | None) -> str:
    return "-" if us is None else f"{us / 1000:.2f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if not a or not b else f"{a / b:.2f}"


def _rss(r: dict[str, Any]) -> str:
    vals = list(r.get("peak_rss_mb", {}).values())
    if not vals:
        return "-"
    return f"{max(vals):.0f}" + (f" (sum {sum(vals):.0f})" if len(vals) > 1 else "")


def _page(doc: dict[str, Any], config: str, n: int, conns: int) -> dict[str, Any] | None:
    return _one(doc, config=config, records=n, conns=conns, pinned=True, kind=None)


def _kind_none(doc: dict[str, Any]) -> None:
    for r in doc["runs"]:
        r.setdefault("kind", None)


def targets(doc: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(target, goal, measured, verdict) for the five targets of the issue."""
    out: list[tuple[str, str, str, str]] = []
    sweep = doc["meta"]["profile"]["sweep_conns"]

    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("met" if ok else "NOT met")

    d1, g1 = _page(doc, "direct", 20, 1), _page(doc, "gw-mask-w1", 20, 1)
    if d1 and g1:
        added = (g1["latency_us"]["p50"] - d1["latency_us"]["p50"]) / 1000
        text = f"{added:.2f} ms (gateway p50 {_ms(g1['latency_us']['p50'])} ms, direct {_ms(d1['latency_us']['p50'])} ms, 1 connection)"
        out.append(
            ("added median latency, 20-record page, masking", "<= 1 ms", text, verdict(added <= 1))
        )
    fixed = next((f for f in doc.get("fixed_rate", []) if f["config"] == "gw-mask-w1"), None)
    if fixed:
        p99 = fixed["latency_us"]["p99"] / 1000
        text = f"{p99:.2f} ms at {fixed['target_rate']:.0f} req/s (achieved {fixed['achieved_rate']}/s)"
        out.append(
            (
                "p99 at 50% of max load (open loop)",
                "<= 5 ms",
                text,
                verdict(p99 <= 5 and not fixed["errors"]),
            )
        )
    pm, gm = _page(doc, "plain-w1", 20, sweep), _page(doc, "gw-mask-w1", 20, sweep)
    if pm and gm:
        r = gm["rps"] / pm["rps"]
        text = f"{100 * r:.0f}% at 1 worker ({gm['rps']:.0f} vs {pm['rps']:.0f} req/s)"
        p2, g2 = (
            _one(doc, config="plain-w2", kind="workers"),
            _one(doc, config="gw-mask-w2", kind="workers"),
        )
        if p2 and g2:
            text += f"; {100 * g2['rps'] / p2['rps']:.0f}% at 2 workers"
        out.append(
            ("throughput with masking vs plain aiohttp proxy", ">= 60%", text, verdict(r >= 0.6))
        )
    w1, w2 = (
        _one(doc, config="gw-mask-w1", kind="workers"),
        _one(doc, config="gw-mask-w2", kind="workers"),
    )
    if w1 and w2:
        r = w2["rps"] / w1["rps"]
        pw1, pw2 = (
            _one(doc, config="plain-w1", kind="workers"),
            _one(doc, config="plain-w2", kind="workers"),
        )
        extra = f"; plain proxy: {pw2['rps'] / pw1['rps']:.2f}x" if pw1 and pw2 else ""
        text = f"{r:.2f}x ({w2['rps']:.0f} vs {w1['rps']:.0f} req/s, unpinned){extra}"
        out.append(("2 workers vs 1 worker (gateway, masking)", ">= 1.8x", text, verdict(r >= 1.8)))
    exp = doc.get("export", {}).get("gateway_mask")
    if exp:
        peak = max(exp["peak_rss_mb"].values()) if exp["peak_rss_mb"] else 0.0
        size = exp["bytes"] / 1e6
        text = f"{peak:.0f} MB peak RSS streaming {size:.0f} MB at {exp['mb_per_s']} MB/s (HTTP {exp['status']})"
        ok = peak <= 200 and exp["status"] == 200
        out.append(
            (
                f"export through masking, peak RSS ({doc['export']['requested_bytes'] >> 20} MiB run)",
                "<= 200 MB",
                text,
                verdict(ok),
            )
        )
    return out


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines + [""]


def throughput_section(doc: dict[str, Any]) -> list[str]:
    sweep = doc["meta"]["profile"]["sweep_conns"]
    records = doc["meta"]["profile"]["records"]
    configs = [c for c in ORDER if _runs(doc, config=c)]
    rows = []
    for c in configs:
        row = [c]
        for n in records:
            r, d = _page(doc, c, n, sweep), _page(doc, "direct", n, sweep)
            p = _page(doc, "plain-w1", n, sweep)
            row.append(
                "-"
                if not r
                else f"{r['rps']:.0f} ({_ratio(r['rps'], d and d['rps'])} / {_ratio(r['rps'], p and p['rps'])})"
            )
        rows.append(row)
    head = ["config"] + [f"{n} rec" for n in records]
    sizes = [
        f"{n}: {(_page(doc, 'direct', n, sweep) or {}).get('bytes', 0) / max(1, (_page(doc, 'direct', n, sweep) or {}).get('requests', 1)) / 1024:.1f} KiB"
        for n in records
    ]
    return [
        f"## Throughput vs page size ({sweep} connections, 1 worker, pinned)",
        "",
        "Requests/s; in brackets the ratio to direct / to the plain aiohttp proxy. "
        f"Response sizes: {', '.join(sizes)}.",
        "",
        *_table(head, rows),
        "![throughput vs record count](results/throughput.png)",
        "",
    ]


def latency_section(doc: dict[str, Any]) -> list[str]:
    rows = []
    for c in [c for c in ORDER if _runs(doc, config=c)]:
        for r in sorted(
            _runs(doc, config=c, records=20, pinned=True, kind=None), key=lambda r: r["conns"]
        ):
            lat = r["latency_us"]
            rows.append([c, str(r["conns"]), f"{r['rps']:.0f}", _ms(lat["p50"]), _ms(lat["p90"]), _ms(lat["p99"]),
                         _ms(lat["p99.9"]), str(r["cpu_us_per_req"]), _rss(r), _errs(r)])  # fmt: skip
    head = [
        "config",
        "conns",
        "req/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9 ms",
        "CPU us/req",
        "peak RSS MB",
        "errors",
    ]
    return ["## Latency, 20-record page, connection sweep (closed loop, wrk)", "", *_table(head, rows),
            "![latency CDF](results/latency_cdf.png)", ""]  # fmt: skip


def _errs(r: dict[str, Any]) -> str:
    e = {k: v for k, v in r["errors"].items() if v}
    return ", ".join(f"{k} {v}" for k, v in e.items()) or "0"


def other_sections(doc: dict[str, Any]) -> list[str]:
    out: list[str] = []
    rows = [[r["config"], f"{r['rps']:.0f}", _ms(r["latency_us"]["p50"]), _ms(r["latency_us"]["p99"]),
             str(r["cpu_us_per_req"]), _errs(r)] for r in _runs(doc, kind="csv")]  # fmt: skip
    if rows:
        out += [
            "## CSV export (1,000 rows)",
            "",
            *_table(["config", "req/s", "p50 ms", "p99 ms", "CPU us/req", "errors"], rows),
        ]
    rows = [[r["config"], str(r["workers"]), str(r["conns"]), f"{r['rps']:.0f}", _ms(r["latency_us"]["p50"]),
             _ms(r["latency_us"]["p99"]), str(r["cpu_us_per_req"]), _rss(r), _errs(r)] for r in _runs(doc, kind="workers")]  # fmt: skip
    if rows:
        out += ["## Workers (20-record page, unpinned: proxy, wrk and upstream share both cores)", "",
                *_table(["config", "workers", "conns", "req/s", "p50 ms", "p99 ms", "CPU us/req", "peak RSS MB", "errors"], rows)]  # fmt: skip
    rows = [[r["config"], str(r["conns"]), f"{r['rps']:.0f}", _ms(r["latency_us"]["p50"]), _ms(r["latency_us"]["p99"]),
             str(r["cpu_us_per_req"]), _rss(r), _errs(r)] for r in _runs(doc, kind="opa")]  # fmt: skip
    if rows:
        out += ["## Policy engine: managed OPA, decision cache warm vs disabled (20-record page, masking)", "",
                "CPU and RSS include the OPA child process.", "",
                *_table(["config", "conns", "req/s", "p50 ms", "p99 ms", "CPU us/req", "peak RSS MB", "errors"], rows)]  # fmt: skip
    fixed = doc.get("fixed_rate", [])
    if fixed:
        ref = doc.get("fixed_rate_reference", {})
        rows = [[f["config"], f"{f['target_rate']:.0f}", str(f["achieved_rate"]), _ms(f["latency_us"]["p50"]),
                 _ms(f["latency_us"]["p90"]), _ms(f["latency_us"]["p99"]), _ms(f["latency_us"]["p99.9"]),
                 str(f.get("cpu_util")), json.dumps(f["errors"]) if f["errors"] else "0"] for f in fixed]  # fmt: skip
        out += [f"## Fixed-rate latency (open loop, 50% of {ref.get('config')}'s max {ref.get('max_rps', 0):.0f} req/s)", "",
                "bench/fixed_rate.py: request i is due at start + i/rate; latency counts from the due time "
                "(no coordinated omission). The Python client runs on CPU 1 with the upstream.", "",
                *_table(["config", "rate", "achieved", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "SUT CPU util", "errors"], rows)]  # fmt: skip
    exp = doc.get("export")
    if exp:
        out += [
            "## Streamed JSON export",
            "",
            f"Requested size: {exp['requested_bytes']:,} bytes.",
            "",
        ]
        rows = []
        for name in ("direct", "gateway_mask"):
            e = exp.get(name)
            if e:
                rss = max(e.get("peak_rss_mb", {"-": 0}).values()) if e.get("peak_rss_mb") else None
                rows.append([name, str(e["status"]), f"{e['bytes']:,}", f"{e['seconds']:.1f}", str(e["mb_per_s"]),
                             "-" if rss is None else f"{rss:.0f}", str(e.get("cpu_s", "-"))])  # fmt: skip
        out += _table(["path", "HTTP", "bytes", "seconds", "MB/s", "peak RSS MB", "CPU s"], rows)
    return out


def micro_section(doc: dict[str, Any]) -> list[str]:
    out: list[str] = []
    micro = doc.get("micro")
    if micro:
        rows = [
            [m["name"], f"{m['median_us']:.1f}", f"{m['mean_us']:.1f}", str(m["rounds"])]
            for m in micro
        ]
        out += [
            "## Micro-benchmarks (pytest-benchmark, bench/micro)",
            "",
            *_table(["benchmark", "median us", "mean us", "rounds"], rows),
        ]
    pol = doc.get("policy_bench")
    if pol:
        out += [
            "## Policy stage (bench/policy_bench.py, real OPA)",
            "",
            "```json",
            json.dumps(pol, indent=1)[:3000],
            "```",
            "",
        ]
    return out


def profile_section(doc: dict[str, Any], results: Path) -> list[str]:
    top = results / "profile-20.top.json"
    if not top.exists():
        return []
    data = json.loads(top.read_text())
    prof = doc.get("profile", {})
    rows = [[f"`{t['function']}`", f"{t['pct']}"] for t in data["self"][:15]]
    incl = [[f"`{t['function']}`", f"{t['pct']}"] for t in data["inclusive"][:25]]
    return [
        "## Profile: gateway hot path (pyinstrument, 20-record masked page under load)",
        "",
        f"Throughput under the profiler: {prof.get('rps_under_profiler', 0):.0f} req/s. "
        "Full tree: results/profile-20.txt (and .html).",
        "",
        "Self time (where the CPU is):",
        "",
        *_table(["function", "% of samples"], rows),
        "Inclusive time (who is responsible):",
        "",
        *_table(["function", "% of samples"], incl),
    ]


def plots(doc: dict[str, Any], results: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep = doc["meta"]["profile"]["sweep_conns"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for c in ORDER:
        pts = sorted(
            (r["records"], r["rps"])
            for r in _runs(doc, config=c, conns=sweep, pinned=True, kind=None)
        )
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=c)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("records per page")
    ax.set_ylabel("requests/s")
    ax.set_title(f"Throughput vs page size ({sweep} connections, 1 worker)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(results / "throughput.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for c in ORDER:
        r = _page(doc, c, 20, sweep)
        if r:
            pts = [(float(p), us / 1000) for p, us in r["cdf_us"]]
            ax.plot([p[1] for p in pts], [p[0] for p in pts], label=f"{c} (closed loop)")
    for f in doc.get("fixed_rate", []):
        ax.plot([us / 1000 for _, us in f["cdf_us"]], [float(p) for p, _ in f["cdf_us"]], linestyle="--",
                label=f"{f['config']} @ {f['target_rate']:.0f}/s (open loop)")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("percentile")
    ax.set_title(f"Latency CDF, 20-record page ({sweep} connections)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(results / "latency_cdf.png", dpi=110)
    plt.close(fig)


def machine_section(doc: dict[str, Any]) -> list[str]:
    m = doc["meta"]["machine"]
    return [
        "## Machine",
        "",
        f"- CPU: {m['cpu'].get('model name')} ({m['nproc']} CPUs, cache {m['cpu'].get('cache size')}, AVX2 {m['cpu'].get('avx2')})",
        f"- kernel {m['kernel']}, Python {m['python']}; "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items()),
        f"- git: {m['git']}",
        "",
        "```",
        m["free"],
        "```",
        "",
        "CPU placement: " + doc["meta"].get("pinning", "").replace("\n", " "),
        "",
    ]


def write_report(doc: dict[str, Any], out: Path, results: Path) -> None:
    _kind_none(doc)
    meta = doc["meta"]
    p = meta["profile"]
    lines = [
        "# crm-gateway benchmarks",
        "",
        f"Generated by `make bench` (bench/run.py, profile **{p['name']}**: {p['seconds']} s per point after "
        f"{p['warmup']} s warm-up, connections {p['conns']}) on {meta['started']} .. {meta.get('finished')}. "
        "Raw data: results/latest.json (re-render with `python bench/report.py FILE`).",
        "",
        "Systems: **direct** (wrk to the fixture CRM), **nginx** (Debian nginx, pass-through, keepalive pool), "
        "**plain** (bench/plain_proxy.py: aiohttp streaming pass-through), **gw-allow** (gateway, L4 admin: "
        "classify only), **gw-mask** (gateway, L2 sales caller: masking, static policy table, decision cache warm). "
        "The upstream (bench/upstream.py) serves canned bytes on uvloop.",
        "",
        "## Targets",
        "",
        *_table(["target", "goal", "measured", "verdict"], [list(t) for t in targets(doc)]),
    ]
    if not meta.get("gateway_measured"):
        lines += ["**The gateway was not measured in this run** (see Errors).", ""]
    lines += throughput_section(doc) + latency_section(doc) + other_sections(doc)
    lines += profile_section(doc, results) + micro_section(doc) + machine_section(doc)
    if doc.get("errors"):
        lines += (
            ["## Errors", ""]
            + [
                f"- {e['phase']}: {e['error'].strip().splitlines()[-1] if e['error'].strip() else ''}"
                for e in doc["errors"]
            ]
            + [""]
        )
    plots(doc, results)
    out.write_text("\n".join(lines))


def main() -> None:
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else BENCH / "results" / "latest.json"
    write_report(json.loads(src.read_text()), BENCH / "REPORT.md", BENCH / "results")


if __name__ == "__main__":
    main()
