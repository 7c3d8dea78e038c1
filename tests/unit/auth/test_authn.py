import asyncio
import ssl

import aiohttp
import pytest
from aiohttp import web

from pybernetes.auth.authn import (AUTHENTICATED, authenticate_x509, make_client_ssl_context,
                                   make_server_ssl_context)
from pybernetes.auth.pki import ensure_pki, issue_client_cert


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return ensure_pki(str(tmp_path_factory.mktemp("pki")))


@pytest.fixture
async def server(pki):
    """A real HTTPS server on loopback that answers with who it thinks the caller is."""
    async def whoami(request):
        user = authenticate_x509(request)
        if user is None:
            return web.json_response({"anonymous": True})
        return web.json_response({"username": user.username, "groups": user.groups})

    app = web.Application()
    app.router.add_get("/whoami", whoami)
    runner = web.AppRunner(app)
    await runner.setup()
    ctx = make_server_ssl_context(pki.server_crt, pki.server_key, pki.ca_crt)
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"https://127.0.0.1:{port}"
    await runner.cleanup()


async def _get(url, ctx):
    async with aiohttp.ClientSession() as s:
        async with s.get(url + "/whoami", ssl=ctx) as r:
            return await r.json()


async def test_admin_cert_is_system_admin(server, pki):
    body = await _get(server, make_client_ssl_context(pki.ca_crt, pki.admin_crt, pki.admin_key))
    assert body == {"username": "system:admin", "groups": ["system:masters", AUTHENTICATED]}


async def test_issued_cert_with_several_orgs(server, pki, tmp_path):
    crt, key = issue_client_cert(pki, "jane", ["dev", "ops"], str(tmp_path / "c"),
                                 str(tmp_path / "k"))
    body = await _get(server, make_client_ssl_context(pki.ca_crt, crt, key))
    assert body == {"username": "jane", "groups": ["dev", "ops", AUTHENTICATED]}


async def test_no_cert_is_not_authenticated(server, pki):
    assert await _get(server, make_client_ssl_context(pki.ca_crt)) == {"anonymous": True}


async def test_cert_from_another_ca_fails_handshake(server, pki, tmp_path):
    other = ensure_pki(str(tmp_path / "other"))
    ctx = make_client_ssl_context(pki.ca_crt, other.admin_crt, other.admin_key)
    with pytest.raises((aiohttp.ClientError, ssl.SSLError, ConnectionError)):
        await _get(server, ctx)


async def test_server_offers_only_http11_and_tls12_plus(server, pki):
    ctx = make_client_ssl_context(pki.ca_crt)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    host, port = server.removeprefix("https://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port), ssl=ctx,
                                                   server_hostname="localhost")
    sslobj = writer.get_extra_info("ssl_object")
    assert sslobj.selected_alpn_protocol() == "http/1.1"
    assert sslobj.version() == "TLSv1.2"
    writer.close()
    await writer.wait_closed()

    # TLS 1.0/1.1 cannot be negotiated with us whatever the client offers
    server_ctx = make_server_ssl_context(pki.server_crt, pki.server_key, pki.ca_crt)
    assert server_ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert server_ctx.verify_mode == ssl.CERT_OPTIONAL
