"""Go's TLS stack (the real kubectl) accepts our certificates and presents the admin cert."""
import asyncio
import os
import shutil

import pytest
from aiohttp import web

from pybernetes.auth.authn import authenticate_x509, make_server_ssl_context
from pybernetes.auth.kubeconfig import write_kubeconfig
from pybernetes.auth.pki import ensure_pki

KUBECTL = shutil.which("kubectl.1.33", path="/usr/lib/google-cloud-sdk/bin")
pytestmark = [pytest.mark.kubectl,
              pytest.mark.skipif(KUBECTL is None, reason="kubectl.1.33 not installed")]


async def _kubectl(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        KUBECTL, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "HOME": "/nonexistent"})
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_kubectl_talks_to_a_server_with_our_pki(tmp_path, host):
    pki = ensure_pki(str(tmp_path / "pki"))
    seen = []

    async def readyz(request):
        user = authenticate_x509(request)
        seen.append((request.version, user))
        if user is None:
            return web.Response(status=401, text="Unauthorized")
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/readyz", readyz)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=make_server_ssl_context(
        pki.server_crt, pki.server_key, pki.ca_crt))
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        pem = lambda p: open(p, "rb").read()  # noqa: E731
        cfg = str(tmp_path / "kubeconfig")
        write_kubeconfig(cfg, f"https://{host}:{port}", pem(pki.ca_crt), pem(pki.admin_crt),
                         pem(pki.admin_key))
        code, out, err = await _kubectl("--kubeconfig", cfg, "get", "--raw", "/readyz")
        assert code == 0, err
        assert out.strip() == "ok"
        version, user = seen[-1]
        assert (version.major, version.minor) == (1, 1)  # ALPN kept Go off h2
        assert user.username == "system:admin"
        assert user.groups == ["system:masters", "system:authenticated"]
    finally:
        await runner.cleanup()
