"""The cluster's certificates: one CA, the API server's serving cert, client certs, SA keys.

`ensure_pki` is idempotent: the first run creates everything, later runs reuse
what is valid and re-issue only what is missing, expiring, signed by another CA,
or (for the serving cert) lacking a host name that was asked for. Keys are ECDSA
P-256 (fast to generate, accepted by Go's TLS stack); the service-account signing
key is RSA because that is what every token consumer expects (RS256).
"""
from __future__ import annotations

import datetime as _dt
import fcntl
import ipaddress
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
LEAF_DAYS = 365
RENEW_BEFORE = _dt.timedelta(days=90)  # k3s' rule: renew leaves in their last 90 days

# Names under which in-cluster clients and the `kubernetes` Service reach the API server.
DEFAULT_SANS = (
    "127.0.0.1", "::1", "localhost",
    "kubernetes", "kubernetes.default", "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local", "10.43.0.1",
)

Key = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class PKI:
    """Paths of the files `ensure_pki` maintains in one directory."""

    dir: str
    ca_crt: str
    ca_key: str
    server_crt: str
    server_key: str
    admin_crt: str
    admin_key: str
    sa_key: str
    sa_pub: str
    kubelet_client_crt: str  # the API server's identity toward kubelets (logs, exec, ...)
    kubelet_client_key: str

    @classmethod
    def at(cls, pki_dir: str) -> "PKI":
        j = lambda name: os.path.join(pki_dir, name)  # noqa: E731
        return cls(pki_dir, j("ca.crt"), j("ca.key"), j("server.crt"), j("server.key"),
                   j("admin.crt"), j("admin.key"), j("sa.key"), j("sa.pub"),
                   j("apiserver-kubelet-client.crt"), j("apiserver-kubelet-client.key"))


def ensure_pki(pki_dir: str, hosts: list[str] | tuple[str, ...] = ()) -> PKI:
    """Create (or reuse) the CA, serving cert, admin cert and SA keypair in `pki_dir`."""
    os.makedirs(pki_dir, mode=0o700, exist_ok=True)
    pki = PKI.at(pki_dir)
    with _dir_lock(pki_dir):
        ca_cert, ca_key = _ensure_ca(pki)
        _ensure_serving(pki, ca_cert, ca_key, [h for h in hosts if h])
        _ensure_client(ca_cert, ca_key, "system:admin", ["system:masters"],
                       pki.admin_crt, pki.admin_key)
        # kubeadm's name and group for the API server's client cert toward kubelets
        _ensure_client(ca_cert, ca_key, "kube-apiserver-kubelet-client", ["system:masters"],
                       pki.kubelet_client_crt, pki.kubelet_client_key)
        _ensure_sa_keys(pki)
    return pki


def issue_client_cert(pki: PKI, cn: str, orgs: list[str], out_crt: str,
                      out_key: str) -> tuple[str, str]:
    """A client cert (CN=user, O=groups) signed by the cluster CA; reused while still valid."""
    ca_cert, ca_key = load_cert(pki.ca_crt), load_key(pki.ca_key)
    with _dir_lock(pki.dir):
        _ensure_client(ca_cert, ca_key, cn, orgs, out_crt, out_key)
    return out_crt, out_key


def issue_serving_cert(pki: PKI, cn: str, hosts: list[str], out_crt: str,
                       out_key: str) -> tuple[str, str]:
    """A serving cert for `hosts` (names or IPs) signed by the cluster CA, e.g. a kubelet's;
    reused while valid and covering every host asked for."""
    ca_cert, ca_key = load_cert(pki.ca_crt), load_key(pki.ca_key)
    wanted = {_canonical_host(h) for h in hosts if h}
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    with _dir_lock(pki.dir):
        current = _reusable(out_crt, out_key, ca_cert)
        if current is None or current.subject != subject or not wanted <= san_names(current):
            _issue(ca_cert, ca_key, subject, ExtendedKeyUsageOID.SERVER_AUTH, out_crt, out_key,
                   sans=wanted)
    return out_crt, out_key


def load_cert(path: str) -> x509.Certificate:
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def load_key(path: str) -> Key:
    with open(path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    assert isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey))
    return key


def san_names(cert: x509.Certificate) -> set[str]:
    """DNS names and IP addresses (as strings) of a certificate's SAN extension."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    return ips | set(san.get_values_for_type(x509.DNSName))


# --- the pieces ---------------------------------------------------------------------------

def _ensure_ca(pki: PKI) -> tuple[x509.Certificate, Key]:
    if os.path.exists(pki.ca_crt) and os.path.exists(pki.ca_key):
        return load_cert(pki.ca_crt), load_key(pki.ca_key)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pybernetes-ca")])
    now = _now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(hours=1))
        .not_valid_after(now + _dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(pki.ca_key, key)
    _write_cert(pki.ca_crt, cert)
    return cert, key


def _ensure_serving(pki: PKI, ca_cert: x509.Certificate, ca_key: Key, hosts: list[str]) -> None:
    wanted = set(DEFAULT_SANS) | {_canonical_host(h) for h in hosts}
    current = _reusable(pki.server_crt, pki.server_key, ca_cert)
    if current is not None and wanted <= san_names(current):
        return
    if current is not None:  # keep names issued before: clients may already use them
        wanted |= san_names(current)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")])
    _issue(ca_cert, ca_key, subject, ExtendedKeyUsageOID.SERVER_AUTH,
           pki.server_crt, pki.server_key, sans=wanted)


def _ensure_client(ca_cert: x509.Certificate, ca_key: Key, cn: str, orgs: list[str],
                   out_crt: str, out_key: str) -> None:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    subject = x509.Name(attrs + [x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    current = _reusable(out_crt, out_key, ca_cert)
    if current is not None and current.subject == subject:
        return
    _issue(ca_cert, ca_key, subject, ExtendedKeyUsageOID.CLIENT_AUTH, out_crt, out_key)


def _ensure_sa_keys(pki: PKI) -> None:
    if os.path.exists(pki.sa_key) and os.path.exists(pki.sa_pub):
        return
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(pki.sa_key, key)
    pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    atomic_write(pki.sa_pub, pub, 0o644)


def _issue(ca_cert: x509.Certificate, ca_key: Key, subject: x509.Name, usage: x509.ObjectIdentifier,
           out_crt: str, out_key: str, sans: set[str] | None = None) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(hours=1))
        .not_valid_after(now + _dt.timedelta(days=LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(_general_names(sans)),
                                        critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write_key(out_key, key)
    _write_cert(out_crt, cert)


def _reusable(crt_path: str, key_path: str, ca_cert: x509.Certificate) -> x509.Certificate | None:
    """The cert at `crt_path` if it is ours to keep: signed by this CA, not expiring, key present."""
    if not (os.path.exists(crt_path) and os.path.exists(key_path)):
        return None
    try:
        cert = load_cert(crt_path)
        cert.verify_directly_issued_by(ca_cert)
        key = load_key(key_path)
    except (InvalidSignature, ValueError, TypeError, OSError, AssertionError):
        return None
    if cert.not_valid_after_utc - RENEW_BEFORE < _now():
        return None
    if key.public_key().public_numbers() != cert.public_key().public_numbers():
        return None
    return cert


def _general_names(names: set[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for n in sorted(names):
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            out.append(x509.DNSName(n))
    return out


def _canonical_host(host: str) -> str:
    """IP addresses in their canonical text form, names as given (lower-cased)."""
    host = host.strip().strip("[]")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.lower()


def _key_usage(cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=not cert_sign,
        data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign,
        crl_sign=cert_sign, encipher_only=False, decipher_only=False,
    )


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _write_key(path: str, key: Key) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    atomic_write(path, pem, 0o600)


def _write_cert(path: str, cert: x509.Certificate) -> None:
    atomic_write(path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def atomic_write(path: str, data: bytes, mode: int) -> None:
    """Write to a temp file created with `mode` (never world-readable in between), then rename."""
    tmp = f"{path}.tmp.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # O_CREAT's mode is filtered by the umask
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


@contextmanager
def _dir_lock(pki_dir: str) -> Iterator[None]:
    """Serialise concurrent ensure_pki/issue_client_cert calls on one directory."""
    fd = os.open(os.path.join(pki_dir, ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
