"""Image references: `name[:tag][@digest]`, normalised as docker/containerd do
(`nginx` -> `docker.io/library/nginx:latest`)."""
from __future__ import annotations

import re
from dataclasses import dataclass

from pybernetes.kubelet.images.errors import InvalidImageName

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
DEFAULT_TAG = "latest"
# Docker Hub's API lives on another host than its name.
DOCKER_HUB_API = "registry-1.docker.io"

_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_DOMAIN_PART = re.compile(r"^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$")
_SHA256 = re.compile(r"^sha256:[a-f0-9]{64}$")
_MAX_NAME = 255


@dataclass(frozen=True)
class Reference:
    domain: str          # "docker.io", "127.0.0.1:5000"
    path: str            # "library/nginx"
    tag: str = ""        # "" when only a digest was given
    digest: str = ""     # "sha256:..." or ""

    @property
    def repository(self) -> str:
        """The full name without tag or digest: docker.io/library/nginx."""
        return f"{self.domain}/{self.path}"

    @property
    def object(self) -> str:
        """What to ask the registry's manifests endpoint for: the digest wins over the tag."""
        return self.digest or self.tag

    def __str__(self) -> str:
        out = self.repository
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    def familiar(self) -> str:
        """The short name a user typed (`nginx`, `user/app`), as docker prints it."""
        name = self.repository
        if self.domain == DEFAULT_DOMAIN:
            name = self.path.removeprefix("library/")
        return name


def _invalid(ref: str, why: str = "") -> InvalidImageName:
    detail = f": {why}" if why else ""
    return InvalidImageName(f'couldn\'t parse image name "{ref}": invalid reference '
                            f'format{detail}',
                            hint="write images as [registry/]name[:tag][@sha256:digest], "
                                 "e.g. busybox:1.36 or 127.0.0.1:5000/app:v1")


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if not sep or ("." not in first and ":" not in first and first != "localhost"):
        return DEFAULT_DOMAIN, name
    return first, rest


def _valid_domain(domain: str) -> bool:
    host, _, port = domain.rpartition(":") if domain.count(":") == 1 else (domain, "", "")
    if port and not port.isdigit():
        return False
    if host.startswith("[") and host.endswith("]"):  # an IPv6 literal
        return bool(re.fullmatch(r"\[[0-9a-fA-F:.]+\]", host))
    return all(_DOMAIN_PART.match(part) for part in host.split("."))


def parse_reference(ref: str) -> Reference:
    """Parse and normalise; raises InvalidImageName with docker's wording."""
    if not ref or ref != ref.strip():
        raise _invalid(ref)
    rest, at, digest = ref.partition("@")
    if at and not _DIGEST.match(digest):
        raise _invalid(ref)
    if at and digest.startswith("sha256:") and not _SHA256.match(digest):
        raise _invalid(ref, "invalid checksum digest format")
    tag = ""
    colon = rest.rfind(":")
    if colon > rest.rfind("/"):
        rest, tag = rest[:colon], rest[colon + 1:]
        if not _TAG.match(tag):
            raise _invalid(ref)
    domain, path = _split_domain(rest)
    if domain == LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = f"library/{path}"
    if not _valid_domain(domain):
        raise _invalid(ref)
    if path.lower() != path:
        raise _invalid(ref, "repository name must be lowercase")
    if not path or not all(_COMPONENT.match(c) for c in path.split("/")):
        raise _invalid(ref)
    if len(f"{domain}/{path}") > _MAX_NAME:
        raise _invalid(ref, f"repository name must not be more than {_MAX_NAME} characters")
    if not tag and not digest:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest)


def is_image_id(value: str) -> bool:
    """`sha256:<64 hex>` or bare 64 hex: an image id rather than a name."""
    return bool(_SHA256.match(value) or re.fullmatch(r"[a-f0-9]{64}", value))


def registry_host(domain: str) -> str:
    """The host whose /v2/ API serves `domain`."""
    return DOCKER_HUB_API if domain == DEFAULT_DOMAIN else domain
