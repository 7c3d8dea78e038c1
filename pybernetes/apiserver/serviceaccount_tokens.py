"""ServiceAccount tokens inside the API server: the `serviceaccounts/token` subresource
(authentication.k8s.io/v1 TokenRequest) and the bearer-token step of authentication.

Both use the service-account key pair in <data-dir>/pki (sa.key, sa.pub), read once per
process on first use. The rules are upstream's TokenREST and its serviceaccount
authenticator (pkg/registry/core/serviceaccount/storage/token.go,
pkg/serviceaccount), in our own words: see pybernetes/auth/serviceaccount_tokens.py.
"""
from __future__ import annotations

import logging
import os
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..auth import serviceaccount_tokens as sat
from ..auth.authn import UserInfo
from ..auth.pki import PKI
from ..machinery import errors
from .request_info import RequestInfo
from .resource_store import ResourceStore

if TYPE_CHECKING:
    from .rest import ResourceHandler
    from .state import APIState

log = logging.getLogger("pybernetes.apiserver")

TOKEN_REQUEST_SCHEMA = "io.k8s.api.authentication.v1.TokenRequest"
TOKEN_REQUEST_VERSION = "authentication.k8s.io/v1"
DEFAULT_EXPIRATION = 3600
MIN_EXPIRATION = 600  # upstream: "less than 10 minutes" is refused
MAX_EXPIRATION = 1 << 32


class _Keys:
    """The signer and the authenticator of one API server, from its PKI directory."""

    def __init__(self, api: "APIState"):
        pki = PKI.at(api.config.pki_dir)
        self.signer: sat.Signer | None = None
        self.authenticator: sat.TokenAuthenticator | None = None
        if os.path.exists(pki.sa_key) and os.path.exists(pki.sa_pub):
            self.signer = sat.Signer.from_files(pki.sa_key, pki.sa_pub)
            with open(pki.sa_pub, "rb") as f:
                self.authenticator = sat.TokenAuthenticator(f.read(), _lookup(api))


def _keys(api: "APIState") -> _Keys:
    keys = getattr(api, "_sa_token_keys", None)
    if keys is None:
        keys = _Keys(api)
        setattr(api, "_sa_token_keys", keys)
    return keys


def _lookup(api: "APIState") -> sat.ObjectLookup:
    async def lookup(plural: str, namespace: str, name: str, uid: str) -> dict | None:
        rs = api.resource("", "v1", plural)
        if rs is None:
            return None
        cached = rs.cache.get(rs.key(namespace, name))
        if cached is not None and (not uid or cached["metadata"].get("uid") == uid):
            return cached
        # not (yet) in the watch cache, or the cache holds another incarnation
        found = await rs.try_get(namespace, name)
        return found[0] if found else None
    return lookup


# ----- authentication -------------------------------------------------------------------
def bearer_token(request: web.Request) -> str:
    """The token of an `Authorization: Bearer <token>` header ("" without one)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return ""
    return token.strip()


async def authenticate_bearer(request: web.Request, api: "APIState") -> UserInfo | None:
    """The ServiceAccount behind the request's bearer token; None without a token. A token
    that does not authenticate is a 401, as upstream (never a fall back to anonymous)."""
    token = bearer_token(request)
    if not token:
        return None
    authn = _keys(api).authenticator
    if authn is None:
        raise errors.unauthorized()
    try:
        return await authn.authenticate(token)
    except sat.InvalidToken as e:
        log.debug("bearer token refused: %s", e)
        raise errors.unauthorized() from None


async def review_token(api: "APIState", token: str,
                       audiences: list[str]) -> tuple[UserInfo | None, list[str], str]:
    """TokenReview: (user, audiences the token is good for, error) — the user None with
    the reason when the token does not authenticate; no audiences means the API's."""
    authn = _keys(api).authenticator
    if authn is None:
        return None, [], "no service account key to verify tokens with"
    try:
        user, auds = await authn.review(token, tuple(audiences or sat.API_AUDIENCES))
    except sat.InvalidToken as e:
        return None, [], f"[invalid bearer token, {e}]"
    return user, auds, ""


# ----- serviceaccounts/token -----------------------------------------------------------
def parse_token_request(body: Any) -> dict:
    """The TokenRequest's spec with upstream's defaults, after its decoding checks."""
    from .rest import reject_wrong_types
    if not isinstance(body, dict):
        raise errors.bad_request("the body of the request must be a TokenRequest object")
    kind, av = body.get("kind"), body.get("apiVersion")
    if kind is not None and kind != "TokenRequest":
        raise errors.bad_request(f"the kind in the data ({kind}) does not match the expected "
                                 "kind (TokenRequest)")
    if av is not None and av != TOKEN_REQUEST_VERSION:
        raise errors.bad_request(f"the API version in the data ({av}) does not match the "
                                 f"expected API version ({TOKEN_REQUEST_VERSION})")
    reject_wrong_types(body, TOKEN_REQUEST_SCHEMA, "TokenRequest", "v1")
    spec = dict(body.get("spec") or {})
    if spec.get("expirationSeconds") is None:
        spec["expirationSeconds"] = DEFAULT_EXPIRATION
    spec["audiences"] = list(spec.get("audiences") or [])
    return spec


def validate_token_request(name: str, spec: dict) -> None:
    seconds = spec["expirationSeconds"]
    problems = []
    if seconds < MIN_EXPIRATION:
        problems.append(errors.invalid_value("spec.expirationSeconds", seconds,
                                             "may not specify a duration less than 10 minutes"))
    elif seconds > MAX_EXPIRATION:
        problems.append(errors.invalid_value("spec.expirationSeconds", seconds,
                                             "may not specify a duration larger than 2^32 "
                                             "seconds"))
    if problems:
        raise errors.invalid("TokenRequest", name, problems, "authentication.k8s.io")


async def _bound_object(api: "APIState", sa_name: str, ns: str,
                        ref: dict) -> tuple[dict | None, dict | None, dict | None]:
    """(pod, secret, node) the token is bound to, each checked against the ref's uid."""
    av, kind, name = ref.get("apiVersion") or "", ref.get("kind") or "", ref.get("name") or ""
    group = av.rpartition("/")[0] if "/" in av else ""
    version = av.rpartition("/")[2]
    plural = {"Pod": "pods", "Secret": "secrets", "Node": "nodes"}.get(kind)
    if group != "" or plural is None:
        raise errors.bad_request(f"cannot bind token to object of type {group}/{version}, "
                                 f"Kind={kind}")
    rs = api.resource("", "v1", plural)
    assert rs is not None
    obj = await rs.get("" if kind == "Node" else ns, name)
    if ref.get("uid") and ref["uid"] != obj["metadata"].get("uid"):
        raise errors.conflict(kind, name, f"the UID in the bound object reference "
                              f"({ref['uid']}) does not match the UID in record. The object "
                              "might have been deleted and then recreated")
    if kind == "Pod":
        if (obj.get("spec") or {}).get("serviceAccountName", "") != sa_name:
            raise errors.bad_request(f'cannot bind token for serviceaccount "{sa_name}" to pod '
                                     "running with different serviceaccount name.")
        return obj, None, await _pod_node(api, obj)
    if kind == "Secret":
        return None, obj, None
    return None, None, obj


async def _pod_node(api: "APIState", pod: dict) -> dict | None:
    """The pod's node, named in its tokens when it exists (upstream: PodNodeInfo)."""
    node_name = (pod.get("spec") or {}).get("nodeName")
    if not node_name:
        return None
    rs = api.resource("", "v1", "nodes")
    assert rs is not None
    cached = rs.cache.get(rs.key("", node_name))
    if cached is not None:
        return cached
    found = await rs.try_get("", node_name)
    return found[0] if found else None


def _rfc3339(ts: int) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


async def handle_token_request(h: "ResourceHandler", request: web.Request, info: RequestInfo,
                               rs: ResourceStore, ns: str) -> web.Response:
    from .rest import json_response, read_body
    if info.verb != "create":
        raise errors.method_not_allowed(info.verb)
    body, _ = await read_body(request, h.api.config.max_request_bytes)
    spec = parse_token_request(body)
    validate_token_request(info.name, spec)
    signer = _keys(h.api).signer
    if signer is None:
        raise errors.internal("failed to generate token: no service account signing key")
    sa = await rs.get(ns, info.name)
    pod = secret = node = None
    ref = spec.get("boundObjectRef")
    if ref:
        pod, secret, node = await _bound_object(h.api, info.name, ns, ref)
    if not spec["audiences"]:
        spec["audiences"] = list(sat.API_AUDIENCES)
    seconds, warn_after = spec["expirationSeconds"], None
    claims = sat.bound_claims(sa, spec["audiences"], seconds, pod=pod, secret=secret, node=node)
    if pod is not None and seconds == sat.WARN_ONLY_SECONDS and \
            set(spec["audiences"]) <= set(sat.API_AUDIENCES):
        # the kubelet's default: a long token that only warns once past its requested life
        warn_after = claims["iat"] + seconds
        claims["exp"] = claims["iat"] + sat.EXTENDED_SECONDS
        claims["kubernetes.io"]["warnafter"] = warn_after
    token = signer.sign(claims)
    out = {"kind": "TokenRequest", "apiVersion": TOKEN_REQUEST_VERSION,
           "metadata": {"name": info.name, "namespace": ns, "creationTimestamp": None},
           "spec": {"audiences": spec["audiences"], "expirationSeconds": seconds,
                    "boundObjectRef": ref or None},
           "status": {"token": token,
                      "expirationTimestamp": _rfc3339(claims["iat"] + seconds)}}
    return json_response(out, 201)
