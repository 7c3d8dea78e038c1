"""ServiceAccount token claims, signatures and validation (no server: the lookups are a dict)."""
from __future__ import annotations

import asyncio
import base64
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pybernetes.auth import serviceaccount_tokens as sat


def _keys() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    priv = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return priv, pub


PRIV, PUB = _keys()
OTHER_PRIV, _ = _keys()
SIGNER = sat.Signer(PRIV, sat.key_id(PUB))

SA = {"metadata": {"name": "default", "namespace": "ns1", "uid": "sa-uid"}}
POD = {"metadata": {"name": "web", "namespace": "ns1", "uid": "pod-uid"}}
NODE = {"metadata": {"name": "node1", "uid": "node-uid"}}
SECRET = {"metadata": {"name": "tok", "namespace": "ns1", "uid": "secret-uid"}}


def _authenticator(objects: dict) -> sat.TokenAuthenticator:
    async def lookup(kind: str, ns: str, name: str, uid: str) -> dict | None:
        return objects.get((kind, ns, name))
    return sat.TokenAuthenticator(PUB, lookup)


def _world() -> dict:
    return {("serviceaccounts", "ns1", "default"): SA, ("pods", "ns1", "web"): POD,
            ("nodes", "", "node1"): NODE, ("secrets", "ns1", "tok"): SECRET}


def _header(token: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))


def test_bound_claims_are_upstreams():
    claims = sat.bound_claims(SA, ["api"], 600, pod=POD, node=NODE, now=1000)
    assert claims == {
        "aud": ["api"], "exp": 1600, "iat": 1000, "nbf": 1000, "iss": sat.ISSUER,
        "jti": claims["jti"], "sub": "system:serviceaccount:ns1:default",
        "kubernetes.io": {"namespace": "ns1",
                          "serviceaccount": {"name": "default", "uid": "sa-uid"},
                          "pod": {"name": "web", "uid": "pod-uid"},
                          "node": {"name": "node1", "uid": "node-uid"}}}
    assert len(claims["jti"]) == 36


def test_signed_token_is_rs256_with_the_key_id_and_verifies():
    token = SIGNER.sign(sat.bound_claims(SA, list(sat.API_AUDIENCES), 600))
    assert _header(token) == {"alg": "RS256", "kid": sat.key_id(PUB), "typ": "JWT"}
    assert sat.verify(token, PUB)["sub"] == "system:serviceaccount:ns1:default"


@pytest.mark.parametrize("why,claims_or_token", [
    ("expired", lambda: SIGNER.sign(sat.bound_claims(
        SA, list(sat.API_AUDIENCES), 600, now=int(time.time()) - 3600))),
    ("not yet valid", lambda: SIGNER.sign(sat.bound_claims(
        SA, list(sat.API_AUDIENCES), 600, now=int(time.time()) + 3600))),
    ("other audience", lambda: SIGNER.sign(sat.bound_claims(SA, ["vault"], 600))),
    ("other key", lambda: sat.Signer(OTHER_PRIV, "k").sign(
        sat.bound_claims(SA, list(sat.API_AUDIENCES), 600))),
    ("other issuer", lambda: SIGNER.sign(dict(
        sat.bound_claims(SA, list(sat.API_AUDIENCES), 600), iss="https://elsewhere"))),
    ("garbled", lambda: "not.a.jwt"),
    ("hs256 with the public key", lambda: jwt.encode(
        sat.bound_claims(SA, list(sat.API_AUDIENCES), 600), "a-shared-secret-long-enough-for-hs256",
        algorithm="HS256")),
])
def test_verify_refuses(why, claims_or_token):
    with pytest.raises(sat.InvalidToken):
        sat.verify(claims_or_token(), PUB)


def test_authenticates_a_pod_bound_token_as_the_service_account():
    claims = sat.bound_claims(SA, list(sat.API_AUDIENCES), 600, pod=POD, node=NODE)
    user = asyncio.run(_authenticator(_world()).authenticate(SIGNER.sign(claims)))
    assert user.username == "system:serviceaccount:ns1:default"
    assert user.uid == "sa-uid"
    assert user.groups == ["system:serviceaccounts", "system:serviceaccounts:ns1",
                           "system:authenticated"]
    assert user.extra == {
        "authentication.kubernetes.io/pod-name": ["web"],
        "authentication.kubernetes.io/pod-uid": ["pod-uid"],
        "authentication.kubernetes.io/node-name": ["node1"],
        "authentication.kubernetes.io/node-uid": ["node-uid"],
        "authentication.kubernetes.io/credential-id": [f"JTI={claims['jti']}"]}


@pytest.mark.parametrize("gone", [("serviceaccounts", "ns1", "default"), ("pods", "ns1", "web"),
                                  ("secrets", "ns1", "tok")])
def test_a_token_dies_with_what_it_is_bound_to(gone):
    token = SIGNER.sign(sat.bound_claims(SA, list(sat.API_AUDIENCES), 600, pod=POD,
                                         secret=SECRET))
    world = _world()
    assert asyncio.run(_authenticator(world).authenticate(token))
    del world[gone]
    with pytest.raises(sat.InvalidToken):
        asyncio.run(_authenticator(world).authenticate(token))


def test_a_recreated_service_account_does_not_inherit_old_tokens():
    token = SIGNER.sign(sat.bound_claims(SA, list(sat.API_AUDIENCES), 600))
    world = _world()
    world[("serviceaccounts", "ns1", "default")] = {
        "metadata": dict(SA["metadata"], uid="new-uid")}
    with pytest.raises(sat.InvalidToken):
        asyncio.run(_authenticator(world).authenticate(token))


def test_legacy_token_is_valid_while_its_secret_holds_it():
    token = SIGNER.sign(sat.legacy_claims(SA, SECRET))
    claims = sat.verify(token, PUB)
    assert claims == {"iss": "kubernetes/serviceaccount",
                      "kubernetes.io/serviceaccount/namespace": "ns1",
                      "kubernetes.io/serviceaccount/secret.name": "tok",
                      "kubernetes.io/serviceaccount/service-account.name": "default",
                      "kubernetes.io/serviceaccount/service-account.uid": "sa-uid",
                      "sub": "system:serviceaccount:ns1:default"}
    world = _world()
    world[("secrets", "ns1", "tok")] = dict(
        SECRET, data={"token": base64.b64encode(token.encode()).decode()})
    user = asyncio.run(_authenticator(world).authenticate(token))
    assert user.username == "system:serviceaccount:ns1:default" and user.extra == {}
    world[("secrets", "ns1", "tok")] = dict(SECRET, data={"token": ""})
    with pytest.raises(sat.InvalidToken):
        asyncio.run(_authenticator(world).authenticate(token))
