"""Running the host's network tools (unshare, nsenter, ip, iptables) from asyncio,
bounded in time, with their stderr in the error."""
from __future__ import annotations

import asyncio
import shutil


class CommandError(Exception):
    """A host command failed, timed out or is not installed."""


async def run(argv: list[str], timeout: float = 10.0,
              check: bool = True) -> tuple[int, bytes, bytes]:
    """Run argv; return (exit code, stdout, stderr). Raises CommandError when it
    cannot run, times out, or (with check) exits non-zero."""
    if shutil.which(argv[0]) is None:
        raise CommandError(f"{argv[0]} not found (install util-linux, iproute2, iptables)")
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise CommandError(f"{' '.join(argv)}: timed out after {timeout}s") from None
    if check and proc.returncode != 0:
        raise CommandError(f"{' '.join(argv)}: exit {proc.returncode}: "
                           f"{err.decode(errors='replace').strip()}")
    return proc.returncode or 0, out, err
