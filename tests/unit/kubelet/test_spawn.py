"""spawn.run: host commands from the event loop, on threads of their own."""
from __future__ import annotations

import asyncio
import os

import pytest

from pybernetes.kubelet import spawn


async def test_input_output_and_exit_code():
    done = await spawn.run(["sh", "-c", "cat; echo oops >&2; exit 3"], timeout=30,
                           input=b"conf on stdin\n")
    assert (done.returncode, done.stdout, done.stderr) == (3, b"conf on stdin\n", b"oops\n")


async def test_env_and_cwd(tmp_path):
    done = await spawn.run(["sh", "-c", 'echo "$CNI_COMMAND $(pwd)"'], timeout=30,
                           env={"CNI_COMMAND": "ADD", "PATH": os.environ["PATH"]},
                           cwd=str(tmp_path))
    assert done.stdout.decode().split() == ["ADD", str(tmp_path)]


async def test_missing_binary_is_an_oserror(tmp_path):
    with pytest.raises(OSError):
        await spawn.run([str(tmp_path / "no-such-plugin")], timeout=30)


async def test_timeout_kills_the_whole_group(tmp_path):
    pid_file = tmp_path / "child.pid"
    with pytest.raises(spawn.CommandTimeout, match="timed out after 0.5s"):
        # the grandchild keeps stdout open: the kill must not wait for it
        await spawn.run(["sh", "-c", f"sleep 60 & echo $! > {pid_file}; wait"], timeout=0.5,
                        new_session=True)
    child = int(pid_file.read_text())
    for _ in range(100):       # killed with its group; reaped by init
        if not os.path.exists(f"/proc/{child}") or _zombie(child):
            break
        await asyncio.sleep(0.05)
    assert not os.path.exists(f"/proc/{child}") or _zombie(child)


async def test_many_at_once_all_finish():
    done = await asyncio.gather(*(spawn.run(["sh", "-c", f"echo {i}"], timeout=60)
                                  for i in range(2 * spawn.MAX_PARALLEL + 3)))
    assert [int(d.stdout) for d in done] == list(range(2 * spawn.MAX_PARALLEL + 3))


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
