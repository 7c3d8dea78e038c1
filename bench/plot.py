"""Plot bench/results/apiserver-<storage>.json side by side against the goals.

    python -m bench.plot [--out bench/results/apiserver.png]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .apiserver_bench import GOALS, RESULTS

STORAGES = ("sqlite", "etcd")
TITLES = {  # {r}: resource, {n}: objects listed, {w}: watchers
    "create_per_s": ("create {r} (32 in flight)", "per second (higher is better)"),
    "get_per_s": ("get {r} (32 in flight)", "per second (higher is better)"),
    "get_p99_ms": ("get {r}: p99", "ms (lower is better)"),
    "list_json_s": ("LIST {n} {r}, JSON", "seconds (lower is better)"),
    "list_table_s": ("LIST {n} {r}, Table", "seconds (lower is better)"),
    "watch_p99_ms": ("watch fan-out p99 ({w} watchers)", "ms (lower is better)"),
}


def load_results(directory: Path) -> dict[str, dict]:
    out = {}
    for storage in STORAGES:
        path = directory / f"apiserver-{storage}.json"
        if path.exists():
            out[storage] = json.loads(path.read_text())
    return out


def plot(results: dict[str, dict], out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = next(iter(results.values()))
    sizes = first.get("sizes", {})
    words = {"r": first.get("resource", "pods"), "n": f"{sizes.get('list_pods', 0):,}",
             "w": sizes.get("watchers", "?")}
    fig, axes = plt.subplots(2, 3, figsize=(13, 7.5))
    for ax, (name, (_, _, op, target)) in zip(axes.flat, GOALS.items()):
        title, unit = TITLES[name]
        title = title.format(**words)
        labels, values, colors = [], [], []
        for storage in STORAGES:
            verdict = results.get(storage, {}).get("goals", {}).get(name, {})
            value = verdict.get("value")
            labels.append(storage)
            values.append(value or 0)
            colors.append("#999999" if value is None
                          else "#2e8b57" if verdict.get("met") else "#c0392b")
        bars = ax.bar(labels, values, color=colors, width=0.55)
        for bar, value in zip(bars, values):
            ax.annotate("n/a" if not value else f"{value:g}",
                        (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=9)
        ax.axhline(target, color="black", linestyle="--", linewidth=1)
        ax.annotate(f"goal {op} {target:g}", (0.02, target), xycoords=("axes fraction", "data"),
                    va="bottom", fontsize=8)
        ax.set_ylim(0, max(values + [target]) * 1.25)
        ax.set_title(title)
        ax.set_ylabel(unit)
    fig.suptitle(_subtitle(results), fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def _subtitle(results: dict[str, dict]) -> str:
    parts = []
    for storage, r in results.items():
        quick = " (quick)" if r.get("quick") else ""
        parts.append(f"{storage}: {r.get('date', '?')[:10]} {r.get('commit', '?')[:8]}{quick}")
    cpu = next(iter(results.values()), {}).get("machine", {})
    return (f"pybernetes API server — green meets goal, red misses — {'; '.join(parts)}\n"
            f"{cpu.get('cpus', '?')} CPUs {cpu.get('cpu', '')}; dashed line: goal")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.plot")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--out", type=Path, default=RESULTS / "apiserver.png")
    args = ap.parse_args(argv)
    results = load_results(args.results)
    if not results:
        print(f"no results in {args.results}", file=sys.stderr)
        return 1
    plot(results, args.out)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
