"""Image names as a user writes them, normalised as docker/containerd do."""
from __future__ import annotations

import base64

import pytest

from pybernetes.kubelet.images.distribution import parse_challenge
from pybernetes.kubelet.images.errors import InvalidImageName
from pybernetes.kubelet.images.reference import is_image_id, parse_reference
from pybernetes.kubelet.images.registries import RegistryConfig, docker_config_credentials
from pybernetes.kubelet.images.store import chain_ids, default_pull_policy

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("name,full", [
    ("nginx", "docker.io/library/nginx:latest"),
    ("nginx:alpine", "docker.io/library/nginx:alpine"),
    ("library/nginx:1.27", "docker.io/library/nginx:1.27"),
    ("bitnami/redis", "docker.io/bitnami/redis:latest"),
    ("index.docker.io/nginx", "docker.io/library/nginx:latest"),
    ("docker.io/nginx", "docker.io/library/nginx:latest"),
    ("localhost/app", "localhost/app:latest"),
    ("localhost:5000/team/app:v1", "localhost:5000/team/app:v1"),
    ("127.0.0.1:5000/busybox", "127.0.0.1:5000/busybox:latest"),
    ("registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10"),
    (f"busybox@{DIGEST}", f"docker.io/library/busybox@{DIGEST}"),
    (f"busybox:1.36@{DIGEST}", f"docker.io/library/busybox:1.36@{DIGEST}"),
    ("my_org/my-app__x:Tag_1.0-rc", "docker.io/my_org/my-app__x:Tag_1.0-rc"),
])
def test_names_are_normalised(name: str, full: str) -> None:
    assert str(parse_reference(name)) == full


def test_digest_wins_over_tag_when_asking_the_registry() -> None:
    ref = parse_reference(f"busybox:1.36@{DIGEST}")
    assert (ref.domain, ref.path, ref.tag, ref.object) == (
        "docker.io", "library/busybox", "1.36", DIGEST)
    assert parse_reference("nginx:alpine").familiar() == "nginx"


@pytest.mark.parametrize("bad", ["", " nginx", "Nginx", "nginx:", "nginx:a:b", "a//b",
                                 "nginx@sha256:abc", "-x/y", "x/y-", "nginx:" + "t" * 129])
def test_bad_names_are_refused_with_docker_wording(bad: str) -> None:
    with pytest.raises(InvalidImageName) as e:
        parse_reference(bad)
    assert "invalid reference format" in str(e.value)
    assert e.value.reason == "InvalidImageName"


def test_uppercase_says_lowercase() -> None:
    with pytest.raises(InvalidImageName, match="repository name must be lowercase"):
        parse_reference("MyApp")


def test_image_ids() -> None:
    assert is_image_id(DIGEST) and is_image_id("ab" * 32)
    assert not is_image_id("busybox") and not is_image_id("sha256:abc")


def test_default_pull_policy_as_the_api() -> None:
    assert default_pull_policy(parse_reference("nginx")) == "Always"
    assert default_pull_policy(parse_reference("nginx:latest")) == "Always"
    assert default_pull_policy(parse_reference("nginx:1.27")) == "IfNotPresent"
    assert default_pull_policy(parse_reference(f"nginx@{DIGEST}")) == "IfNotPresent"


def test_chain_ids_follow_the_oci_formula() -> None:
    import hashlib
    a, b = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    want = "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()
    assert chain_ids([a, b]) == [a, want]


def test_challenge_parsing() -> None:
    scheme, params = parse_challenge(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/nginx:pull"')
    assert scheme == "bearer"
    assert params == {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                      "scope": "repository:library/nginx:pull"}
    assert parse_challenge('Basic realm="Registry Realm"') == ("basic",
                                                               {"realm": "Registry Realm"})


def test_mirrors_come_first_then_the_registry_itself() -> None:
    cfg = RegistryConfig.from_dict({
        "mirrors": {"docker.io": {"endpoint": ["http://127.0.0.1:5000", "mirror.example:443/v2"]}},
        "configs": {"mirror.example:443": {"tls": {"insecure_skip_verify": True}},
                    "plain.example": {"insecure": True}}})
    eps = cfg.endpoints("docker.io")
    assert [(e.base, e.is_mirror, e.verify_tls) for e in eps] == [
        ("http://127.0.0.1:5000", True, True),
        ("https://mirror.example:443", True, False),
        ("https://registry-1.docker.io", False, True)]
    assert [e.base for e in cfg.endpoints("localhost:5000")] == ["http://localhost:5000"]
    assert [e.base for e in cfg.endpoints("plain.example")] == ["http://plain.example"]
    assert [e.base for e in cfg.endpoints("quay.io")] == ["https://quay.io"]


def test_bad_registries_file_is_explained(tmp_path) -> None:
    path = tmp_path / "registries.yaml"
    path.write_text("mirrors:\n  docker.io:\n    endpoint: http://x\n")
    with pytest.raises(ValueError, match="must be a list of URLs"):
        RegistryConfig.load(str(path))
    with pytest.raises(ValueError, match="cannot read registries file"):
        RegistryConfig.load(str(tmp_path / "missing.yaml"))


def test_pull_secret_credentials_match_the_registry() -> None:
    secret = {"auths": {
        "https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:pw1").decode()},
        "127.0.0.1:5000": {"username": "local", "password": "pw2"}}}
    hub = docker_config_credentials(secret, "registry-1.docker.io")
    assert hub and (hub.username, hub.password) == ("hub", "pw1")
    local = docker_config_credentials([{"auths": {}}, secret], "127.0.0.1:5000")
    assert local and (local.username, local.password) == ("local", "pw2")
    assert docker_config_credentials(secret, "quay.io") is None
