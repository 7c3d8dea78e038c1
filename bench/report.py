"""Rewrite the measured-results table in docs/PERFORMANCE.md from the JSON files.

    python -m bench.report

Only the text between the BEGIN/END markers is replaced; the prose around it
is written by hand.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

from .apiserver_bench import GOALS, RESULTS
from .plot import STORAGES, load_results

DOC = Path(__file__).resolve().parent.parent / "docs" / "PERFORMANCE.md"
BEGIN, END = "<!-- BEGIN bench results -->", "<!-- END bench results -->"
LABELS = {
    "create_per_s": ("pod creates, 32 in flight", "/s"),
    "get_per_s": ("pod GETs, 32 in flight", "/s"),
    "get_p99_ms": ("pod GET p99", " ms"),
    "list_json_s": ("LIST all pods, JSON", " s"),
    "list_table_s": ("LIST all pods, Table", " s"),
    "watch_p99_ms": ("watch fan-out p99", " ms"),
}


def table(results: dict[str, dict]) -> str:
    lines = ["| scenario | storage | measured | goal | met | server CPU (ms/request) | date "
             "| commit |", "|---|---|---|---|---|---|---|---|"]
    for name, (scenario, _, op, target) in GOALS.items():
        label, unit = LABELS[name]
        for storage in STORAGES:
            r = results.get(storage)
            if r is None:
                lines.append(f"| {label} | {storage} | not run | {op} {target}{unit} | | | | |")
                continue
            v = r["goals"][name]
            value = "n/a" if v["value"] is None else f"{v['value']:g}{unit}"
            met = {True: "yes", False: "**no**", None: "n/a"}[v["met"]]
            quick = " (quick)" if r.get("quick") else ""
            commit = r.get("commit", "")[:8] + ("+dirty" if r.get("dirty") else "")
            lines.append(f"| {label} | {storage} | {value} | {op} {target}{unit} | {met} | "
                         f"{_cpu(r['scenarios'].get(scenario, {}))} | {r['date'][:10]}{quick} | "
                         f"{commit} |")
    return "\n".join(lines)


def _cpu(scenario: dict) -> str:
    cpu = scenario.get("cpu_pct") or {}
    text = ", ".join(f"{name} {pct:g}%" for name, pct in cpu.items() if name != "client")
    per = scenario.get("apiserver_cpu_ms_per_request")
    return f"{text} ({per:g})" if per else text


def details(results: dict[str, dict]) -> str:
    """Sizes, counts and errors that qualify the numbers above."""
    out = []
    for storage, r in results.items():
        s = r.get("scenarios", {})
        list_ = s.get("list", {})
        watch = s.get("watch", {})
        base = s.get("baseline", {})
        machine = s.get("get", {}).get("machine_cpu_pct", {})
        out.append(
            f"- {storage}: baseline GET /version {base.get('per_s')}/s "
            f"(p99 {base.get('p99_ms')} ms, apiserver "
            f"{base.get('apiserver_cpu_ms_per_request')} ms CPU per request: the "
            f"client + TLS + HTTP floor); "
            f"{s.get('create', {}).get('created', 0)} pods created "
            f"(p50 {s.get('create', {}).get('p50_ms')} ms), "
            f"{s.get('get', {}).get('ok', 0)} GETs (p50 {s.get('get', {}).get('p50_ms')} ms), "
            f"LIST of {list_.get('json', {}).get('items', '?')} pods "
            f"({list_.get('json', {}).get('bytes', 0) / 2**20:.1f} MiB JSON), "
            f"watch {watch.get('watchers', '?')} watchers × {watch.get('updates_ok', '?')} "
            f"updates: {watch.get('events_received', 0)} events received, "
            f"{watch.get('events_missing', '?')} missing (p50 {watch.get('p50_ms')} ms); "
            f"errors: {sum(x.get('errors') or 0 for x in s.values() if isinstance(x, dict))}; "
            f"machine during GETs: {machine.get('busy')}% busy, {machine.get('steal')}% steal"
            + (f"; run failed: {r['error']}" if r.get("error") else ""))
    return "\n".join(out)


def write_between_markers(doc: Path, begin: str, end: str, body: str) -> bool:
    """Replace only the text between `begin` and `end` in doc (a results table in
    docs/PERFORMANCE.md); False, and nothing written, when the markers are missing."""
    text = doc.read_text()
    if begin not in text:
        print(f"{doc} has no {begin} marker; table not written", file=sys.stderr)
        return False
    head, _, rest = text.partition(begin)
    _, _, tail = rest.partition(end)
    doc.write_text(f"{head}{begin}\n{body}\n{end}{tail}")
    return True


def pyplot() -> Any:
    """matplotlib.pyplot drawing to files only (Agg); ImportError without matplotlib."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig: Any, out: Path) -> None:
    """Lay the figure out, write it as a 100 dpi PNG (making the directory) and close it."""
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    pyplot().close(fig)


def publish(plot: Callable[[dict, Path], None], result: dict, png: Path, doc: Path,
            begin: str, end: str, body: str) -> None:
    """A benchmark's report: plot(result, png) (skipped, saying so, without matplotlib)
    and `body` as doc's table between the begin/end markers."""
    try:
        plot(result, png)
    except ImportError:
        print("matplotlib missing: no plot", file=sys.stderr)
    write_between_markers(doc, begin, end, body)


def update(doc: Path = DOC, results_dir: Path = RESULTS) -> None:
    results = load_results(results_dir)
    write_between_markers(doc, BEGIN, END, f"{table(results)}\n\n{details(results)}")


if __name__ == "__main__":
    update()
    print(f"updated {DOC}", file=sys.stderr)
