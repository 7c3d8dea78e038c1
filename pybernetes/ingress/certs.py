"""TLS material for nginx: the default (self-signed) certificate served for unknown SNI
names, and kubernetes.io/tls Secrets written out as PEM files (0600, certificate then
key) once they are checked to hold a matching certificate and key."""
from __future__ import annotations

import base64
import datetime
import hashlib
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pybernetes.auth.pki import atomic_write

DEFAULT_CN = "PyBernetes Ingress Controller Fake Certificate"  # as ingress-nginx's "Fake"


def ensure_default_cert(path: str) -> str:
    """A self-signed certificate + key at `path`, made once and kept."""
    if os.path.exists(path):
        return path
    cert, key = self_signed(DEFAULT_CN, "ingress.local", days=3650)
    atomic_write(path, cert + key, 0o600)
    return path


def self_signed(cn: str, dns_name: str, days: int) -> tuple[bytes, bytes]:
    """(certificate, key) as PEM: a new EC key's self-signed certificate for `cn` with
    `dns_name` as its one SAN, valid from an hour ago (clock skew) for `days` days."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def secret_pem(secret: dict) -> tuple[bytes | None, str]:
    """(certificate chain + key as PEM, "") from a TLS Secret, or (None, why not)."""
    data = secret.get("data") or {}
    try:
        crt = base64.b64decode(data.get("tls.crt") or "")
        key = base64.b64decode(data.get("tls.key") or "")
    except ValueError:
        return None, "tls.crt or tls.key is not base64"
    if not crt or not key:
        return None, "tls.crt or tls.key is missing"
    try:
        certs = x509.load_pem_x509_certificates(crt)
        pkey = serialization.load_pem_private_key(key, password=None)
    except ValueError as e:
        return None, f"cannot read the certificate or key: {e}"
    if certs[0].public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) != \
            pkey.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo):
        return None, "the key does not belong to the certificate"
    chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
    return chain + _key_pem(pkey), ""


def write_secret(cert_dir: str, secret: dict) -> tuple[str | None, str]:
    """Write a Secret's PEM under cert_dir (named by its content, so nginx sees a new file
    on change); (path, "") or (None, why not)."""
    pem, why = secret_pem(secret)
    if pem is None:
        return None, why
    md = secret.get("metadata") or {}
    digest = hashlib.sha256(pem).hexdigest()[:12]
    path = os.path.join(cert_dir, f"{md.get('namespace')}_{md.get('name')}_{digest}.pem")
    if not os.path.exists(path):
        os.makedirs(cert_dir, mode=0o700, exist_ok=True)
        atomic_write(path, pem, 0o600)
    return path, ""
