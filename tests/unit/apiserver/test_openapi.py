"""OpenAPI v2/v3 documents, served by a real aiohttp server and read by the real kubectl."""
import asyncio
import hashlib
import os

import orjson
import pytest
from aiohttp import ClientSession, web

from pybernetes.api.strategy import Registry, Strategy
from pybernetes.apiserver import discovery, openapi
from pybernetes.machinery import schema
from pybernetes.machinery.errors import StatusError

KUBECTL = "/usr/lib/google-cloud-sdk/bin/kubectl.1.{}"
PB_V2 = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"


class Pods(Strategy):
    group, version, kind, plural = "", "v1", "Pod", "pods"
    short_names, categories = ("po",), ("all",)
    subresources = ("status", "binding", "eviction", "log", "exec", "attach", "portforward", "proxy")


class Namespaces(Strategy):
    group, version, kind, plural = "", "v1", "Namespace", "namespaces"
    namespaced, short_names, subresources = False, ("ns",), ("status", "finalize")


class Deployments(Strategy):
    group, version, kind, plural = "apps", "v1", "Deployment", "deployments"
    short_names, categories = ("deploy",), ("all",)
    subresources = ("status", "scale")


class Widgets(Strategy):
    """A custom resource: no strategic merge patch."""
    group, version, kind, plural = "example.com", "v1", "Widget", "widgets"
    crd = True


class Gizmos(Strategy):
    """A custom resource that brings its structural schema."""
    group, version, kind, plural = "example.com", "v1", "Gizmo", "gizmos"
    openapi_schema = {"type": "object", "description": "A gizmo of the example group.", "properties": {
        "spec": {"type": "object", "required": ["size"], "properties": {
            "size": {"type": "integer", "description": "How big the gizmo is."},
            "color": {"type": "string", "enum": ["red", "blue"]}}}}}


def make_registry() -> Registry:
    return Registry([Pods(), Namespaces(), Deployments(), Widgets(), Gizmos()])


@web.middleware
async def status_errors(request, handler):
    try:
        return await handler(request)
    except StatusError as e:
        return web.Response(status=e.code, body=orjson.dumps(e.status()), content_type="application/json")


@pytest.fixture
async def server():
    """Discovery + OpenAPI + /version, and a stand-in for one Deployment so `kubectl apply`
    can be watched choosing its patch type."""
    patches: list[tuple[str, bytes]] = []
    existing = {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "default", "resourceVersion": "5",
                             "annotations": {"kubectl.kubernetes.io/last-applied-configuration":
                                             orjson.dumps(deployment(1)).decode()}},
                "spec": deployment(1)["spec"]}

    async def version(request):
        return web.json_response({"major": "1", "minor": "33", "gitVersion": "v1.33.0"})

    async def get_deploy(request):
        return web.json_response(existing)

    async def patch_deploy(request):
        patches.append((request.content_type, await request.read()))
        return web.json_response(existing)

    app = web.Application(middlewares=[status_errors])
    app.router.add_get("/version", version)
    app.router.add_get("/apis/apps/v1/namespaces/default/deployments/web", get_deploy)
    app.router.add_patch("/apis/apps/v1/namespaces/default/deployments/web", patch_deploy)
    reg = make_registry()
    discovery.add_routes(app, reg)
    openapi.add_routes(app, reg)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", patches
    finally:
        await runner.cleanup()


def deployment(replicas):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}


async def get(url, accept=None, **headers):
    if accept:
        headers["Accept"] = accept
    async with ClientSession() as s, s.get(url, headers=headers, allow_redirects=False) as r:
        return r.status, r.headers, await r.read()


def refs(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):  # (a dict: JSONSchemaProps' "$ref" property)
                yield v
            else:
                yield from refs(v)
    elif isinstance(node, list):
        for x in node:
            yield from refs(x)


def types(node):
    if isinstance(node, dict):
        t = node.get("type")  # (a dict here is a property named "type")
        if t is not None and not isinstance(t, dict):
            yield t
        for v in node.values():
            yield from types(v)
    elif isinstance(node, list):
        for x in node:
            yield from types(x)


# ----- v3 -------------------------------------------------------------------------------

async def v3_doc(base, gv):
    _, _, body = await get(base + "/openapi/v3")
    url = orjson.loads(body)["paths"][gv]["serverRelativeURL"]
    code, headers, body = await get(base + url)
    assert code == 200
    return url, headers, body, orjson.loads(body)


async def test_v3_index_links_each_group_version_by_hash(server):
    base, _ = server
    code, headers, body = await get(base + "/openapi/v3")
    index = orjson.loads(body)
    assert code == 200 and headers["Content-Type"] == "application/json"
    assert sorted(index["paths"]) == ["api/v1", "apis/apps/v1", "apis/example.com/v1"]
    url, _, doc_body, _ = await v3_doc(base, "apis/apps/v1")
    assert url == "/openapi/v3/apis/apps/v1?hash=" + hashlib.sha512(doc_body).hexdigest().upper()


async def test_v3_document_is_self_contained_openapi3(server):
    _, _, _, doc = await v3_doc(server[0], "apis/apps/v1")
    assert doc["openapi"].startswith("3.0") and doc["info"]["version"] == schema.KUBE_VERSION
    schemas = doc["components"]["schemas"]
    dep = schemas["io.k8s.api.apps.v1.Deployment"]
    assert dep["x-kubernetes-group-version-kind"] == [{"group": "apps", "kind": "Deployment", "version": "v1"}]
    assert "enum" not in dep["properties"]["apiVersion"]
    assert dep["properties"]["metadata"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}]
    for ref in refs(doc):  # every reference resolves inside this document
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas
    assert all(isinstance(t, str) for t in types(schemas))  # no ["string","null"] left
    assert "io.k8s.api.core.v1.PodTemplateSpec" in schemas  # reached through the spec
    assert "io.k8s.api.autoscaling.v1.Scale" in schemas  # the scale subresource's kind
    assert "io.k8s.api.batch.v1.Job" not in schemas  # only what this group-version reaches
    ios = schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
    assert ios["format"] == "int-or-string" and {"type": "integer"} in ios["oneOf"]
    strategy = schemas["io.k8s.api.apps.v1.DeploymentSpec"]
    assert strategy["properties"]["template"]["allOf"][0]["$ref"].endswith("PodTemplateSpec")
    containers = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-list-type"] == "map"


async def test_v3_operations_carry_gvk_action_and_patch_media(server):
    _, _, _, doc = await v3_doc(server[0], "apis/apps/v1")
    paths = doc["paths"]
    item = paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
    patch = item["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
    assert patch["x-kubernetes-action"] == "patch" and patch["operationId"] == "patchAppsV1NamespacedDeployment"
    names = {p["name"] for p in patch["parameters"]}
    assert {"fieldValidation", "dryRun", "fieldManager", "force"} <= names
    assert sorted(patch["requestBody"]["content"]) == [
        "application/apply-patch+yaml", "application/json-patch+json", "application/merge-patch+json",
        "application/strategic-merge-patch+json"]
    assert {p["name"] for p in item["parameters"]} == {"name", "namespace", "pretty"}
    actions = {m: op["x-kubernetes-action"] for m, op in
               paths["/apis/apps/v1/namespaces/{namespace}/deployments"].items() if m != "parameters"}
    assert actions == {"get": "list", "post": "post", "delete": "deletecollection"}
    assert paths["/apis/apps/v1/deployments"]["get"]["operationId"] == "listAppsV1DeploymentForAllNamespaces"
    scale = paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]
    assert scale["put"]["x-kubernetes-group-version-kind"]["kind"] == "Scale"
    for path, ops in paths.items():
        for method, op in ops.items():
            if method != "parameters":
                assert "x-kubernetes-group-version-kind" in op and "x-kubernetes-action" in op, (path, method)
                for p in op.get("parameters", []):
                    assert p["in"] in ("query", "path") and "schema" in p


async def test_v3_core_and_cluster_scoped_paths(server):
    _, _, _, doc = await v3_doc(server[0], "api/v1")
    paths = doc["paths"]
    assert "/api/v1/namespaces/{name}" in paths and "/api/v1/namespaces/{name}/finalize" in paths
    assert paths["/api/v1/namespaces/{name}"]["get"]["operationId"] == "readCoreV1Namespace"
    assert "/api/v1/namespaces/{namespace}/pods/{name}/eviction" in paths
    evict = paths["/api/v1/namespaces/{namespace}/pods/{name}/eviction"]["post"]
    assert evict["x-kubernetes-group-version-kind"] == {"group": "policy", "version": "v1", "kind": "Eviction"}
    assert "/api/v1/namespaces/{namespace}/pods/{name}/exec" not in paths  # connect streams
    assert "io.k8s.api.policy.v1.Eviction" in doc["components"]["schemas"]


async def test_custom_resources_take_no_strategic_merge_patch(server):
    _, _, _, doc = await v3_doc(server[0], "apis/example.com/v1")
    patch = doc["paths"]["/apis/example.com/v1/namespaces/{namespace}/widgets/{name}"]["patch"]
    assert "application/strategic-merge-patch+json" not in patch["requestBody"]["content"]
    assert "application/merge-patch+json" in patch["requestBody"]["content"]


async def test_v3_hash_caching(server):
    base, _ = server
    url, headers, _, _ = await v3_doc(base, "apis/apps/v1")
    assert headers["Cache-Control"] == "public, immutable" and "Expires" in headers
    code, plain_headers, _ = await get(base + "/openapi/v3/apis/apps/v1")
    assert code == 200 and "immutable" not in plain_headers.get("Cache-Control", "")
    code, moved, _ = await get(base + "/openapi/v3/apis/apps/v1?hash=0BAD")
    assert code == 301 and moved["Location"] == url
    code, _, body = await get(base + url, **{"If-None-Match": headers["ETag"]})
    assert code == 304 and body == b""


async def test_v3_unknown_path_and_unacceptable_media(server):
    base, _ = server
    code, _, body = await get(base + "/openapi/v3/apis/nope/v1")
    assert code == 404 and orjson.loads(body)["reason"] == "NotFound"
    code, _, body = await get(base + "/openapi/v3/apis/apps/v1",
                              "application/com.github.proto-openapi.spec.v3@v1.0+protobuf")
    assert code == 406 and orjson.loads(body)["reason"] == "NotAcceptable"


async def test_custom_resource_schema_is_served(server):
    _, _, _, doc = await v3_doc(server[0], "apis/example.com/v1")
    gizmo = doc["components"]["schemas"]["com.example.v1.Gizmo"]
    assert gizmo["x-kubernetes-group-version-kind"] == [{"group": "example.com", "version": "v1", "kind": "Gizmo"}]
    assert gizmo["properties"]["metadata"]["allOf"][0]["$ref"].endswith("meta.v1.ObjectMeta")
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" in doc["components"]["schemas"]
    get_op = doc["paths"]["/apis/example.com/v1/namespaces/{namespace}/gizmos/{name}"]["get"]
    assert get_op["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/com.example.v1.Gizmo"}
    assert Gizmos.openapi_schema["properties"].keys() == {"spec"}  # the strategy's copy is untouched


async def test_invalidate_rebuilds_after_the_registry_changes():
    reg = make_registry()
    app = web.Application()
    openapi.add_routes(app, reg)
    discovery.add_routes(app, reg)
    docs = app[openapi.DOCUMENTS]
    assert "apis/batch/v1" not in docs.v3

    class Jobs(Strategy):
        group, version, kind, plural = "batch", "v1", "Job", "jobs"
    reg.register(Jobs())
    assert "apis/batch/v1" not in docs.v3  # cached until told
    docs.invalidate()
    app[discovery.DOCUMENTS].invalidate()
    assert "apis/batch/v1" in docs.v3
    assert ("batch", "v1") in app[discovery.DOCUMENTS].resource_lists


# ----- v2 -------------------------------------------------------------------------------

async def test_v2_json_document(server):
    code, headers, body = await get(server[0] + "/openapi/v2", "application/json")
    doc = orjson.loads(body)
    assert code == 200 and headers["Content-Type"] == "application/json"
    assert doc["swagger"] == "2.0" and len(doc["definitions"]) == len(schema.definitions()) + 1  # + Gizmo
    assert "com.example.v1.Gizmo" in doc["definitions"]
    for ref in refs(doc):
        assert ref.startswith("#/definitions/") and ref.rsplit("/", 1)[1] in doc["definitions"]
    assert all(isinstance(t, str) for t in types(doc["definitions"]))
    assert doc["definitions"]["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["type"] == "string"
    spec = doc["definitions"]["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["template"]
    assert spec["$ref"] == "#/definitions/io.k8s.api.core.v1.PodTemplateSpec"  # v2 keeps siblings
    patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert "application/strategic-merge-patch+json" in patch["consumes"]
    assert patch["parameters"][0]["in"] == "body"
    assert "fieldValidation" in {p["name"] for p in patch["parameters"]}


def read_fields(buf: bytes) -> list[tuple[int, int, bytes | int]]:
    """Top-level protobuf fields: (number, wire type, payload)."""
    out, i = [], 0
    while i < len(buf):
        key, i = _uvarint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            val, i = _uvarint(buf, i)
        elif wire == 2:
            n, i = _uvarint(buf, i)
            val, i = buf[i:i + n], i + n
        else:
            raise AssertionError(f"unexpected wire type {wire}")
        out.append((field, wire, val))
    return out


def _uvarint(buf, i):
    shift = val = 0
    while True:
        b = buf[i]
        i += 1
        val |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return val, i


async def test_v2_protobuf_for_client_go(server):
    code, headers, body = await get(server[0] + "/openapi/v2", PB_V2)
    assert code == 200
    assert headers["Content-Type"] == "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    top = {f: v for f, _, v in read_fields(body)}
    assert top[1] == b"2.0"
    definitions = [dict((f, v) for f, _, v in read_fields(named)) for _, _, named in read_fields(top[9])]
    assert len(definitions) == len(schema.definitions()) + 1  # + the custom Gizmo
    dep = next(d for d in definitions if d[1] == b"io.k8s.api.apps.v1.Deployment")
    ext = [dict((f, v) for f, _, v in read_fields(x)) for f, _, x in read_fields(dep[2]) if f == 31]
    gvk = next(e for e in ext if e[1] == b"x-kubernetes-group-version-kind")
    assert orjson.loads(read_fields(gvk[2])[0][2]) == [{"group": "apps", "kind": "Deployment", "version": "v1"}]
    code, _, _ = await get(server[0] + "/openapi/v2", "application/vnd.kubernetes.protobuf")
    assert code == 406


def test_building_every_document():
    """All group-versions of the schema package build, cold, and are cached (their
    speed is measured by the API server benchmark, not asserted here)."""
    strategies = []
    for d in schema.definitions().values():
        gvks = d.get("x-kubernetes-group-version-kind", [])
        if len(gvks) == 1 and "metadata" in d.get("properties", {}) and not gvks[0]["kind"].endswith("List"):
            g = gvks[0]
            strategies.append(type(g["kind"], (Strategy,), {
                "group": g["group"], "version": g["version"], "kind": g["kind"],
                "plural": g["kind"].lower() + "s", "subresources": ("status",)})())
    assert len(strategies) > 80
    schema.definitions()  # loading the package's file is not ours to time
    openapi.v3_schemas.cache_clear()
    openapi.v2_definitions.cache_clear()
    docs = openapi.OpenAPIDocuments(Registry(strategies))
    assert len(docs.v3) > 30 and docs.v3_index and docs.v2
    assert docs.v3 is docs.v3  # cached


# ----- the real kubectl ------------------------------------------------------------------

async def kubectl(minor, base, tmp_path, *args, stdin=None):
    binary = KUBECTL.format(minor)
    if not os.path.exists(binary):
        pytest.skip(f"{binary} not installed")
    cfg = tmp_path / "kubeconfig"
    cfg.write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "{base}"}}}}]
contexts: [{{name: c, context: {{cluster: c, user: u, namespace: default}}}}]
users: [{{name: u, user: {{}}}}]
current-context: c
""")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "KUBECONFIG": str(cfg)}
    proc = await asyncio.create_subprocess_exec(
        binary, *args, env=env, stdin=asyncio.subprocess.PIPE if stdin else None,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    assert proc.returncode == 0, err.decode()
    return out.decode()


@pytest.mark.parametrize("minor", [27, 33])  # 1.27 reads v2 protobuf, 1.28+ read v3
async def test_kubectl_explain_field(server, tmp_path, minor):
    out = await kubectl(minor, server[0], tmp_path, "explain", "pod.spec.containers")
    assert "KIND:       Pod" in out and "VERSION:    v1" in out
    assert "FIELD: containers <[]Container>" in out or "RESOURCE: containers <[]Container>" in out
    assert "image\t<string>" in out and "name\t<string> -required-" in out
    out = await kubectl(minor, server[0], tmp_path, "explain", "deploy.spec.strategy.rollingUpdate")
    assert "maxSurge\t<IntOrString>" in out


@pytest.mark.parametrize("minor", [27, 33])
async def test_kubectl_explain_recursive(server, tmp_path, minor):
    out = await kubectl(minor, server[0], tmp_path, "explain", "deployment", "--recursive")
    assert "GROUP:      apps" in out and "KIND:       Deployment" in out
    assert "replicas\t<integer>" in out
    assert "containerPort\t<integer> -required-" in out
    assert "limits\t<map[string]Quantity>" in out
    assert len(out.splitlines()) > 500


async def test_kubectl_explain_custom_resource(server, tmp_path):
    out = await kubectl(33, server[0], tmp_path, "explain", "gizmos.spec")
    assert "GROUP:      example.com" in out and "KIND:       Gizmo" in out
    assert "size\t<integer> -required-" in out and "How big the gizmo is." in out


@pytest.mark.parametrize("minor", [27, 33])
async def test_kubectl_apply_sends_a_strategic_merge_patch(server, tmp_path, minor):
    base, patches = server
    await kubectl(minor, base, tmp_path, "apply", "-f", "-", stdin=orjson.dumps(deployment(3)))
    [(content_type, body)] = patches
    assert content_type == "application/strategic-merge-patch+json"
    assert orjson.loads(body)["spec"]["replicas"] == 3


def test_real_registry_kinds_have_schemas_and_patch_operations():
    from pybernetes.api.registry import registry
    reg = registry()
    if not reg.strategies:
        pytest.skip("no group modules registered yet")
    docs = openapi.OpenAPIDocuments(reg)
    for s in reg.strategies:
        doc = orjson.loads(docs.v3[openapi.v3_path(s.group, s.version)][0])
        name = openapi._object_definition(s)
        assert name in doc["components"]["schemas"], f"no schema for {s.kind}"
        if "patch" in s.verbs:
            gvks = [op["x-kubernetes-group-version-kind"] for item in doc["paths"].values()
                    for m, op in item.items() if m == "patch"]
            assert {"group": s.group, "version": s.version, "kind": s.kind} in gvks
