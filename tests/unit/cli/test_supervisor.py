"""The supervisor with real child processes: tee, restart with backoff, stop, kill."""
import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time

from pybernetes.cli.supervisor import Component, Supervisor

PY = sys.executable


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


async def _until(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        await asyncio.sleep(0.05)
    return False


async def test_tees_output_to_log_and_echo(tmp_path):
    lines = []
    sup = Supervisor([Component("talker", [PY, "-c", "import sys, time\n"
                                           "print('hello'); print('to err', file=sys.stderr)\n"
                                           "sys.stdout.write('no newline'); time.sleep(30)"])],
                     str(tmp_path / "logs"), echo=lambda n, line: lines.append((n, line)))
    await sup.start()
    assert await _until(lambda: len(lines) >= 2)
    await sup.stop()
    assert ("talker", "hello") in lines and ("talker", "to err") in lines
    assert ("talker", "no newline") in lines  # flushed at exit
    log = (tmp_path / "logs" / "talker.log").read_text()
    assert "hello\n" in log and "to err\n" in log


async def test_restarts_a_dying_child_with_backoff(tmp_path):
    reports = []
    marker = tmp_path / "starts"
    code = f"open({str(marker)!r}, 'a').write('x'); raise SystemExit(3)"
    sup = Supervisor([Component("crasher", [PY, "-c", code])], str(tmp_path),
                     echo=lambda *a: None, report=reports.append,
                     backoff_initial=0.1, backoff_max=0.4)
    t0 = time.monotonic()
    await sup.start()
    assert await _until(lambda: sup.restarts("crasher") >= 4, timeout=20)
    elapsed = time.monotonic() - t0
    await sup.stop()
    assert elapsed >= 0.1 + 0.2 + 0.4  # delays doubled, capped at 0.4
    assert "exited with code 3" in reports[0] and "restarting in 0.1s" in reports[0]
    assert "restarting in 0.2s" in reports[1] and "restarting in 0.4s" in reports[2]
    assert "restarting in 0.4s" in reports[3]
    assert len(marker.read_text()) >= 4


async def test_stop_terms_then_kills_the_stubborn(tmp_path):
    stubborn = textwrap.dedent("""
        import signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print(child.pid, flush=True)
        time.sleep(60)
    """)
    polite = "import time; time.sleep(60)"
    lines = []
    reports = []
    sup = Supervisor([Component("stubborn", [PY, "-c", stubborn]),
                      Component("polite", [PY, "-c", polite])],
                     str(tmp_path), echo=lambda n, line: lines.append(line),
                     report=reports.append, grace=1.0)
    await sup.start()
    assert await _until(lambda: lines)
    grandchild = int(lines[0])
    pids = sup.pids()
    assert set(pids) == {"stubborn", "polite"}
    t0 = time.monotonic()
    await sup.stop()
    assert 0.9 <= time.monotonic() - t0 < 5
    assert any("stubborn did not stop within 1s" in r for r in reports)
    assert not any("polite" in r for r in reports)
    for pid in [*pids.values(), grandchild]:
        assert await _until(lambda: not _alive(pid), timeout=3), pid
    assert sup.pids() == {}


async def test_child_dies_with_a_killed_supervisor(tmp_path):
    """Children set PDEATHSIG (pybernetes.cli.main does it): a SIGKILLed server leaves none."""
    script = textwrap.dedent(f"""
        import asyncio, sys
        from pybernetes.cli.supervisor import Component, Supervisor
        child = ("from pybernetes.cli.main import _die_with_supervisor\\n"
                 "_die_with_supervisor(); import time; time.sleep(60)")
        async def main():
            sup = Supervisor([Component("c", [sys.executable, "-c", child])], {str(tmp_path)!r})
            await sup.start()
            while not sup.pids():
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # let the child reach prctl
            print(sup.pids()["c"], flush=True)
            await asyncio.sleep(60)
        asyncio.run(main())
    """)
    root = __file__.rsplit("/tests/", 1)[0]
    proc = subprocess.Popen([PY, "-c", script], stdout=subprocess.PIPE, text=True, cwd=root)
    try:
        child = int(proc.stdout.readline())
        assert _alive(child)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=5)
        assert await _until(lambda: not _alive(child), timeout=5)
    finally:
        proc.kill()
        proc.wait()


async def test_big_log_is_rotated_on_restart(tmp_path):
    code = "print('x' * 300)"
    sup = Supervisor([Component("noisy", [PY, "-c", code])], str(tmp_path), echo=lambda *a: None,
                     report=lambda *a: None, backoff_initial=0.05, backoff_max=0.05,
                     max_log_bytes=500)
    await sup.start()
    assert await _until(lambda: sup.restarts("noisy") >= 4)
    await sup.stop()
    assert (tmp_path / "noisy.log.1").stat().st_size > 500
    assert (tmp_path / "noisy.log").stat().st_size <= 1000
