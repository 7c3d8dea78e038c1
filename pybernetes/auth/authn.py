"""Who is calling: the user behind a request, from its verified TLS client certificate.

As kube-apiserver's x509 authenticator: the certificate's CommonName is the user
name, each Organization is a group, and every authenticated user is also in
`system:authenticated`. The TLS layer already verified the chain against the
client CA (CERT_OPTIONAL: a client without a certificate still connects and is
left to the other authenticators; a client with a bad one fails the handshake).
"""
from __future__ import annotations

import functools
import ssl
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

AUTHENTICATED = "system:authenticated"


@dataclass
class UserInfo:
    username: str
    groups: list[str] = field(default_factory=list)
    uid: str = ""
    extra: dict[str, list[str]] = field(default_factory=dict)


def authenticate_x509(request: Any) -> UserInfo | None:
    """The user named by the request's verified client certificate, or None without one."""
    transport = getattr(request, "transport", None)
    if transport is None:
        return None
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    identity = _identity(der)
    if identity is None:
        return None
    username, groups = identity
    return UserInfo(username=username, groups=[*groups, AUTHENTICATED])


@functools.lru_cache(maxsize=1024)
def _identity(der: bytes) -> tuple[str, tuple[str, ...]] | None:
    """(CN, O...) of a DER certificate; cached because clients reuse one cert for every call."""
    subject = x509.load_der_x509_certificate(der).subject
    cns = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not cns or not cns[0].value:
        return None  # upstream refuses a certificate without a common name
    orgs = tuple(str(a.value) for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
    return str(cns[0].value), orgs


def make_server_ssl_context(cert: str, key: str, client_ca: str | None) -> ssl.SSLContext:
    """TLS 1.2+ serving context; client certs optional but verified against `client_ca`."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    if client_ca:
        ctx.load_verify_locations(cafile=client_ca)
        ctx.verify_mode = ssl.CERT_OPTIONAL
    # We speak HTTP/1.1 only; without this Go clients (kubectl) would try h2.
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def make_client_ssl_context(ca: str, cert: str | None = None, key: str | None = None) -> ssl.SSLContext:
    """Client side: trust the cluster CA and present a client certificate if given."""
    ctx = ssl.create_default_context(cafile=ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx
