import os
import stat

import yaml
from kubernetes import client, config

from pybernetes.auth.kubeconfig import read_kubeconfig, write_kubeconfig
from pybernetes.auth.pki import ensure_pki


def test_official_client_loads_it(tmp_path):
    pki = ensure_pki(str(tmp_path / "pki"))
    pem = lambda p: open(p, "rb").read()  # noqa: E731
    path = str(tmp_path / "sub" / "admin.kubeconfig")
    write_kubeconfig(path, "https://127.0.0.1:6443", pem(pki.ca_crt), pem(pki.admin_crt),
                     pem(pki.admin_key), cluster_name="pybernetes", user="admin")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not [f for f in os.listdir(tmp_path / "sub") if ".tmp" in f]

    cfg = client.Configuration()
    config.load_kube_config(config_file=path, client_configuration=cfg)
    assert cfg.host == "https://127.0.0.1:6443"
    # the loader writes embedded data to temp files; they must hold our PEMs
    assert open(cfg.ssl_ca_cert, "rb").read() == pem(pki.ca_crt)
    assert open(cfg.cert_file, "rb").read() == pem(pki.admin_crt)
    assert open(cfg.key_file, "rb").read() == pem(pki.admin_key)

    doc = yaml.safe_load(open(path))
    assert doc["current-context"] == "pybernetes"
    assert doc["contexts"][0]["context"] == {"cluster": "pybernetes", "user": "admin"}

    back = read_kubeconfig(path)
    assert back["server"] == "https://127.0.0.1:6443"
    assert back["key"] == pem(pki.admin_key)


def test_rewrite_replaces(tmp_path):
    path = str(tmp_path / "k")
    write_kubeconfig(path, "https://a:1", b"ca", b"crt", b"key")
    write_kubeconfig(path, "https://b:2", "ca", "crt", "key")
    assert read_kubeconfig(path)["server"] == "https://b:2"
    assert read_kubeconfig(path)["ca"] == b"ca"
