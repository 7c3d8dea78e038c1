"""Registry mirrors and credentials.

The mirrors file has k3s' registries.yaml shape:

    mirrors:
      docker.io:
        endpoint: ["http://127.0.0.1:5000"]
    configs:
      "127.0.0.1:5000":
        auth: {username: u, password: p}     # or auth: <base64 user:pass>
        tls: {insecure_skip_verify: true}
        insecure: true                       # ours: plain HTTP to this host

Pull credentials come as docker config JSON (`{"auths": {...}}`), the content of
a kubernetes.io/dockerconfigjson Secret, or several of them (imagePullSecrets)."""
from __future__ import annotations

import base64
import ipaddress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import yaml

from pybernetes.kubelet.images.reference import DEFAULT_DOMAIN, registry_host


@dataclass(frozen=True)
class Endpoint:
    """Where to talk /v2/: `base` like http://127.0.0.1:5000 (no trailing slash)."""

    base: str
    verify_tls: bool = True
    is_mirror: bool = False

    @property
    def host(self) -> str:
        return urlsplit(self.base).netloc


@dataclass
class Credentials:
    username: str = ""
    password: str = ""
    identity_token: str = ""  # a refresh token, sent as OAuth2 (docker's identitytoken)


@dataclass
class RegistryConfig:
    mirrors: dict[str, list[str]] = field(default_factory=dict)
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | None) -> "RegistryConfig":
        if not path:
            return cls()
        try:
            with open(path) as f:
                doc = yaml.safe_load(f) or {}
        except OSError as e:
            raise ValueError(f"cannot read registries file {path}: {e.strerror}") from None
        except yaml.YAMLError as e:
            raise ValueError(f"registries file {path} is not valid YAML: {e}") from None
        return cls.from_dict(doc, path)

    @classmethod
    def from_dict(cls, doc: Any, where: str = "registries config") -> "RegistryConfig":
        if not isinstance(doc, dict):
            raise ValueError(f"{where}: expected a mapping with 'mirrors' and 'configs'")
        mirrors: dict[str, list[str]] = {}
        for name, spec in (doc.get("mirrors") or {}).items():
            endpoints = (spec or {}).get("endpoint") or []
            if isinstance(endpoints, str) or not all(isinstance(e, str) for e in endpoints):
                raise ValueError(f"{where}: mirrors.{name}.endpoint must be a list of URLs")
            mirrors[str(name)] = [_normalise_url(e) for e in endpoints]
        configs = {str(k): dict(v or {}) for k, v in (doc.get("configs") or {}).items()}
        return cls(mirrors, configs)

    def endpoints(self, domain: str) -> list[Endpoint]:
        """Mirrors for `domain` in order, then the registry itself (as k3s/containerd)."""
        urls = self.mirrors.get(domain) or self.mirrors.get("*") or []
        out = [self._endpoint(u, mirror=True) for u in urls]
        upstream = registry_host(domain)
        scheme = "http" if self._plain_http(upstream) or _is_loopback(upstream) else "https"
        default = self._endpoint(f"{scheme}://{upstream}", mirror=False)
        if default not in out:
            out.append(default)
        return out

    def _endpoint(self, url: str, mirror: bool) -> Endpoint:
        host = urlsplit(url).netloc
        cfg = self.configs.get(host, {})
        tls = cfg.get("tls") or {}
        return Endpoint(url.rstrip("/"), verify_tls=not tls.get("insecure_skip_verify", False),
                        is_mirror=mirror)

    def _plain_http(self, host: str) -> bool:
        return bool(self.configs.get(host, {}).get("insecure"))

    def credentials(self, host: str) -> Credentials | None:
        auth = self.configs.get(host, {}).get("auth")
        return _credentials_from(auth) if auth else None


def _normalise_url(url: str) -> str:
    if "://" not in url:
        host = url.split("/")[0]
        url = ("http://" if _is_loopback(host) else "https://") + url
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    if path.endswith("/v2"):  # containerd accepts endpoints written with /v2
        path = path[:-3]
    return f"{parts.scheme}://{parts.netloc}{path}"


def _is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _credentials_from(entry: Any) -> Credentials | None:
    """One docker-config `auths` entry, or a k3s `auth` block, or base64 user:pass."""
    if isinstance(entry, str):
        entry = {"auth": entry}
    if not isinstance(entry, dict):
        return None
    user, password = str(entry.get("username") or ""), str(entry.get("password") or "")
    if entry.get("auth") and not user:
        try:
            decoded = base64.b64decode(str(entry["auth"])).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        user, _, password = decoded.partition(":")
    token = str(entry.get("identitytoken") or entry.get("identity_token") or "")
    if not (user or token):
        return None
    return Credentials(user, password, token)


def _auth_key_host(key: str) -> str:
    """`https://index.docker.io/v1/` -> docker.io; `host:5000/path` -> host:5000."""
    if "://" in key:
        key = urlsplit(key).netloc
    key = key.split("/")[0]
    if key in ("index.docker.io", "registry-1.docker.io", DEFAULT_DOMAIN):
        return DEFAULT_DOMAIN
    return key


def docker_config_credentials(auth: Any, host: str) -> Credentials | None:
    """Credentials for `host` from docker config JSON (or a list of them, in order)."""
    docs = auth if isinstance(auth, list) else [auth]
    want = _auth_key_host(host)
    for doc in docs:
        if not isinstance(doc, dict):
            continue
        auths = doc.get("auths", doc)  # the old .dockercfg form has no "auths" wrapper
        if not isinstance(auths, dict):
            continue
        for key, entry in auths.items():
            if _auth_key_host(str(key)) == want:
                creds = _credentials_from(entry)
                if creds:
                    return creds
    return None
