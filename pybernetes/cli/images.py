"""`pybernetes images pull|import|ls|rm`: the node's image store, as `crictl images`
shows a containerd node's."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

DESCRIPTION = """\
Manage the images a node's kubelet runs containers from: pull them from a registry
(Docker Hub names are normalised, nginx -> docker.io/library/nginx:latest), import
`docker save` or OCI-layout tarballs, list and remove them. The store is the one the
kubelet uses when given the same --root.
"""

EPILOG = """\
examples:
  pybernetes images pull busybox:1.36
  pybernetes images pull 127.0.0.1:5000/app:v1
  pybernetes images pull --registries registries.yaml nginx:alpine
      where registries.yaml (k3s' shape) sends docker.io to a local mirror:
        mirrors:
          docker.io:
            endpoint: ["http://127.0.0.1:5000"]
  pybernetes images pull --creds user:secret registry.example.com/private/app:v2
  pybernetes images import busybox.tar        a `docker save` or OCI-layout tarball
  pybernetes images ls
  pybernetes images rm busybox:1.36
"""


def default_root() -> str:
    if os.geteuid() == 0:
        return "/var/lib/pybernetes/kubelet/images"
    return os.path.join(os.path.expanduser("~"), ".local", "share", "pybernetes", "images")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", default=default_root(), metavar="DIR",
                   help="the image store (default: %(default)s)")
    p.add_argument("--registries", metavar="FILE",
                   help="registry mirrors and credentials, k3s registries.yaml format")


def register(sub: Any) -> None:
    p = sub.add_parser("images", help="pull, import, list and remove node images",
                       description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])
    cmds = p.add_subparsers(title="commands", metavar="<command>")
    pull = cmds.add_parser("pull", help="pull an image from a registry")
    _common(pull)
    pull.add_argument("image", help="name[:tag][@digest]")
    pull.add_argument("--creds", metavar="USER[:PASSWORD]",
                      help="credentials for the image's registry")
    pull.add_argument("--auth-file", metavar="FILE",
                      help="docker config JSON ({\"auths\": ...}), e.g. ~/.docker/config.json")
    pull.set_defaults(func=_run_pull)
    imp = cmds.add_parser("import", help="load docker-archive or OCI-layout tarballs")
    _common(imp)
    imp.add_argument("files", nargs="+", metavar="FILE")
    imp.set_defaults(func=_run_import)
    ls = cmds.add_parser("ls", aliases=["list"], help="list images")
    _common(ls)
    ls.add_argument("-q", "--quiet", action="store_true", help="only image ids")
    ls.add_argument("--digests", action="store_true", help="show repo digests too")
    ls.set_defaults(func=_run_ls)
    rm = cmds.add_parser("rm", aliases=["rmi"], help="remove images (by name or id)")
    _common(rm)
    rm.add_argument("images", nargs="+", metavar="IMAGE")
    rm.set_defaults(func=_run_rm)


def _store(args: argparse.Namespace) -> Any:
    from pybernetes.kubelet.images import ImageStore
    from pybernetes.kubelet.images.registries import RegistryConfig
    return ImageStore(args.root, RegistryConfig.load(args.registries))


def _fail(e: Exception) -> int:
    print(f"error: {getattr(e, 'message', None) or e}", file=sys.stderr)
    hint = getattr(e, "hint", "")
    if hint:
        print(f"hint: {hint}", file=sys.stderr)
    return 1


def _auth(args: argparse.Namespace, image: str) -> Any:
    auths: list[Any] = []
    if args.auth_file:
        with open(args.auth_file) as f:
            auths.append(json.load(f))
    if args.creds:
        from pybernetes.kubelet.images.reference import parse_reference
        user, _, password = args.creds.partition(":")
        domain = parse_reference(image).domain
        auths.insert(0, {"auths": {domain: {"username": user, "password": password}}})
    return auths or None


def _run_pull(args: argparse.Namespace) -> int:
    from pybernetes.kubelet.images import ImageError
    from pybernetes.kubelet.images.reference import parse_reference
    try:
        parse_reference(args.image)
        store = _store(args)
        auth = _auth(args, args.image)
        rec = asyncio.run(_pull(store, args.image, auth))
    except (ImageError, ValueError, OSError) as e:
        return _fail(e)
    print(f"Image is up to date for {rec.id}")
    return 0


async def _pull(store: Any, image: str, auth: Any) -> Any:
    if sys.stderr.isatty():
        from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                                   TransferSpeedColumn)
        tasks: dict[str, Any] = {}
        with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                      TransferSpeedColumn(), transient=False) as bar:
            def show(digest: str, done: int, total: int) -> None:
                if digest not in tasks:
                    tasks[digest] = bar.add_task(digest[7:19], total=total)
                bar.update(tasks[digest], completed=done)
            return await store.pull(image, pull_policy="Always", auth=auth, progress=show)
    reported: set[str] = set()

    def lines(digest: str, done: int, total: int) -> None:
        if done >= total and digest not in reported:
            reported.add(digest)
            print(f"{digest[7:19]}: done ({human_size(total)})", file=sys.stderr, flush=True)
    print(f"pulling {image}", file=sys.stderr, flush=True)
    return await store.pull(image, pull_policy="Always", auth=auth, progress=lines)


def _run_import(args: argparse.Namespace) -> int:
    from pybernetes.kubelet.images import ImageError
    try:
        store = _store(args)
    except (ValueError, OSError) as e:
        return _fail(e)
    for path in args.files:
        try:
            records = asyncio.run(store.import_archive(path))
        except (ImageError, ValueError, OSError) as e:
            return _fail(e)
        for rec in records:
            names = ", ".join(rec.repo_tags) or "<none>"
            print(f"imported {names} ({rec.id})")
    return 0


def human_size(size: float) -> str:
    """Decimal units with 3 significant digits, as crictl/docker print sizes."""
    units = ("B", "kB", "MB", "GB", "TB", "PB")
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000
        i += 1
    return f"{size:.3g}{units[i]}"


def image_rows(records: list[Any], digests: bool = False) -> list[list[str]]:
    rows = []
    for rec in records:
        short_id = rec.id.split(":")[-1][:13]
        digest = rec.repo_digests[0].split("@")[-1][7:19] if rec.repo_digests else "<none>"
        names: list[tuple[str, str]] = []
        for tag in rec.repo_tags:
            repo, _, t = tag.rpartition(":")
            names.append((repo, t))
        if not names:
            repo = rec.repo_digests[0].split("@")[0] if rec.repo_digests else "<none>"
            names.append((repo, "<none>"))
        for repo, tag in names:
            row = [repo, tag] + ([digest] if digests else []) + [short_id,
                                                                 human_size(rec.size)]
            rows.append(row)
    return sorted(rows)


def format_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    lines = ["   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
             for r in [header] + rows]
    return "\n".join(lines)


def _run_ls(args: argparse.Namespace) -> int:
    try:
        store = _store(args)
    except (ValueError, OSError) as e:
        return _fail(e)
    records = store.list()
    if args.quiet:
        for rec in records:
            print(rec.id)
        return 0
    header = ["IMAGE", "TAG"] + (["DIGEST"] if args.digests else []) + ["IMAGE ID", "SIZE"]
    print(format_table(header, image_rows(records, args.digests)))
    return 0


def _run_rm(args: argparse.Namespace) -> int:
    from pybernetes.kubelet.images import ImageError
    try:
        store = _store(args)
    except (ValueError, OSError) as e:
        return _fail(e)
    status = 0
    for name in args.images:
        try:
            rec = store.remove(name)
        except ImageError as e:
            status = _fail(e)
            continue
        for tag in rec.repo_tags or [rec.id]:
            print(f"Deleted: {tag}")
    return status
