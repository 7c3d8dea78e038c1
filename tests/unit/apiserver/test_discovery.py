"""Discovery documents, served by a real aiohttp server and read by the real kubectl."""
import asyncio
import os

import orjson
import pytest
from aiohttp import ClientSession, web

from pybernetes.api.strategy import Registry, Strategy
from pybernetes.apiserver import discovery
from pybernetes.machinery.errors import StatusError

KUBECTL = "/usr/lib/google-cloud-sdk/bin/kubectl.1.{}"
V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"


class Pods(Strategy):
    group, version, kind, plural = "", "v1", "Pod", "pods"
    short_names, categories = ("po",), ("all",)
    subresources = ("status", "binding", "eviction", "log", "exec", "attach", "portforward", "proxy",
                    "ephemeralcontainers", "resize")


class Namespaces(Strategy):
    group, version, kind, plural = "", "v1", "Namespace", "namespaces"
    namespaced, short_names = False, ("ns",)
    verbs = ("create", "delete", "get", "list", "patch", "update", "watch")
    subresources = ("status", "finalize")


class Nodes(Strategy):
    group, version, kind, plural = "", "v1", "Node", "nodes"
    namespaced, short_names = False, ("no",)
    subresources = ("status", "proxy")


class ServiceAccounts(Strategy):
    group, version, kind, plural = "", "v1", "ServiceAccount", "serviceaccounts"
    short_names, subresources = ("sa",), ("token",)


class Bindings(Strategy):
    group, version, kind, plural = "", "v1", "Binding", "bindings"
    verbs = ("create",)


class Deployments(Strategy):
    group, version, kind, plural = "apps", "v1", "Deployment", "deployments"
    short_names, categories = ("deploy",), ("all",)
    subresources = ("status", "scale")


class HPAv2(Strategy):
    group, version, kind, plural = "autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"
    short_names, categories, subresources = ("hpa",), ("all",), ("status",)


class HPAv1(HPAv2):
    version, preferred = "v1", False


class CSRs(Strategy):
    group, version, kind, plural = "certificates.k8s.io", "v1", "CertificateSigningRequest", \
        "certificatesigningrequests"
    namespaced, short_names = False, ("csr",)
    subresources = ("status", "approval")


def make_registry() -> Registry:
    return Registry([Pods(), Namespaces(), Nodes(), ServiceAccounts(), Bindings(), Deployments(),
                     HPAv1(), HPAv2(), CSRs()])


@web.middleware
async def status_errors(request, handler):
    """What the app's error middleware does: StatusError -> Status body."""
    try:
        return await handler(request)
    except StatusError as e:
        return web.Response(status=e.code, body=orjson.dumps(e.status()), content_type="application/json")


async def version(request):
    return web.json_response({"major": "1", "minor": "33", "gitVersion": "v1.33.0", "platform": "linux/amd64"})


SERVED: list[tuple[str, str]] = []  # (path, response Content-Type) of the running test


@web.middleware
async def record(request, handler):
    resp = await handler(request)
    SERVED.append((request.path, resp.headers.get("Content-Type", "")))
    return resp


@pytest.fixture
async def server():
    SERVED.clear()
    app = web.Application(middlewares=[record, status_errors])
    app.router.add_get("/version", version)
    discovery.add_routes(app, make_registry())
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def get(url, accept=None, **headers):
    if accept:
        headers["Accept"] = accept
    async with ClientSession() as s, s.get(url, headers=headers, allow_redirects=False) as r:
        return r.status, r.headers, await r.read()


# ----- legacy documents ---------------------------------------------------------------

async def test_api_versions_names_the_request_host(server):
    code, headers, body = await get(server + "/api")
    assert code == 200 and headers["Content-Type"].startswith("application/json")
    doc = orjson.loads(body)
    port = server.rsplit(":", 1)[1]
    assert doc == {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
        {"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{port}"}]}


async def test_core_resource_list_has_upstream_subresource_kinds(server):
    code, _, body = await get(server + "/api/v1")
    doc = orjson.loads(body)
    assert code == 200 and doc["kind"] == "APIResourceList" and doc["groupVersion"] == "v1"
    assert "apiVersion" not in doc
    by_name = {r["name"]: r for r in doc["resources"]}
    names = [r["name"] for r in doc["resources"]]
    assert names == sorted(names)
    pods = by_name["pods"]
    assert pods["singularName"] == "pod" and pods["namespaced"] and pods["kind"] == "Pod"
    assert pods["shortNames"] == ["po"] and pods["categories"] == ["all"]
    assert pods["storageVersionHash"] and pods["storageVersionHash"] == \
        discovery.storage_version_hash(Pods())
    assert by_name["pods/status"] == {"name": "pods/status", "singularName": "", "namespaced": True,
                                      "kind": "Pod", "verbs": ["get", "patch", "update"]}
    assert by_name["pods/binding"]["kind"] == "Binding" and by_name["pods/binding"]["verbs"] == ["create"]
    assert by_name["pods/log"]["kind"] == "Pod" and by_name["pods/log"]["verbs"] == ["get"]
    assert by_name["pods/exec"]["kind"] == "PodExecOptions"
    assert by_name["pods/exec"]["verbs"] == ["create", "get"]
    assert by_name["pods/attach"]["kind"] == "PodAttachOptions"
    assert by_name["pods/portforward"]["kind"] == "PodPortForwardOptions"
    ev = by_name["pods/eviction"]
    assert (ev["group"], ev["version"], ev["kind"], ev["verbs"]) == ("policy", "v1", "Eviction", ["create"])
    assert "group" not in by_name["pods/binding"]
    assert by_name["pods/proxy"]["kind"] == "PodProxyOptions"
    assert by_name["pods/proxy"]["verbs"] == ["create", "delete", "get", "patch", "update"]
    assert by_name["nodes/proxy"]["kind"] == "NodeProxyOptions"
    assert by_name["namespaces/finalize"]["verbs"] == ["update"]
    assert by_name["namespaces"]["namespaced"] is False
    tok = by_name["serviceaccounts/token"]
    assert (tok["group"], tok["version"], tok["kind"]) == ("authentication.k8s.io", "v1", "TokenRequest")
    assert "storageVersionHash" not in by_name["bindings"]  # create-only: nothing stored to hash


async def test_group_list_and_group(server):
    doc = orjson.loads((await get(server + "/apis"))[2])
    assert doc["kind"] == "APIGroupList" and doc["apiVersion"] == "v1"
    groups = {g["name"]: g for g in doc["groups"]}
    assert list(groups) == ["apps", "autoscaling", "certificates.k8s.io"]
    assert groups["autoscaling"]["versions"] == [{"groupVersion": "autoscaling/v2", "version": "v2"},
                                                 {"groupVersion": "autoscaling/v1", "version": "v1"}]
    assert groups["autoscaling"]["preferredVersion"] == {"groupVersion": "autoscaling/v2", "version": "v2"}
    code, _, body = await get(server + "/apis/autoscaling")
    one = orjson.loads(body)
    assert code == 200 and one["kind"] == "APIGroup" and one["name"] == "autoscaling"
    assert one["preferredVersion"]["version"] == "v2"


async def test_group_version_resource_list(server):
    code, _, body = await get(server + "/apis/apps/v1")
    doc = orjson.loads(body)
    assert code == 200 and doc["apiVersion"] == "v1" and doc["groupVersion"] == "apps/v1"
    by_name = {r["name"]: r for r in doc["resources"]}
    scale = by_name["deployments/scale"]
    assert (scale["group"], scale["version"], scale["kind"]) == ("autoscaling", "v1", "Scale")
    assert scale["verbs"] == ["get", "patch", "update"]
    csr = orjson.loads((await get(server + "/apis/certificates.k8s.io/v1"))[2])
    approval = {r["name"]: r for r in csr["resources"]}["certificatesigningrequests/approval"]
    assert approval["kind"] == "CertificateSigningRequest" and approval["verbs"] == ["get", "patch", "update"]


@pytest.mark.parametrize("path", ["/apis/nope", "/apis/nope/v1", "/apis/apps/v9", "/api/v2"])
async def test_unknown_group_or_version_is_a_404_status(server, path):
    code, headers, body = await get(server + path)
    assert code == 404 and headers["Content-Type"] == "application/json"
    status = orjson.loads(body)
    assert status["kind"] == "Status" and status["reason"] == "NotFound"
    assert status["message"] == "the server could not find the requested resource"


# ----- aggregated discovery -------------------------------------------------------------

@pytest.mark.parametrize("accept,version", [
    (f"{V2},{V2BETA1},application/json", "v2"),  # kubectl 1.30+
    (f"{V2BETA1},application/json", "v2beta1"),  # kubectl 1.27-1.29
    (f"application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,{V2}", "v2"),
    (f"application/json;q=0.5,{V2BETA1}", "v2beta1"),  # higher q wins over order
])
async def test_aggregated_answers_in_the_version_asked(server, accept, version):
    code, headers, body = await get(server + "/apis", accept)
    assert code == 200
    assert headers["Content-Type"] == f"application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"
    doc = orjson.loads(body)
    assert doc["kind"] == "APIGroupDiscoveryList" and doc["apiVersion"] == f"apidiscovery.k8s.io/{version}"
    groups = {g["metadata"]["name"]: g for g in doc["items"]}
    assert list(groups) == ["apps", "autoscaling", "certificates.k8s.io"]
    assert [v["version"] for v in groups["autoscaling"]["versions"]] == ["v2", "v1"]
    apps = groups["apps"]["versions"][0]
    assert apps["freshness"] == "Current"
    dep = apps["resources"][0]
    assert dep["resource"] == "deployments" and dep["scope"] == "Namespaced"
    assert dep["responseKind"] == {"group": "", "version": "", "kind": "Deployment"}
    assert dep["singularResource"] == "deployment" and dep["shortNames"] == ["deploy"]
    assert dep["categories"] == ["all"] and "watch" in dep["verbs"]
    assert dep["subresources"] == [
        {"subresource": "scale", "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
         "verbs": ["get", "patch", "update"]},
        {"subresource": "status", "responseKind": {"group": "", "version": "", "kind": "Deployment"},
         "verbs": ["get", "patch", "update"]}]


async def test_aggregated_core_group(server):
    code, headers, body = await get(server + "/api", f"{V2},application/json")
    doc = orjson.loads(body)
    assert code == 200 and headers["Content-Type"] == V2
    [core] = doc["items"]
    assert "name" not in core["metadata"] and core["versions"][0]["version"] == "v1"
    res = {r["resource"]: r for r in core["versions"][0]["resources"]}
    assert res["namespaces"]["scope"] == "Cluster"
    subs = {s["subresource"]: s for s in res["pods"]["subresources"]}
    assert subs["eviction"]["responseKind"] == {"group": "policy", "version": "v1", "kind": "Eviction"}
    assert subs["exec"]["responseKind"]["kind"] == "PodExecOptions"


async def test_aggregated_etag_and_not_modified(server):
    _, headers, body = await get(server + "/apis", V2)
    etag = headers["ETag"]
    assert etag.startswith('"') and headers["Vary"] == "Accept"
    code, headers2, body2 = await get(server + "/apis", V2, **{"If-None-Match": etag})
    assert code == 304 and body2 == b"" and headers2["ETag"] == etag
    _, beta_headers, _ = await get(server + "/apis", V2BETA1)
    assert beta_headers["ETag"] != etag  # a different document, a different tag


async def test_plain_json_gets_legacy_and_unsupported_only_gets_406(server):
    code, headers, body = await get(server + "/apis", "application/json, */*")
    assert code == 200 and orjson.loads(body)["kind"] == "APIGroupList"
    code, _, body = await get(server + "/apis", "application/vnd.kubernetes.protobuf")
    assert code == 406 and orjson.loads(body)["reason"] == "NotAcceptable"


def test_documents_are_built_once():
    docs = discovery.DiscoveryDocuments(make_registry())
    assert docs.aggregated is docs.aggregated and docs.resource_lists is docs.resource_lists


# ----- the real kubectl ------------------------------------------------------------------

async def kubectl(minor, server, tmp_path, *args):
    binary = KUBECTL.format(minor)
    if not os.path.exists(binary):
        pytest.skip(f"{binary} not installed")
    cfg = tmp_path / "kubeconfig"
    cfg.write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "{server}"}}}}]
contexts: [{{name: c, context: {{cluster: c, user: u}}}}]
users: [{{name: u, user: {{}}}}]
current-context: c
""")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "KUBECONFIG": str(cfg)}
    proc = await asyncio.create_subprocess_exec(binary, *args, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return out.decode()


@pytest.mark.parametrize("minor", [27, 30, 33])
async def test_kubectl_api_resources(server, tmp_path, minor):
    out = await kubectl(minor, server, tmp_path, "api-resources")
    lines = [line.split() for line in out.splitlines()[1:]]
    rows = {cols[0]: cols for cols in lines}
    assert rows["pods"] == ["pods", "po", "v1", "true", "Pod"]
    assert rows["deployments"] == ["deployments", "deploy", "apps/v1", "true", "Deployment"]
    assert rows["horizontalpodautoscalers"][2] == "autoscaling/v2"  # the preferred version
    assert rows["namespaces"][3] == "false"
    assert not any("/" in name for name in rows)  # subresources are not listed
    # kubectl took the aggregated form it prefers, not the legacy fallback
    version = "v2beta1" if minor < 30 else "v2"
    assert ("/apis", V2BETA1 if version == "v2beta1" else V2) in SERVED
    assert not any(path.startswith("/apis/") for path, _ in SERVED)


@pytest.mark.parametrize("minor", [27, 33])
async def test_kubectl_api_versions(server, tmp_path, minor):
    out = await kubectl(minor, server, tmp_path, "api-versions")
    assert out.split() == ["apps/v1", "autoscaling/v1", "autoscaling/v2", "certificates.k8s.io/v1", "v1"]


async def test_kubectl_api_resources_with_short_names_and_categories(server, tmp_path):
    out = await kubectl(33, server, tmp_path, "api-resources", "--categories=all", "-o", "name")
    assert sorted(out.split()) == ["deployments.apps", "horizontalpodautoscalers.autoscaling", "pods"]


def test_real_registry_documents_are_consistent():
    from pybernetes.api.registry import registry
    reg = registry()
    if not reg.strategies:
        pytest.skip("no group modules registered yet")
    docs = discovery.DiscoveryDocuments(reg)
    for (group, version), body in docs.resource_lists.items():
        doc = orjson.loads(body)
        assert doc["groupVersion"] == (f"{group}/{version}" if group else version)
        names = [r["name"] for r in doc["resources"]]
        assert len(names) == len(set(names)), f"duplicate resources in {group}/{version}"
    agg = orjson.loads(docs.aggregated[(False, "v2")].body)
    assert all(item["metadata"]["name"] for item in agg["items"])
