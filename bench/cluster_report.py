"""Plot bench/results/cluster.json and rewrite its table in docs/PERFORMANCE.md.

    python -m bench.cluster_report [--results bench/results] [--no-doc]

Only the text between the cluster BEGIN/END markers of the doc is replaced; the
prose around it is written by hand.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .cluster_bench import COMPONENTS, GOALS, RESULTS
from .report import DOC, pyplot, save_figure, write_between_markers

BEGIN, END = "<!-- BEGIN cluster results -->", "<!-- END cluster results -->"
COLORS = {"apiserver": "#1f77b4", "controller-manager": "#ff7f0e", "scheduler": "#2ca02c",
          "kubelet": "#9467bd", "client": "#bbbbbb"}
PROCESSES = (*COMPONENTS, "client")  # client: the benchmark's own process (load + watches)
SCENARIO_ORDER = ("idle", "pods", "deployment", "rollout")


def load(directory: Path) -> dict | None:
    path = directory / "cluster.json"
    return json.loads(path.read_text()) if path.exists() else None


# -- the plot -------------------------------------------------------------------------------

def plot(r: dict, out: Path) -> None:
    plt = pyplot()

    s = r.get("scenarios", {})
    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    _pods(axes[0][0], s.get("pods", {}))
    _deployment(axes[0][1], s.get("deployment", {}), "Deployment: create → all available")
    _deployment(axes[0][2], s.get("rollout", {}), "rolling update: image change → done",
                rollout=True)
    _per_process(axes[1][0], s, "cpu_seconds", "CPU seconds per process", "CPU s")
    _per_process(axes[1][1], s, "peak_rss_mib", "peak RSS per process", "MiB")
    sizes, m = r.get("sizes", {}), r.get("machine", {})
    _cpu_share(axes[1][2], s, m.get("cpus") or 1)
    quick = " (quick)" if r.get("quick") else ""
    fig.suptitle(f"pybernetes control plane, {sizes.get('nodes')} fake nodes, SQLite — "
                 f"{r.get('date', '?')[:10]} {r.get('commit', '?')[:8]}{quick}\n"
                 f"{m.get('cpus', '?')} CPUs {m.get('cpu', '')}", fontsize=10)
    save_figure(fig, out)


def _pods(ax, p: dict) -> None:
    curves = p.get("curves", {})
    for name, color in (("bound", "#2ca02c"), ("running", "#1f77b4")):
        pts = curves.get(name) or []
        if pts:
            ax.plot([t for t, _ in pts], [n for _, n in pts], label=name, color=color)
    op, goal = GOALS["pods_bound_per_s"]
    total = p.get("pods", 0)
    if total:  # where the goal's rate would have bound every pod
        ax.plot([0, total / goal], [0, total], "k--", linewidth=1, label=f"goal {goal}/s")
    ax.set_title(f"{total:,} bare pods: bound {p.get('pods_bound_per_s')}/s, "
                 f"Running {p.get('pods_running_per_s')}/s", fontsize=10)
    ax.set_xlabel("seconds since the first create")
    ax.set_ylabel("pods")
    ax.legend(fontsize=8)


def _deployment(ax, d: dict, title: str, rollout: bool = False) -> None:
    rows = d.get("series") or []
    if rows:
        t = [row[0] for row in rows]
        for i, (name, color) in enumerate((("replicas", "#7f7f7f"), ("updated", "#ff7f0e"),
                                           ("ready", "#2ca02c"), ("available", "#1f77b4")),
                                          start=1):
            if rollout or name in ("updated", "available"):
                ax.step(t, [row[i] for row in rows], where="post", label=name, color=color)
    if rollout and d.get("max_surge_allowed"):
        ax.axhline(d["max_surge_allowed"], color="black", linestyle=":", linewidth=1,
                   label="replicas + 25% surge")
    ax.set_title(f"{title}: {d.get('replicas', '?')} replicas in {d.get('seconds')} s",
                 fontsize=10)
    ax.set_xlabel("seconds since the change")
    ax.set_ylabel("replicas (Deployment status)")
    ax.legend(fontsize=8)


def _per_process(ax, s: dict, key: str, title: str, unit: str) -> None:
    names = [n for n in SCENARIO_ORDER if n in s]
    width = 0.8 / len(PROCESSES)
    for j, comp in enumerate(PROCESSES):
        values = [s[n]["processes"][key].get(comp, 0) for n in names]
        offset = (j - (len(PROCESSES) - 1) / 2) * width
        ax.bar([i + offset for i in range(len(names))], values, width, label=comp,
               color=COLORS[comp])
    walls = [s[n]["processes"]["wall_s"] for n in names]
    ax.set_xticks(range(len(names)), [f"{n}\n({w:g} s)" for n, w in zip(names, walls)])
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(unit)
    ax.legend(fontsize=8)


def _cpu_share(ax, s: dict, cpus: int) -> None:
    """CPU per process over time in the pods scenario (cores, stacked)."""
    series = s.get("pods", {}).get("processes", {}).get("cpu_series") or {}
    rows, cols = series.get("rows") or [], series.get("columns") or []
    if len(rows) > 1:
        t = [row[0] for row in rows]
        dt = [max(b - a, 1e-3) for a, b in zip([0.0] + t[:-1], t)]
        stacks = [[row[i] / d for row, d in zip(rows, dt)] for i in range(1, len(cols))]
        ax.stackplot(t, stacks, labels=cols[1:], colors=[COLORS.get(c, "#999")
                                                         for c in cols[1:]])
        ax.axhline(cpus, color="black", linestyle="--", linewidth=1)
    ax.set_title("pods scenario: CPU by process (cores; dashed: the machine)", fontsize=10)
    ax.set_xlabel("seconds")
    ax.set_ylabel("cores")
    ax.legend(fontsize=8, loc="upper right")


# -- the doc --------------------------------------------------------------------------------

def table(r: dict) -> str:
    s = r.get("scenarios", {})
    commit = r.get("commit", "")[:8] + ("+dirty" if r.get("dirty") else "")
    quick = " (quick)" if r.get("quick") else ""
    p, d, u = s.get("pods", {}), s.get("deployment", {}), s.get("rollout", {})
    goal = r.get("goals", {}).get("pods_bound_per_s", {})
    met = {True: "yes", False: "**no**", None: "n/a"}[goal.get("met")]
    lines = [
        f"{r.get('sizes', {}).get('nodes')} fake nodes, SQLite, {r.get('date', '')[:10]}"
        f"{quick}, commit {commit}.",
        "",
        "| scenario | measured | goal | met |",
        "|---|---|---|---|",
        f"| {p.get('pods', 0):,} bare pods, create → all bound (64 creates in flight) | "
        f"{p.get('pods_bound_per_s')} pods/s ({p.get('all_bound_s')} s) | "
        f"{goal.get('goal', '')} pods/s | {met} |",
        f"| same pods, create → all Running | {p.get('pods_running_per_s')} pods/s "
        f"({p.get('all_running_s')} s) | | |",
        f"| {d.get('replicas', 0):,}-replica Deployment, create → availableReplicas = "
        f"{d.get('replicas', 0):,} | {d.get('seconds')} s ({d.get('pods_available_per_s')} "
        f"pods/s) | | |",
        f"| {u.get('replicas', 0):,}-replica rolling update (image, 25%/25%) → complete | "
        f"{u.get('seconds')} s ({u.get('pods_replaced_per_s')} pods/s; at most "
        f"{u.get('max_replicas')} replicas, surge cap {u.get('max_surge_allowed')}) | | |",
        "",
        "| scenario | wall | " + " | ".join(f"{c} CPU s / peak RSS" for c in PROCESSES)
        + " | machine busy |",
        "|---|---|" + "---|" * len(PROCESSES) + "---|",
    ]
    for name in SCENARIO_ORDER:
        pr = s.get(name, {}).get("processes")
        if not pr:
            continue
        cells = [f"{pr['cpu_seconds'].get(c, 0):g} s / {pr['peak_rss_mib'].get(c, 0):g} MiB"
                 for c in PROCESSES]
        busy = pr.get("machine_cpu_pct", {})
        lines.append(f"| {name} | {pr['wall_s']:g} s | " + " | ".join(cells)
                     + f" | {busy.get('busy')}% (steal {busy.get('steal')}%) |")
    notes = []
    if p.get("create_per_s"):
        notes.append(f"creates alone: {p['create_per_s']}/s ({p.get('errors', 0)} errors)")
    if u.get("setup_s"):
        notes.append(f"rollout's {u.get('replicas')} replicas first became available in "
                     f"{u['setup_s']} s (untimed setup)")
    if r.get("nodes_ready_s") is not None:
        notes.append(f"{r['sizes']['nodes']} nodes Ready {r['nodes_ready_s']} s after "
                     "the API server")
    if r.get("restarted"):
        notes.append(f"restarted during the run: {', '.join(r['restarted'])}")
    if r.get("error"):
        notes.append(f"run failed: {r['error']}")
    lines += ["", "; ".join(notes) + "."]
    return "\n".join(lines)


def update_doc(r: dict, doc: Path = DOC) -> bool:
    return write_between_markers(doc, BEGIN, END, table(r))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.cluster_report")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--no-doc", action="store_true", help="only redraw the plot")
    args = ap.parse_args(argv)
    r = load(args.results)
    if r is None:
        print(f"no cluster.json in {args.results}", file=sys.stderr)
        return 1
    plot(r, args.results / "cluster.png")
    print(f"wrote {args.results / 'cluster.png'}", file=sys.stderr)
    if not args.no_doc and args.results.resolve() == RESULTS.resolve():
        if update_doc(r):
            print(f"updated {DOC}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
