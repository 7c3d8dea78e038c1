"""Configuration of one API server process (the flags of `pybernetes apiserver`)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass
class APIServerConfig:
    data_dir: str
    bind_address: str = "127.0.0.1"
    # published in default/kubernetes for in-cluster clients ("" = the bind address, or
    # this machine's primary address when binding to all); served too when not bound
    advertise_address: str = ""
    secure_port: int = 6443
    storage: str = "sqlite"  # sqlite | etcd
    etcd_endpoints: list[str] = field(default_factory=lambda: ["http://127.0.0.1:2379"])
    # TLS: serving certificate and the CA that signs client certificates.
    tls_cert_file: str = ""
    tls_private_key_file: str = ""
    client_ca_file: str = ""
    service_cluster_ip_range: str = "10.43.0.0/16"
    service_node_port_range: str = "30000-32767"
    cluster_dns: str = "10.43.0.10"
    max_request_bytes: int = 3 * 1024 * 1024
    watch_cache_history: int = 100_000  # events kept per resource for watch resume
    compaction_interval: float = 300.0  # seconds between store compactions
    log_level: str = "info"
    # e.g. ServiceAccount in API-only test clusters that run no controller-manager (as
    # upstream's integration tests do)
    disable_admission_plugins: list[str] = field(default_factory=list)
    # --authorization-mode: asked in order, first allow wins (AlwaysAllow, RBAC)
    authorization_modes: list[str] = field(default_factory=lambda: ["AlwaysAllow"])

    @property
    def pki_dir(self) -> str:
        return os.path.join(self.data_dir, "pki")
