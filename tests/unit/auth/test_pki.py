import os
import stat

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pybernetes.auth.pki import (DEFAULT_SANS, PKI, ensure_pki, issue_client_cert, load_cert,
                                 load_key, san_names)


@pytest.fixture
def pki(tmp_path) -> PKI:
    return ensure_pki(str(tmp_path / "pki"), ["node1.example", "192.0.2.7"])


def _mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _eku(cert):
    return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def test_certs_chain_to_the_ca(pki):
    ca = load_cert(pki.ca_crt)
    assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "pybernetes-ca"
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    years = (ca.not_valid_after_utc - ca.not_valid_before_utc).days / 365
    assert 9.9 < years < 10.1
    for path in (pki.server_crt, pki.admin_crt):
        load_cert(path).verify_directly_issued_by(ca)  # raises if not signed by the CA


def test_serving_cert_names(pki):
    cert = load_cert(pki.server_crt)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "kube-apiserver"
    names = san_names(cert)
    assert set(DEFAULT_SANS) <= names
    assert {"127.0.0.1", "::1", "localhost", "kubernetes.default.svc.cluster.local",
            "10.43.0.1", "node1.example", "192.0.2.7"} <= names
    # IPs are IP SANs (Go ignores IPs written as DNS names)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "10.43.0.1" in {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    assert "10.43.0.1" not in san.get_values_for_type(x509.DNSName)
    assert _eku(cert) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_admin_cert_identity(pki):
    cert = load_cert(pki.admin_crt)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:admin"
    orgs = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    assert orgs == ["system:masters"]
    assert _eku(cert) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_keys_private_and_matching(pki):
    for crt, key in ((pki.ca_crt, pki.ca_key), (pki.server_crt, pki.server_key),
                     (pki.admin_crt, pki.admin_key)):
        assert _mode(key) == 0o600
        assert load_key(key).public_key().public_numbers() == \
            load_cert(crt).public_key().public_numbers()
    assert _mode(pki.sa_key) == 0o600
    sa = load_key(pki.sa_key)
    assert sa.key_size == 2048 and type(sa).__name__.startswith("RSA")
    with open(pki.sa_pub, "rb") as f:
        assert b"BEGIN PUBLIC KEY" in f.read()
    assert _mode(pki.dir) == 0o700


def test_second_call_reuses_everything(pki):
    files = [pki.ca_crt, pki.ca_key, pki.server_crt, pki.server_key, pki.admin_crt,
             pki.admin_key, pki.sa_key, pki.sa_pub]
    before = {p: open(p, "rb").read() for p in files}
    again = ensure_pki(pki.dir, ["node1.example"])  # a subset of the names: nothing to do
    assert again == pki
    assert {p: open(p, "rb").read() for p in files} == before


def test_growing_hosts_reissues_only_the_serving_cert(pki):
    ca_before = open(pki.ca_crt, "rb").read()
    admin_before = open(pki.admin_crt, "rb").read()
    ensure_pki(pki.dir, ["new.example", "2001:db8::1"])
    names = san_names(load_cert(pki.server_crt))
    assert {"new.example", "2001:db8::1", "node1.example", "192.0.2.7"} <= names
    assert open(pki.ca_crt, "rb").read() == ca_before
    assert open(pki.admin_crt, "rb").read() == admin_before
    load_cert(pki.server_crt).verify_directly_issued_by(load_cert(pki.ca_crt))


def test_new_ca_reissues_leaves(pki):
    os.remove(pki.ca_crt)
    old_admin = load_cert(pki.admin_crt)
    ensure_pki(pki.dir, [])
    ca = load_cert(pki.ca_crt)
    load_cert(pki.admin_crt).verify_directly_issued_by(ca)
    load_cert(pki.server_crt).verify_directly_issued_by(ca)
    assert load_cert(pki.admin_crt).serial_number != old_admin.serial_number


def test_issue_client_cert(pki, tmp_path):
    crt, key = str(tmp_path / "kubelet.crt"), str(tmp_path / "kubelet.key")
    issue_client_cert(pki, "system:node:n1", ["system:nodes"], crt, key)
    cert = load_cert(crt)
    cert.verify_directly_issued_by(load_cert(pki.ca_crt))
    assert cert.subject.rfc4514_string() == "CN=system:node:n1,O=system:nodes"
    assert _mode(key) == 0o600
    serial = cert.serial_number
    issue_client_cert(pki, "system:node:n1", ["system:nodes"], crt, key)
    assert load_cert(crt).serial_number == serial  # reused
    issue_client_cert(pki, "system:node:n2", ["system:nodes"], crt, key)
    assert load_cert(crt).serial_number != serial  # other identity: re-issued
