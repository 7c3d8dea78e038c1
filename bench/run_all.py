"""Run the API server benchmark on every storage backend, then the control plane
benchmark (100 fake nodes), then the real kubelet's (runc; it says why and skips
itself without root, runc or the registry), then redraw the plots and the tables.

    python -m bench.run_all [--quick] [--profile] [--skip-cluster] [--skip-kubelet]
    (`make bench` runs this)

Each run is its own `python -m bench.<name>` process so one crash cannot take
the other's numbers with it; etcd is skipped (and said so) when /usr/bin/etcd is
missing. `bench.cluster_bench` redraws cluster.png and its table itself.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys

from . import plot, report
from .apiserver_bench import RESULTS
from .procs import ETCD_BINARY

PER_RUN_TIMEOUT_S = 900


def run_bounded(cmd: list[str]) -> int | str:
    """Run one benchmark; on timeout SIGTERM it (it then stops its server and
    etcd) before resorting to SIGKILL."""
    proc = subprocess.Popen(cmd)
    try:
        return proc.wait(PER_RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        return "timeout"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.run_all")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--skip-cluster", action="store_true",
                    help="leave out the control plane benchmark")
    ap.add_argument("--skip-kubelet", action="store_true",
                    help="leave out the real kubelet benchmark (runc, needs root)")
    args = ap.parse_args(argv)
    extra = [flag for flag, on in (("--quick", args.quick), ("--profile", args.profile)) if on]
    failed = []
    for storage in ("sqlite", "etcd"):
        if storage == "etcd" and not os.path.exists(ETCD_BINARY):
            print(f"skipping etcd: {ETCD_BINARY} not installed", file=sys.stderr)
            continue
        cmd = [sys.executable, "-m", "bench.apiserver_bench", "--storage", storage, *extra]
        rc = run_bounded(cmd)
        if rc != 0:
            failed.append(f"{storage} ({rc})")
    plot.main(["--results", str(RESULTS), "--out", str(RESULTS / "apiserver.png")])
    report.update()
    if not args.skip_cluster:
        rc = run_bounded([sys.executable, "-m", "bench.cluster_bench", *extra])
        if rc != 0:
            failed.append(f"cluster ({rc})")
    if not args.skip_kubelet:
        rc = run_bounded([sys.executable, "-m", "bench.kubelet_bench", *extra])
        if rc != 0:
            failed.append(f"kubelet ({rc})")
    if failed:
        print(f"benchmark runs failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
