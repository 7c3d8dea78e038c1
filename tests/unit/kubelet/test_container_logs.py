"""CRI log reading: the line format, tail with partial lines, since, follow across a
rotation and until the container stops."""
from __future__ import annotations

import asyncio
import os

from pybernetes.kubelet.container_logs import (
    LogOptions, follow_entries, parse_line, parse_time_ns, render)

T1 = "2016-10-06T00:17:09.669794202Z"
T2 = "2016-10-06T00:17:10.000000001Z"


def test_parse_full_and_partial_lines() -> None:
    e = parse_line(f"{T1} stdout F hello world".encode())
    assert e is not None and (e.stream, e.content) == ("stdout", b"hello world\n")
    p = parse_line(f"{T1} stderr P piece".encode())
    assert p is not None and (p.stream, p.content) == ("stderr", b"piece")
    assert parse_line(f"{T1} stdout F ".encode()).content == b"\n"  # an empty line
    assert parse_line(b"garbage") is None
    assert parse_line(f"{T1} other F x".encode()) is None


def test_time_parsing_keeps_nanoseconds() -> None:
    assert parse_time_ns(T2) - parse_time_ns("2016-10-06T00:17:10Z") == 1
    assert parse_time_ns("2016-10-06T02:17:10+02:00") == parse_time_ns("2016-10-06T00:17:10Z")
    assert parse_time_ns("yesterday") is None


def test_render_with_timestamps() -> None:
    e = parse_line(f"{T1} stdout F x".encode())
    assert render(e, True) == f"{T1} x\n".encode()


def collect(path: str, opts: LogOptions, running=None) -> bytes:
    async def go() -> bytes:
        async def still() -> bool:
            return running() if running else False
        return b"".join([render(e, opts.timestamps)
                         async for e in follow_entries(path, opts, still)])
    return asyncio.run(go())


def test_tail_counts_whole_lines(tmp_path) -> None:
    log = tmp_path / "0.log"
    log.write_text(f"{T1} stdout F one\n{T1} stdout P tw\n{T1} stdout F o\n"
                   f"{T2} stderr F three\n")
    assert collect(str(log), LogOptions()) == b"one\ntwo\nthree\n"
    assert collect(str(log), LogOptions(tail_lines=2)) == b"two\nthree\n"
    assert collect(str(log), LogOptions(tail_lines=0)) == b""
    assert collect(str(log), LogOptions(since_ns=parse_time_ns(T2))) == b"three\n"


def test_follow_reads_across_rotation_until_stopped(tmp_path) -> None:
    log = tmp_path / "0.log"
    log.write_text(f"{T1} stdout F before\n")
    state = {"phase": 0}

    async def go() -> list[bytes]:
        got: list[bytes] = []

        async def running() -> bool:
            return state["phase"] < 3

        async def writer() -> None:
            await asyncio.sleep(0.3)
            with open(log, "a") as f:
                f.write(f"{T2} stdout F appended\n")
            await asyncio.sleep(0.5)
            os.rename(log, str(log) + ".20161006-001710")  # rotated as the kubelet does
            log.write_text(f"{T2} stdout F after rotation\n")
            await asyncio.sleep(0.5)
            state["phase"] = 3

        task = asyncio.create_task(writer())
        async for e in follow_entries(str(log), LogOptions(follow=True), running):
            got.append(e.content)
        await task
        return got

    assert asyncio.run(asyncio.wait_for(go(), 20)) == [
        b"before\n", b"appended\n", b"after rotation\n"]
