"""The aiohttp application: request pipeline and routes.

Pipeline, outermost first: Status errors (nothing but a Kubernetes Status ever
leaves on failure) -> authentication -> request info -> authorization -> the
route (discovery, openapi, health, or a resource handler, which runs admission).
"""
from __future__ import annotations

import logging
import platform
import sys
import time
from typing import Awaitable, Callable

from aiohttp import web

from ..auth.authn import UserInfo, authenticate_x509
from ..auth.authz import Authorizer
from ..auth.impersonation import impersonate
from ..machinery import errors
from . import request_info
from .rest import ResourceHandler, json_response
from .serviceaccount_tokens import authenticate_bearer
from .state import APIState

log = logging.getLogger("pybernetes.apiserver")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

KUBE_VERSION = ("1", "33", "v1.33.0")
ANONYMOUS = UserInfo("system:anonymous", ["system:unauthenticated"])


def version_info() -> dict:
    major, minor, git = KUBE_VERSION
    return {"major": major, "minor": minor, "emulationMajor": major, "emulationMinor": minor,
            "minCompatibilityMajor": major, "minCompatibilityMinor": str(int(minor) - 1),
            "gitVersion": f"{git}+pybernetes", "gitCommit": "pybernetes",
            "gitTreeState": "clean", "buildDate": "2026-11-22T00:00:00Z",
            "goVersion": f"python{platform.python_version()}", "compiler": "cpython",
            "platform": f"{sys.platform}/{_arch()}"}


def _arch() -> str:
    m = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(m, m)


@web.middleware
async def status_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except errors.StatusError as e:
        resp = json_response(e.status(), e.code)
        for k, v in e.headers.items():
            resp.headers[k] = v
        return resp
    except web.HTTPException as e:
        if e.status < 400:
            raise
        reason = {404: "NotFound", 405: "MethodNotAllowed", 413: "RequestEntityTooLarge",
                  415: "UnsupportedMediaType"}.get(e.status, "BadRequest")
        msg = "the server could not find the requested resource" if e.status == 404 else \
            (e.text or e.reason)
        return json_response(errors.StatusError(e.status, reason, msg, {}).status(), e.status)
    except (ConnectionResetError, ConnectionError):
        raise
    except Exception as e:  # a bug must never reach the client as a traceback
        log.exception("internal error serving %s %s", request.method, request.path)
        err = errors.internal(f"{type(e).__name__}: {e}")
        return json_response(err.status(), 500)


def make_pipeline(authorizer: Authorizer) -> Handler:
    @web.middleware
    async def pipeline(request: web.Request, handler: Handler) -> web.StreamResponse:
        user = authenticate_x509(request) or \
            await authenticate_bearer(request, request.app["api"]) or ANONYMOUS
        if any(k[:12].lower() == "impersonate-" for k in request.headers):
            user = impersonate(user, request.headers, authorizer)
        request["user"] = user
        info = request_info.parse(request.method, request.path, dict(request.query))
        request["info"] = info
        authorizer.authorize(user, info)
        started = time.perf_counter()
        resp = await handler(request)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s %s %.1fms", request.method, request.path_qs, resp.status,
                      (time.perf_counter() - started) * 1000)
        return resp
    return pipeline


def build_app(api: APIState) -> web.Application:
    authorizer = Authorizer(api.config.authorization_modes, api)
    api.authorizer = authorizer  # the access reviews ask the same one
    app = web.Application(middlewares=[status_errors, make_pipeline(authorizer)],
                          client_max_size=api.config.max_request_bytes + 1024)
    app["api"] = api

    async def start_authorizer(app: web.Application) -> None:
        authorizer.start()

    async def stop_authorizer(app: web.Application) -> None:
        await authorizer.stop()
    app.on_startup.append(start_authorizer)
    app.on_cleanup.append(stop_authorizer)
    add_health_routes(app, api)
    from . import discovery, openapi
    discovery.add_routes(app, api.registry)
    openapi.add_routes(app, api.registry)
    handler = ResourceHandler(api)
    for prefix in ("/api/", "/apis/"):
        app.router.add_route("*", prefix + "{tail:.+}", handler)
    return app


def add_health_routes(app: web.Application, api: APIState) -> None:
    async def version(request: web.Request) -> web.Response:
        return json_response(version_info())

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok", content_type="text/plain")

    def checks(request: web.Request, names: list[str]) -> web.Response:
        verbose = "verbose" in request.query
        lines = [f"[+]{n} ok" for n in names]
        what = request.path.strip("/").split("/")[0]
        if verbose:
            return web.Response(text="\n".join(lines) + f"\n{what} check passed\n",
                                content_type="text/plain")
        return web.Response(text="ok", content_type="text/plain")

    async def healthz(request: web.Request) -> web.Response:
        return checks(request, ["ping", "log", "etcd", "poststarthook/start-apiserver"])

    async def readyz(request: web.Request) -> web.Response:
        try:
            await api.store.current_revision()
        except Exception as e:
            return web.Response(status=500, text=f"[-]etcd failed: {e}\nreadyz check failed\n",
                                content_type="text/plain")
        return checks(request, ["ping", "log", "etcd", "etcd-readiness", "informer-sync",
                                "poststarthook/start-apiserver"])

    for path in ("/version", "/version/"):
        app.router.add_get(path, version)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/livez", healthz)
    app.router.add_get("/readyz", readyz)
    for base in ("/healthz", "/livez", "/readyz"):
        for check in ("ping", "log", "etcd"):
            app.router.add_get(f"{base}/{check}", ok)
    app.router.add_get("/metrics", metrics)


async def metrics(request: web.Request) -> web.Response:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})
