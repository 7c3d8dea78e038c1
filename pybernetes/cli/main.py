"""The `pybernetes` command: one binary, one subcommand per component (like k3s)."""
from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys

# Subcommand modules in pybernetes.cli; each has register(subparsers) and run(args) -> int.
# Keep their top-level imports light: `pybernetes --help` imports all of them.
SUBCOMMANDS = ("server", "apiserver", "controller_manager", "scheduler", "kubelet", "proxy",
               "dns", "ingress", "images")

DESCRIPTION = """\
pybernetes is a Kubernetes-compatible cluster in Python: point the real kubectl
(or any Kubernetes client) at it. `pybernetes server` runs a whole cluster on
this machine; the other subcommands run one component each, as Kubernetes does.
"""

EPILOG = """\
examples:
  pybernetes server                       start a cluster (data in {data_dir})
  export KUBECONFIG={data_dir}/admin.kubeconfig
  kubectl get --raw /readyz               ask the cluster whether it is ready
  pybernetes server --data-dir /tmp/pyb --https-listen-port 7443
                                          a second cluster beside the first
  pybernetes <subcommand> --help          the flags of one subcommand
"""


def build_parser() -> argparse.ArgumentParser:
    from pybernetes.cli.flags import default_data_dir
    parser = argparse.ArgumentParser(
        prog="pybernetes", description=DESCRIPTION,
        epilog=EPILOG.format(data_dir=default_data_dir()),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"pybernetes {_version()}")
    sub = parser.add_subparsers(title="subcommands", metavar="<subcommand>")
    for name in SUBCOMMANDS:
        importlib.import_module(f"pybernetes.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    _die_with_supervisor()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("pybernetes")
    except Exception:  # running from a source tree that is not installed
        return "0.1.0"


def _die_with_supervisor() -> None:
    """A child of `pybernetes server` must not outlive it, even if it is SIGKILLed."""
    parent = os.environ.pop("PYBERNETES_SUPERVISOR_PID", "")
    if not parent or not sys.platform.startswith("linux"):
        return
    import ctypes
    pr_set_pdeathsig = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != int(parent):  # the supervisor died before prctl took effect
        sys.exit(1)


if __name__ == "__main__":
    sys.exit(main())
