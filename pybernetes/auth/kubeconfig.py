"""Kubeconfig files with embedded credentials, as `kubectl` and client libraries read them."""
from __future__ import annotations

import base64
import os

import yaml

from pybernetes.auth.pki import atomic_write


def kubeconfig_dict(server_url: str, ca_pem: bytes, client_crt_pem: bytes,
                    client_key_pem: bytes, cluster_name: str = "default",
                    user: str = "default") -> dict:
    """A one-cluster, one-user, one-context kubeconfig (context named after the cluster)."""
    b64 = lambda pem: base64.b64encode(_bytes(pem)).decode()  # noqa: E731
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": cluster_name, "cluster": {
            "server": server_url, "certificate-authority-data": b64(ca_pem)}}],
        "users": [{"name": user, "user": {
            "client-certificate-data": b64(client_crt_pem),
            "client-key-data": b64(client_key_pem)}}],
        "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": user}}],
        "current-context": cluster_name,
    }


def write_kubeconfig(path: str, server_url: str, ca_pem: bytes | str, client_crt_pem: bytes | str,
                     client_key_pem: bytes | str, cluster_name: str = "default",
                     user: str = "default") -> str:
    """Write the kubeconfig atomically with mode 0600 (it holds a private key); returns path."""
    doc = kubeconfig_dict(server_url, _bytes(ca_pem), _bytes(client_crt_pem),
                          _bytes(client_key_pem), cluster_name, user)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    atomic_write(path, yaml.safe_dump(doc, sort_keys=False).encode(), 0o600)
    return path


def read_kubeconfig(path: str) -> dict:
    """The current context's server URL and credentials: {server, ca, cert, key, token,
    insecure}. PEMs are bytes; `*-data` fields win, file fields are read relative to
    the kubeconfig's directory, as kubectl does."""
    with open(path) as f:
        doc = yaml.safe_load(f)
    ctx_name = doc["current-context"]
    ctx = next(c["context"] for c in doc["contexts"] if c["name"] == ctx_name)
    cluster = next(c["cluster"] for c in doc["clusters"] if c["name"] == ctx["cluster"])
    user = next(u["user"] for u in doc["users"] if u["name"] == ctx["user"])
    base = os.path.dirname(os.path.abspath(path))

    def pem(entry: dict, field: str) -> bytes:
        if entry.get(f"{field}-data"):
            return base64.b64decode(entry[f"{field}-data"])
        if entry.get(field):
            with open(os.path.join(base, entry[field]), "rb") as f:
                return f.read()
        return b""

    token = user.get("token") or ""
    if not token and user.get("tokenFile"):
        with open(os.path.join(base, user["tokenFile"])) as f:
            token = f.read().strip()
    return {"server": cluster["server"],
            "ca": pem(cluster, "certificate-authority"),
            "cert": pem(user, "client-certificate"),
            "key": pem(user, "client-key"),
            "token": token,
            "insecure": bool(cluster.get("insecure-skip-tls-verify"))}


def _bytes(pem: bytes | str) -> bytes:
    return pem.encode() if isinstance(pem, str) else pem
