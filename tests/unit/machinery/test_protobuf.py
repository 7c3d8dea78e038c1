"""Protobuf request bodies decode to the JSON a JSON-speaking kubectl sends.

The fixtures are real request bodies: kubectl 1.33 (protobuf) and kubectl 1.31 (JSON)
running the same command against a capture server. Refresh them with
`.venv/bin/python -m tests.unit.machinery.test_protobuf`.
"""
from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import tempfile
from pathlib import Path

import pytest
from aiohttp import web
from hypothesis import given, settings, strategies as st

from pybernetes.machinery import errors, protobuf

FIXTURES = Path(__file__).with_name("protobuf_fixtures")
KUBECTL = "/usr/lib/google-cloud-sdk/bin/kubectl.1.{}"
PROTO_KUBECTL, JSON_KUBECTL = KUBECTL.format(33), KUBECTL.format(31)
BINARY = bytes(range(256))  # written to {dir}/bin.dat for --from-file

# case name -> kubectl arguments ({dir} is a temp dir holding bin.dat)
CASES: dict[str, list[str]] = {
    "configmap": ["create", "configmap", "cm", "--from-literal=a=b", "--from-literal=empty=",
                  "--from-file=bin={dir}/bin.dat", "--dry-run=server"],
    "secret": ["create", "secret", "generic", "s", "--from-literal=user=admin",
               "--from-file=key={dir}/bin.dat", "--type=Opaque"],
    "secret_docker": ["create", "secret", "docker-registry", "reg", "--docker-server=r.example",
                      "--docker-username=u", "--docker-password=p"],
    "namespace": ["create", "namespace", "ns1"],
    "deployment": ["create", "deployment", "d", "--image=x", "--replicas=0", "--port=8080"],
    "service": ["create", "service", "clusterip", "svc", "--tcp=80:8080", "--tcp=443:https"],
    "service_nodeport": ["create", "service", "nodeport", "np", "--tcp=80:8080",
                         "--node-port=30080"],
    "job": ["create", "job", "j", "--image=busybox", "--", "echo", "hi"],
    "cronjob": ["create", "cronjob", "cj", "--image=busybox", "--schedule=*/1 * * * *",
                "--restart=OnFailure", "--", "date"],
    "role": ["create", "role", "r", "--verb=get,list", "--resource=pods,deployments.apps",
             "--resource-name=p1"],
    "rolebinding": ["create", "rolebinding", "rb", "--role=r", "--user=alice",
                    "--serviceaccount=default:sa", "--group=devs"],
    "clusterrole": ["create", "clusterrole", "cr", "--verb=get", "--non-resource-url=/logs/*"],
    "quota": ["create", "quota", "q", "--hard=cpu=1,memory=1G,pods=2", "--scopes=BestEffort"],
    "priorityclass": ["create", "priorityclass", "pc", "--value=1000", "--description=high",
                      "--preemption-policy=Never"],
    "pdb": ["create", "poddisruptionbudget", "pdb", "--selector=app=x", "--min-available=50%"],
    "pdb_int": ["create", "poddisruptionbudget", "pdb2", "--selector=app=x", "--max-unavailable=0"],
    "ingress": ["create", "ingress", "ing", "--class=nginx",
                "--rule=foo.com/bar*=svc1:8080,tls=cert",
                "--annotation=a=b", "--default-backend=def:http"],
    "serviceaccount": ["create", "serviceaccount", "sa"],
    "token": ["create", "token", "sa", "--duration=1h", "--audience=api"],
}


# ---- capture server ------------------------------------------------------------------

_RESOURCES = {
    "v1": [("pods", "Pod"), ("configmaps", "ConfigMap"), ("secrets", "Secret"),
           ("namespaces", "Namespace"), ("services", "Service"),
           ("serviceaccounts", "ServiceAccount")],
    "apps/v1": [("deployments", "Deployment")],
}


def _discovery(path: str) -> dict | None:
    """Just enough legacy discovery for kubectl to map the resources CASES name."""
    if path == "/api":
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
    if path == "/apis":
        version = {"groupVersion": "apps/v1", "version": "v1"}
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
            {"name": "apps", "versions": [version], "preferredVersion": version}]}
    group_version = path.removeprefix("/api/").removeprefix("/apis/")
    if group_version not in _RESOURCES:
        return None
    resources = [{"name": n, "singularName": n[:-1], "namespaced": n != "namespaces", "kind": k,
                  "verbs": ["create", "delete", "get", "list"]}
                 for n, k in _RESOURCES[group_version]]
    return {"kind": "APIResourceList", "groupVersion": group_version, "resources": resources}


async def capture(kubectl: str, args: list[str], workdir: str) -> list[tuple[str, str, bytes]]:
    """Run kubectl against a loopback server; return its (method, content type, body) writes."""
    writes: list[tuple[str, str, bytes]] = []

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        if request.method == "GET":
            doc = _discovery(request.path)
            if doc is not None:
                return web.json_response(doc)
            return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                      "reason": "NotFound", "code": 404}, status=404)
        writes.append((request.method, request.headers.get("Content-Type", ""), body))
        reply = {"metadata": {"name": "x", "namespace": "default"}, "status": {"token": "t"}}
        return web.json_response(reply, status=201 if request.method == "POST" else 200)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        kubeconfig = Path(workdir, "kubeconfig")
        kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n"
            f"    server: http://127.0.0.1:{port}\ncontexts:\n- name: c\n  context:\n"
            "    cluster: c\n    namespace: default\nusers:\n- name: u\n  user: {}\n"
            "current-context: c\n")
        Path(workdir, "bin.dat").write_bytes(BINARY)
        argv = [a.replace("{dir}", workdir) for a in args]
        env = {"PATH": os.environ.get("PATH", ""), "HOME": workdir}
        with open(Path(workdir, "stderr"), "wb") as stderr:
            proc = await asyncio.create_subprocess_exec(
                kubectl, "--kubeconfig", str(kubeconfig), *argv, env=env,
                stdout=asyncio.subprocess.DEVNULL, stderr=stderr)
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise
    finally:
        await runner.cleanup()
    return writes


async def capture_pair(name: str, proto_kubectl: str = PROTO_KUBECTL) -> tuple[bytes, dict]:
    """(protobuf body from kubectl 1.33, JSON body from kubectl 1.31) for one case."""
    bodies = []
    for kubectl, media in ((proto_kubectl, "application/vnd.kubernetes.protobuf"),
                           (JSON_KUBECTL, "application/json")):
        with tempfile.TemporaryDirectory() as workdir:
            writes = await capture(kubectl, CASES[name], workdir)
            stderr = Path(workdir, "stderr").read_text()[-2000:]
        sent = [body for method, ctype, body in writes if ctype == media]
        assert len(sent) == 1, \
            f"{name}: expected one {media} body from {kubectl}, got {writes}: {stderr}"
        bodies.append(sent[0])
    return bodies[0], json.loads(bodies[1])


def _refresh() -> None:
    FIXTURES.mkdir(exist_ok=True)
    for name in CASES:
        pb, js = asyncio.run(capture_pair(name))
        Path(FIXTURES, f"{name}.pb").write_bytes(pb)
        Path(FIXTURES, f"{name}.json").write_text(json.dumps(js, indent=1, sort_keys=True) + "\n")
        print(name, len(pb), "bytes")


# ---- tests ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(CASES))
def test_fixture_decodes_to_kubectl_json(name: str) -> None:
    raw = Path(FIXTURES, f"{name}.pb").read_bytes()
    assert raw.startswith(protobuf.MAGIC)
    assert protobuf.decode(raw) == json.loads(Path(FIXTURES, f"{name}.json").read_text())


_HAVE_KUBECTL = os.path.exists(PROTO_KUBECTL) and os.path.exists(JSON_KUBECTL)


@pytest.mark.skipif(not _HAVE_KUBECTL, reason="kubectl 1.31/1.33 not installed")
@pytest.mark.parametrize("name", ["configmap", "deployment", "secret", "cronjob", "token"])
@pytest.mark.parametrize("minor", [32, 33])
async def test_live_kubectl_protobuf_matches_json(name: str, minor: int) -> None:
    if not os.path.exists(KUBECTL.format(minor)):
        pytest.skip(f"kubectl 1.{minor} not installed")
    pb, js = await capture_pair(name, KUBECTL.format(minor))
    assert protobuf.decode(pb) == js


def _fixture(name: str) -> dict:
    return protobuf.decode(Path(FIXTURES, f"{name}.pb").read_bytes())


def test_pointer_zero_values_survive() -> None:
    deployment = _fixture("deployment")
    assert deployment["spec"]["replicas"] == 0  # *int32: written, kept
    pdb = _fixture("pdb_int")
    assert pdb["spec"]["maxUnavailable"] == 0  # *IntOrString holding int 0
    assert _fixture("pdb")["spec"]["minAvailable"] == "50%"


def test_bytes_are_base64_and_quantities_strings() -> None:
    secret = _fixture("secret")
    assert base64.b64decode(secret["data"]["key"]) == BINARY
    assert base64.b64decode(secret["data"]["user"]) == b"admin"
    cm = _fixture("configmap")
    assert base64.b64decode(cm["binaryData"]["bin"]) == BINARY
    assert cm["data"] == {"a": "b", "empty": ""}
    assert _fixture("quota")["spec"]["hard"] == {"cpu": "1", "memory": "1G", "pods": "2"}


# hand-built messages for what kubectl does not send


def _field(number: int, value: bytes | int) -> bytes:
    if isinstance(value, int):
        return protobuf.encode_varint(number << 3) + protobuf.encode_varint(value)
    return protobuf.encode_bytes_field(number, value)


def _envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = _field(1, api_version.encode()) + _field(2, kind.encode())
    return protobuf.MAGIC + _field(1, type_meta) + _field(2, raw)


def test_times_unknown_fields_and_go_zero_values() -> None:
    when = _field(1, 1_700_000_000) + _field(2, 123_456_789)
    meta = _field(1, b"ev") + _field(9, when)  # deletionTimestamp (*Time)
    event = (_field(1, meta) + _field(99, 7)  # an unknown field is skipped
             + _field(2, when)  # eventTime: MicroTime
             + _field(4, b"ctrl"))
    out = protobuf.decode(_envelope("events.k8s.io/v1", "Event", event))
    assert out["metadata"] == {"name": "ev", "deletionTimestamp": "2023-11-14T22:13:20Z",
                               "creationTimestamp": None}
    assert out["eventTime"] == "2023-11-14T22:13:20.123456Z"
    assert out["reportingController"] == "ctrl"
    # absent non-pointer structs are written by Go anyway; a zero Time is null
    assert out["regarding"] == {} and out["deprecatedSource"] == {}
    assert out["deprecatedFirstTimestamp"] is None
    assert "series" not in out and "deprecatedCount" not in out and "note" not in out


def test_raw_extension_and_negative_ints() -> None:
    data = _field(1, b'{"spec":{"x":[1]}}')
    revision = _field(1, _field(1, b"rev")) + _field(2, data) + _field(3, 2)
    out = protobuf.decode(_envelope("apps/v1", "ControllerRevision", revision))
    assert out["data"] == {"spec": {"x": [1]}} and out["revision"] == 2
    # a negative int32 travels as a 10-byte varint
    priority = _field(1, _field(1, b"pc")) + _field(2, -5)
    out = protobuf.decode(_envelope("scheduling.k8s.io/v1", "PriorityClass", priority))
    assert out["value"] == -5


def test_named_slice_map_values_and_pointer_zero() -> None:
    extra = _field(1, b"scopes") + _field(2, _field(1, b"a") + _field(1, b"b"))
    spec = _field(3, b"alice") + _field(5, extra)
    body = _envelope("authorization.k8s.io/v1", "SubjectAccessReview", _field(2, spec))
    review = protobuf.decode(body)
    assert review["spec"] == {"user": "alice", "extra": {"scopes": ["a", "b"]}}
    lease = _field(1, _field(1, b"l")) + _field(2, _field(1, b"h") + _field(2, 0))
    spec = protobuf.decode(_envelope("coordination.k8s.io/v1", "Lease", lease))["spec"]
    assert spec == {"holderIdentity": "h", "leaseDurationSeconds": 0}  # *int32 zero kept


def test_go_duration_strings() -> None:
    assert protobuf.go_duration(3_600_000_000_000) == "1h0m0s"
    assert protobuf.go_duration(90_500_000_000) == "1m30.5s"
    assert protobuf.go_duration(1_500_000) == "1.5ms"
    assert protobuf.go_duration(0) == "0s"
    assert protobuf.go_duration(-2_000_000_000) == "-2s"


def test_delete_options() -> None:
    # kubectl itself sends DeleteOptions as JSON; client-go typed clients (controllers,
    # operators) send them as protobuf, non-pointer dryRun last, pointers only when set
    opts = (_field(1, 5) + _field(2, _field(1, b"uid-1")) + _field(4, b"Foreground")
            + _field(5, b"All"))
    out = protobuf.decode(_envelope("v1", "DeleteOptions", opts))
    assert out == {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 5,
                   "preconditions": {"uid": "uid-1"}, "propagationPolicy": "Foreground",
                   "dryRun": ["All"]}
    # registered in every group version, so it may arrive with any apiVersion
    out = protobuf.decode(_envelope("apps/v1", "DeleteOptions", _field(3, 0)))
    assert out["orphanDependents"] is False
    eviction = _field(1, _field(1, b"p") + _field(3, b"default")) + _field(2, _field(1, 0))
    out = protobuf.decode(_envelope("policy/v1", "Eviction", eviction))
    assert out == {"kind": "Eviction", "apiVersion": "policy/v1",
                   "metadata": {"name": "p", "namespace": "default", "creationTimestamp": None},
                   "deleteOptions": {"gracePeriodSeconds": 0}}


def test_malformed_bodies_are_400() -> None:
    good = Path(FIXTURES, "configmap.pb").read_bytes()
    for bad in (b"{}", good[:-3], protobuf.MAGIC + b"\x0a\xff", good[:4] + b"\x0b"):
        with pytest.raises(errors.StatusError) as e:
            protobuf.decode(bad)
        assert e.value.code == 400, bad


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(sorted(CASES)), data=st.data())
def test_corrupted_bodies_fail_only_with_status_errors(name: str, data: st.DataObject) -> None:
    raw = bytearray(Path(FIXTURES, f"{name}.pb").read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(4, len(raw) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(4, len(raw)))
    try:
        out = protobuf.decode(bytes(raw[:cut]))
    except errors.StatusError as e:
        assert e.code in (400, 415)
    else:
        assert isinstance(out, dict) and json.dumps(out)


def test_year_one_and_far_times() -> None:
    meta = _field(1, b"x") + _field(9, _field(1, -62135596800 + 86400))  # 0001-01-02
    out = protobuf.decode(_envelope("v1", "ConfigMap", _field(1, meta)))
    assert out["metadata"]["deletionTimestamp"] == "0001-01-02T00:00:00Z"
    meta = _field(1, b"x") + _field(9, _field(1, 1 << 60))
    with pytest.raises(errors.StatusError) as e:
        protobuf.decode(_envelope("v1", "ConfigMap", _field(1, meta)))
    assert e.value.code == 400


def test_nested_raw_extensions() -> None:
    entry = _field(1, b"a") + _field(2, b"b")
    inner = _envelope("v1", "ConfigMap", _field(1, _field(1, b"cm")) + _field(2, entry))
    revision = _field(2, _field(1, inner))  # a protobuf object inside a RawExtension
    out = protobuf.decode(_envelope("apps/v1", "ControllerRevision", revision))
    assert out["data"] == {"kind": "ConfigMap", "apiVersion": "v1", "data": {"a": "b"},
                           "metadata": {"name": "cm", "creationTimestamp": None}}
    body = _envelope("apps/v1", "ControllerRevision", b"")
    for _ in range(3000):  # far deeper than Python's stack: a 400, not a crash
        body = _envelope("apps/v1", "ControllerRevision", _field(2, _field(1, body)))
    with pytest.raises(errors.StatusError) as e:
        protobuf.decode(body)
    assert e.value.code == 400


def test_unknown_kind_is_415() -> None:
    for api_version, kind in (("example.com/v1", "Widget"), ("v1", "NoSuchKind")):
        with pytest.raises(errors.StatusError) as e:
            protobuf.decode(_envelope(api_version, kind, b""))
        assert e.value.code == 415


# ---- the schema generator ---------------------------------------------------------------

def _generator():
    import importlib.util
    path = Path(__file__).resolve().parents[3] / "tools" / "gen_protobuf_schema.py"
    spec = importlib.util.spec_from_file_location("gen_protobuf_schema", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


_DEMO_PROTO = """
syntax = "proto2";
package k8s.io.api.demo.v1;
import "k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto";
// A widget. message Fake { is only a comment }
message Widget {
  optional .k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta metadata = 1;
  optional WidgetSpec spec = 2;
}
message WidgetSpec {
  /* block comment */
  optional int32 replicas = 1;
  repeated string names = 2;
  map<string, bytes> blobs = 3;
  optional Common common = 4;
  optional Tags tags = 5;
}
message Common {
  optional string note = 1;
}
message Tags {
  repeated string items = 1;
}
"""
_DEMO_GO = """package v1
const GroupName = "demo.example.com"
type Tags []string
type WidgetSpec struct {
	// Replicas is a pointer: zero survives.
	Replicas *int32 `json:"replicas,omitempty" protobuf:"varint,1,opt,name=replicas"`
	Names []string `json:"names" protobuf:"bytes,2,rep,name=names"`
	Blobs map[string][]byte `json:"blobData,omitempty" protobuf:"bytes,3,rep,name=blobs"`
	Common `json:",inline" protobuf:"bytes,4,opt,name=common"`
	Tags Tags `json:"tags,omitempty" protobuf:"bytes,5,opt,name=tags"`
}
"""


def test_generator_reads_proto_and_go_tags(tmp_path: Path) -> None:
    pkg = tmp_path / "staging" / "src" / "k8s.io" / "api" / "demo" / "v1"
    pkg.mkdir(parents=True)
    (pkg / "generated.proto").write_text(_DEMO_PROTO)
    (pkg / "types.go").write_text(_DEMO_GO)
    (pkg / "types_test.go").write_text("package v1\nconst GroupName = \"wrong\"\n")
    out = tmp_path / "schema.json"
    assert _generator().main([str(tmp_path), "-o", str(out)]) == 0
    schema = json.loads(out.read_text())
    assert schema["groups"] == {"demo.example.com/v1": "k8s.io.api.demo.v1"}
    assert schema["lists"] == ["k8s.io.api.demo.v1.Tags"]
    assert set(schema["messages"]) == {f"k8s.io.api.demo.v1.{m}"
                                       for m in ("Widget", "WidgetSpec", "Common", "Tags")}
    assert schema["messages"]["k8s.io.api.demo.v1.WidgetSpec"] == {
        "1": ["replicas", "int32", "po"], "2": ["names", "string", "r"],
        "3": ["blobData", "bytes", "mo"], "4": ["common", "k8s.io.api.demo.v1.Common", "i"],
        "5": ["tags", "k8s.io.api.demo.v1.Tags", "o"]}
    assert schema["messages"]["k8s.io.api.demo.v1.Widget"]["1"][1] == \
        "k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta"


_MIRRORS = [Path("/work/.mirror/kubernetes+api/repo"),
            Path("/work/.mirror/kubernetes+apimachinery/repo")]


@pytest.mark.skipif(not all(p.is_dir() for p in _MIRRORS),
                    reason="no kubernetes api/apimachinery git dirs")
def test_committed_schema_covers_the_v133_api(tmp_path: Path) -> None:
    out = tmp_path / "schema.json"
    assert _generator().main([*map(str, _MIRRORS), "-o", str(out)]) == 0
    fresh = json.loads(out.read_text())
    committed = json.loads(protobuf._SCHEMA_FILE.read_text())
    assert fresh["groups"] == committed["groups"]
    for name, fields in committed["messages"].items():  # newer trees only add
        assert fresh["messages"][name].items() >= fields.items(), name


def test_committed_schema_facts() -> None:
    schema = json.loads(protobuf._SCHEMA_FILE.read_text())
    assert protobuf._SCHEMA_FILE.stat().st_size < 1_500_000
    m = schema["messages"]
    assert m["k8s.io.api.apps.v1.DeploymentSpec"]["1"] == ["replicas", "int32", "po"]
    assert m["k8s.io.api.core.v1.PodSpec"]["21"] == ["automountServiceAccountToken", "bool", "po"]
    assert m["k8s.io.api.core.v1.Volume"]["2"][2] == "i"  # VolumeSource is inlined in JSON
    assert m["k8s.io.api.core.v1.Secret"]["2"] == ["data", "bytes", "mo"]
    for gv in ("v1", "apps/v1", "batch/v1", "autoscaling/v1", "policy/v1", "meta.k8s.io/v1",
               "networking.k8s.io/v1", "rbac.authorization.k8s.io/v1", "scheduling.k8s.io/v1"):
        assert gv in schema["groups"]
    assert protobuf.message_for("autoscaling/v1", "Scale") == "k8s.io.api.autoscaling.v1.Scale"


if __name__ == "__main__":
    sys.exit(_refresh())
