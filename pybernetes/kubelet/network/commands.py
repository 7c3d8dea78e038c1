"""Running the host's network tools (unshare, nsenter, ip, iptables) from asyncio,
bounded in time, with their stderr in the error."""
from __future__ import annotations

import shutil

from pybernetes.kubelet import spawn


class CommandError(Exception):
    """A host command failed, timed out or is not installed."""


async def run(argv: list[str], timeout: float = 10.0,
              check: bool = True) -> tuple[int, bytes, bytes]:
    """Run argv; return (exit code, stdout, stderr). Raises CommandError when it
    cannot run, times out, or (with check) exits non-zero."""
    if shutil.which(argv[0]) is None:
        raise CommandError(f"{argv[0]} not found (install util-linux, iproute2, iptables)")
    try:
        done = await spawn.run(argv, timeout=timeout)
    except spawn.CommandTimeout:
        raise CommandError(f"{' '.join(argv)}: timed out after {timeout}s") from None
    except OSError as e:
        raise CommandError(f"{' '.join(argv)}: {e}") from None
    if check and done.returncode != 0:
        raise CommandError(f"{' '.join(argv)}: exit {done.returncode}: "
                           f"{done.stderr.decode(errors='replace').strip()}")
    return done.returncode, done.stdout, done.stderr
