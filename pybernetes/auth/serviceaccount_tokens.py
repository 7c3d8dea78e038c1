"""ServiceAccount tokens: the JWTs the API server signs (TokenRequest, legacy Secret tokens)
and the bearer-token authenticator that accepts them, as kube-apiserver does.

Two kinds of token, both RS256 with the cluster's service-account key (pki.py's sa.key):

- bound tokens (TokenRequest, the kubelet's projected volumes): issuer `ISSUER`, an
  audience, a lifetime, a jti, and a `kubernetes.io` claim naming the ServiceAccount and
  the object the token is bound to (Pod, Secret or Node). They stop working when that
  object (or the ServiceAccount) is deleted or replaced by one with another uid;
- legacy tokens (the tokens controller writes them into `kubernetes.io/service-account-token`
  Secrets): issuer `kubernetes/serviceaccount`, no expiry, valid while the Secret still
  holds exactly that token and the ServiceAccount it names still exists.

`sign`/`verify` are pure (claims in, claims out); `TokenAuthenticator` adds the lookups.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import time
import uuid
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import jwt
from cryptography.hazmat.primitives import serialization

from .authn import AUTHENTICATED, UserInfo

# k3s and kubeadm clusters: --service-account-issuer and the API audience both default to it
ISSUER = "https://kubernetes.default.svc.cluster.local"
API_AUDIENCES = (ISSUER,)
LEGACY_ISSUER = "kubernetes/serviceaccount"
SA_PREFIX = "system:serviceaccount:"
SA_GROUP = "system:serviceaccounts"
# go-jose's default leeway for exp/nbf/iat, which upstream's validator uses
LEEWAY = 60
# the kubelet asks for this lifetime; upstream then issues a one-year token that only
# warns (warnafter) past 3607s, so old clients that never re-read the file keep working
WARN_ONLY_SECONDS = 3607
EXTENDED_SECONDS = 365 * 24 * 3600

EXTRA_POD_NAME = "authentication.kubernetes.io/pod-name"
EXTRA_POD_UID = "authentication.kubernetes.io/pod-uid"
EXTRA_NODE_NAME = "authentication.kubernetes.io/node-name"
EXTRA_NODE_UID = "authentication.kubernetes.io/node-uid"
EXTRA_CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"

LEGACY_NS = "kubernetes.io/serviceaccount/namespace"
LEGACY_SECRET = "kubernetes.io/serviceaccount/secret.name"
LEGACY_SA_NAME = "kubernetes.io/serviceaccount/service-account.name"
LEGACY_SA_UID = "kubernetes.io/serviceaccount/service-account.uid"


class InvalidToken(Exception):
    """A token that is ours in shape but must not authenticate (the reason is for logs)."""


def key_id(public_pem: bytes) -> str:
    """Upstream's kid: unpadded base64url of the SHA-256 of the key's DER SubjectPublicKeyInfo."""
    der = serialization.load_pem_public_key(public_pem).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def service_account_username(namespace: str, name: str) -> str:
    return f"{SA_PREFIX}{namespace}:{name}"


def _ref(obj: dict) -> dict:
    md = obj.get("metadata") or {}
    return {"name": md.get("name", ""), "uid": md.get("uid", "")}


def bound_claims(sa: dict, audiences: list[str], expiration_seconds: int, *,
                 pod: dict | None = None, secret: dict | None = None, node: dict | None = None,
                 now: int | None = None, warn_after: int | None = None) -> dict:
    """The claims of a bound token (what upstream's serviceaccount.Claims builds)."""
    now = int(time.time()) if now is None else now
    md = sa.get("metadata") or {}
    k8s: dict[str, Any] = {"namespace": md.get("namespace", ""), "serviceaccount": _ref(sa)}
    if pod is not None:
        k8s["pod"] = _ref(pod)
    if secret is not None:
        k8s["secret"] = _ref(secret)
    if node is not None:
        k8s["node"] = _ref(node)
    if warn_after is not None:
        k8s["warnafter"] = warn_after
    return {"aud": list(audiences), "exp": now + expiration_seconds, "iat": now,
            "iss": ISSUER, "jti": str(uuid.uuid4()), "kubernetes.io": k8s, "nbf": now,
            "sub": service_account_username(md.get("namespace", ""), md.get("name", ""))}


def legacy_claims(sa: dict, secret: dict) -> dict:
    """The claims of a long-lived token stored in a service-account-token Secret."""
    md, smd = sa.get("metadata") or {}, secret.get("metadata") or {}
    return {"iss": LEGACY_ISSUER, LEGACY_NS: md.get("namespace", ""),
            LEGACY_SECRET: smd.get("name", ""), LEGACY_SA_NAME: md.get("name", ""),
            LEGACY_SA_UID: md.get("uid", ""),
            "sub": service_account_username(md.get("namespace", ""), md.get("name", ""))}


@dataclass
class Signer:
    """Signs claims with the service-account private key (PEM)."""

    private_pem: bytes
    kid: str

    @classmethod
    def from_files(cls, key_path: str, pub_path: str) -> "Signer":
        with open(key_path, "rb") as f, open(pub_path, "rb") as g:
            return cls(f.read(), key_id(g.read()))

    def sign(self, claims: dict) -> str:
        return jwt.encode(claims, _private_key(self.private_pem), algorithm="RS256",
                          headers={"kid": self.kid})


# Parsed once per key: loading a PEM RSA key checks it (tens of milliseconds), and every
# TokenRequest (a pod's projected token) and every token-authenticated request needs one.
@functools.lru_cache(maxsize=8)
def _private_key(pem: bytes) -> Any:
    return serialization.load_pem_private_key(pem, password=None)


@functools.lru_cache(maxsize=8)
def _public_key(pem: bytes) -> Any:
    return serialization.load_pem_public_key(pem)


def verify(token: str, public_pem: bytes, audiences: tuple[str, ...] = API_AUDIENCES,
           now: float | None = None) -> dict:
    """The token's claims if it is one of ours, correctly signed and current; InvalidToken
    otherwise. Legacy tokens carry no audience or expiry and are not checked for them."""
    try:
        claims = jwt.decode(token, _public_key(public_pem), algorithms=["RS256"],
                            options={"verify_aud": False, "verify_exp": False,
                                     "verify_nbf": False, "verify_iat": False})
    except jwt.PyJWTError as e:
        raise InvalidToken(f"invalid token: {e}") from None
    if not isinstance(claims, dict):
        raise InvalidToken("claims are not an object")
    iss = claims.get("iss")
    if iss == LEGACY_ISSUER:
        return claims
    if iss != ISSUER:
        raise InvalidToken(f"unknown issuer {iss!r}")
    _check_times(claims, time.time() if now is None else now)
    aud = claims.get("aud")
    aud = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if not set(aud) & set(audiences):
        raise InvalidToken(f"token audiences {aud} is invalid for the target audiences "
                           f"{list(audiences)}")
    return claims


def _check_times(claims: dict, now: float) -> None:
    def num(name: str) -> float | None:
        v = claims.get(name)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise InvalidToken(f"{name} is not a number")
        return float(v)
    exp, nbf, iat = num("exp"), num("nbf"), num("iat")
    if exp is None:
        raise InvalidToken("bound token without exp")
    if now > exp + LEEWAY:
        raise InvalidToken("Token has expired.")
    if nbf is not None and now < nbf - LEEWAY:
        raise InvalidToken("token is not valid yet")
    if iat is not None and now < iat - LEEWAY:
        raise InvalidToken("token issued in the future")


# (kind, namespace, name) -> the live object or None; kind is "serviceaccounts", "pods",
# "secrets" or "nodes"; `uid` lets the lookup skip a stale cached copy
ObjectLookup = Callable[[str, str, str, str], Awaitable[dict | None]]


class TokenAuthenticator:
    """Bearer tokens → the ServiceAccount user, if the objects they name still exist."""

    def __init__(self, public_pem: bytes, lookup: ObjectLookup,
                 audiences: tuple[str, ...] = API_AUDIENCES):
        self.public_pem, self.lookup, self.audiences = public_pem, lookup, audiences

    async def authenticate(self, token: str) -> UserInfo:
        return (await self.review(token, self.audiences))[0]

    async def review(self, token: str, audiences: tuple[str, ...]) -> tuple[UserInfo, list[str]]:
        """The user and the audiences the token is good for among `audiences` (upstream's
        TokenReview answer); a legacy token counts as one for the API audiences."""
        claims = verify(token, self.public_pem, audiences)
        if claims.get("iss") == LEGACY_ISSUER:
            token_auds: list = list(API_AUDIENCES)
        else:
            aud = claims.get("aud")
            token_auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        matched = [a for a in token_auds if a in audiences]
        if not matched:
            raise InvalidToken(f"token audiences {token_auds} is invalid for the target "
                               f"audiences {list(audiences)}")
        user = await (self._legacy(token, claims) if claims.get("iss") == LEGACY_ISSUER
                      else self._bound(claims))
        return user, matched

    async def _alive(self, kind: str, namespace: str, ref: Any) -> dict:
        """The object `ref` ({name, uid}) names, which must exist with that uid."""
        if not isinstance(ref, dict) or not isinstance(ref.get("name"), str):
            raise InvalidToken(f"malformed {kind} reference")
        uid = str(ref.get("uid") or "")
        obj = await self.lookup(kind, namespace, ref["name"], uid)
        if obj is None:
            raise InvalidToken(f'{kind} "{ref["name"]}" not found')
        md = obj.get("metadata") or {}
        if uid and md.get("uid") != uid:
            raise InvalidToken(f'{kind} "{ref["name"]}" was replaced (uid {md.get("uid")}, '
                               f"token has {uid})")
        return obj

    async def _bound(self, claims: dict) -> UserInfo:
        k8s = claims.get("kubernetes.io")
        if not isinstance(k8s, dict) or not isinstance(k8s.get("namespace"), str):
            raise InvalidToken("missing kubernetes.io claim")
        ns = k8s["namespace"]
        sa = await self._alive("serviceaccounts", ns, k8s.get("serviceaccount"))
        extra: dict[str, list[str]] = {}
        if k8s.get("pod") is not None:
            pod = await self._alive("pods", ns, k8s["pod"])
            extra[EXTRA_POD_NAME] = [pod["metadata"]["name"]]
            extra[EXTRA_POD_UID] = [pod["metadata"].get("uid", "")]
        if k8s.get("secret") is not None:
            secret = await self._alive("secrets", ns, k8s["secret"])
            if (secret.get("metadata") or {}).get("deletionTimestamp"):
                raise InvalidToken("bound secret is being deleted")
        node_ref = k8s.get("node")
        if node_ref is not None:
            if k8s.get("pod") is None:  # a node-bound token needs its node; a pod's is info
                await self._alive("nodes", "", node_ref)
            extra[EXTRA_NODE_NAME] = [str(node_ref.get("name", ""))]
            extra[EXTRA_NODE_UID] = [str(node_ref.get("uid", ""))]
        if claims.get("jti"):
            extra[EXTRA_CREDENTIAL_ID] = [f"JTI={claims['jti']}"]
        return _user(sa, extra)

    async def _legacy(self, token: str, claims: dict) -> UserInfo:
        ns, name = claims.get(LEGACY_NS), claims.get(LEGACY_SA_NAME)
        secret_name = claims.get(LEGACY_SECRET)
        if not all(isinstance(v, str) and v for v in (ns, name, secret_name)):
            raise InvalidToken("malformed legacy token")
        assert isinstance(ns, str)
        sa = await self._alive("serviceaccounts", ns,
                               {"name": name, "uid": claims.get(LEGACY_SA_UID) or ""})
        secret = await self.lookup("secrets", ns, str(secret_name), "")
        if secret is None or (secret.get("metadata") or {}).get("deletionTimestamp"):
            raise InvalidToken(f'secret "{secret_name}" not found or being deleted')
        stored = ((secret.get("data") or {}).get("token")) or ""
        try:
            stored = base64.b64decode(stored).decode()
        except (ValueError, UnicodeDecodeError):
            stored = ""
        if stored != token:
            raise InvalidToken("token does not match the one in its secret")
        return _user(sa, {})


def _user(sa: dict, extra: dict[str, list[str]]) -> UserInfo:
    md = sa["metadata"]
    ns = md.get("namespace", "")
    return UserInfo(username=service_account_username(ns, md["name"]),
                    groups=[SA_GROUP, f"{SA_GROUP}:{ns}", AUTHENTICATED],
                    uid=md.get("uid", ""), extra=extra)
