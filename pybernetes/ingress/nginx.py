"""One nginx master, supervised: started with our config, a new config checked with
`nginx -t` before it replaces the old one and the master is told with SIGHUP (nginx
then starts new workers and lets the old ones finish their requests), restarted with
a back-off if it dies, stopped gracefully (SIGQUIT, then SIGTERM/SIGKILL)."""
from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal

log = logging.getLogger("pybernetes.ingress.nginx")

APT_HINT = "apt-get install nginx-light"
BACKOFF = (1.0, 30.0)


def _die_with_parent() -> None:
    """In the child before exec: nginx gets SIGTERM (fast shutdown) if we die, even by
    SIGKILL, so no master outlives its controller."""
    import ctypes
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        pass


class ConfigError(Exception):
    """nginx -t refused a rendered config (the message is nginx's)."""


def find_nginx(explicit: str = "") -> str | None:
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None)


class Nginx:
    def __init__(self, binary: str, prefix: str) -> None:
        self.binary, self.prefix = binary, prefix
        self.conf = os.path.join(prefix, "nginx.conf")
        self.proc: asyncio.subprocess.Process | None = None
        self.reloads = 0
        self._stopping = False
        self._task: asyncio.Task | None = None
        self._started = asyncio.Event()

    def _argv(self, conf: str, *extra: str) -> list[str]:
        return [self.binary, "-e", "stderr", "-p", self.prefix, "-c", conf, *extra]

    async def check(self, text: str) -> None:
        """Raise ConfigError unless `nginx -t` accepts `text`."""
        candidate = os.path.join(self.prefix, "nginx.conf.new")
        with open(candidate, "w") as f:
            f.write(text)
        proc = await asyncio.create_subprocess_exec(
            *self._argv(candidate, "-t", "-q"), stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate()
        if proc.returncode != 0:
            raise ConfigError(err.decode(errors="replace").strip().replace(candidate, "nginx.conf"))

    async def apply(self, text: str) -> None:
        """Check `text`, make it the config, and start or reload the master."""
        await self.check(text)
        os.replace(os.path.join(self.prefix, "nginx.conf.new"), self.conf)
        if self._task is None:
            self._task = asyncio.create_task(self._keep_running(), name="nginx")
            await self._started.wait()
        elif self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGHUP)
            self.reloads += 1
            log.info("nginx: configuration reloaded (%d)", self.reloads)

    async def _keep_running(self) -> None:
        delay = BACKOFF[0]
        while not self._stopping:
            self.proc = await asyncio.create_subprocess_exec(
                *self._argv(self.conf), start_new_session=True, preexec_fn=_die_with_parent)
            log.info("nginx: master started (pid %d)", self.proc.pid)
            self._started.set()
            code = await self.proc.wait()
            if self._stopping:
                return
            log.error("nginx: master exited with %s; restarting in %.0fs", code, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF[1])

    async def stop(self, grace: float = 5.0) -> None:
        """SIGQUIT (finish open requests), after `grace` SIGTERM (close them: an open
        WebSocket would otherwise hold the stop), then SIGKILL master and workers."""
        self._stopping = True
        proc = self.proc
        if proc is not None and proc.returncode is None:
            for sig, wait in ((signal.SIGQUIT, grace), (signal.SIGTERM, 3.0)):
                proc.send_signal(sig)
                try:
                    await asyncio.wait_for(proc.wait(), wait)
                    break
                except asyncio.TimeoutError:
                    continue
            else:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)   # the master and its workers
                except ProcessLookupError:
                    pass
                await proc.wait()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
