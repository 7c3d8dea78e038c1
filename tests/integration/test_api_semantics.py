"""Object and wire semantics of the API server, over real HTTPS, checked against
what kube-apiserver answers: Status errors, dry runs, field validation, generation,
status split, finalizers, graceful deletion, allocation, tables, watches, authn."""
from __future__ import annotations

import json
import time


from ..conftest import Cluster

CMS = "/api/v1/namespaces/default/configmaps"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def cm(name: str, **extra) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
            "data": {"k": "v"}, **extra}


def deployment(name: str) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "img:1"}]}}}}


def assert_status(status: int, body: dict, code: int, reason: str) -> None:
    assert status == code, body
    assert body["kind"] == "Status" and body["code"] == code and body["reason"] == reason, body


# ----- errors ---------------------------------------------------------------------
def test_errors_are_status_objects(cluster: Cluster) -> None:
    status, headers, raw = cluster.request("POST", CMS, b"{not json", )
    assert headers["Content-Type"] == "application/json"
    assert_status(status, json.loads(raw), 400, "BadRequest")

    assert_status(*cluster.json("GET", "/api/v1/namespaces/default/nothings"), 404, "NotFound")
    s, body = cluster.json("GET", CMS + "/missing")
    assert_status(s, body, 404, "NotFound")
    assert body["message"] == 'configmaps "missing" not found'
    assert body["details"] == {"name": "missing", "kind": "configmaps"}
    assert_status(*cluster.json("PUT", CMS, cm("x")), 405, "MethodNotAllowed")
    assert_status(*cluster.json("POST", "/api/v1/componentstatuses", {}), 405, "MethodNotAllowed")

    assert cluster.json("POST", CMS, cm("dup"))[0] == 201
    s, body = cluster.json("POST", CMS, cm("dup"))
    assert_status(s, body, 409, "AlreadyExists")

    huge = cm("huge", data={"big": "x" * (3 * 1024 * 1024 + 10)})
    assert_status(*cluster.json("POST", CMS, huge), 413, "RequestEntityTooLarge")
    assert cluster.json("GET", CMS + "/huge")[0] == 404

    assert_status(*cluster.json("POST", CMS, b"data", content_type="text/plain"), 415,
                  "UnsupportedMediaType")
    assert_status(*cluster.json("PATCH", CMS + "/dup", {"data": {}}, content_type="text/plain"),
                  415, "UnsupportedMediaType")

    s, body = cluster.json("POST", CMS, cm("Bad_Name", metadata={"name": "Bad_Name",
                                                                "labels": {"a": "-bad-"}}))
    assert_status(s, body, 422, "Invalid")
    fields = {c["field"] for c in body["details"]["causes"]}
    assert fields == {"metadata.name", "metadata.labels"}
    assert body["message"].startswith('ConfigMap "Bad_Name" is invalid: [')


def test_no_traceback_reaches_the_client(cluster: Cluster) -> None:
    for path, body in ((CMS, [1, 2, 3]), (CMS, "a string"), (CMS, {"metadata": "no"}),
                       ("/apis/apps/v1/namespaces/default/deployments", {"spec": 5})):
        s, resp = cluster.json("POST", path, body)
        assert 400 <= s < 500 and resp["kind"] == "Status", resp
        assert "Traceback" not in json.dumps(resp)


def test_namespace_lifecycle(cluster: Cluster) -> None:
    s, body = cluster.json("POST", "/api/v1/namespaces/nowhere/configmaps", cm("x"))
    assert_status(s, body, 404, "NotFound")
    assert body["message"] == 'namespaces "nowhere" not found'
    s, body = cluster.json("DELETE", "/api/v1/namespaces/kube-system")
    assert_status(s, body, 403, "Forbidden")


# ----- options ---------------------------------------------------------------------
def test_dry_run_stores_nothing(cluster: Cluster) -> None:
    s, body = cluster.json("POST", CMS + "?dryRun=All", cm("dry"))
    assert s == 201 and body["metadata"]["uid"]
    assert cluster.json("GET", CMS + "/dry")[0] == 404
    cluster.json("POST", CMS, cm("dry"))
    s, _ = cluster.json("DELETE", CMS + "/dry", {"dryRun": ["All"]})
    assert s == 200
    assert cluster.json("GET", CMS + "/dry")[0] == 200
    assert_status(*cluster.json("POST", CMS + "?dryRun=Some", cm("dry2")), 400, "BadRequest")


def test_field_validation(cluster: Cluster) -> None:
    bogus = cm("fv", bogus=1)
    s, body = cluster.json("POST", CMS + "?fieldValidation=Strict", bogus)
    assert_status(s, body, 400, "BadRequest")
    assert body["message"].endswith('strict decoding error: unknown field "bogus"')
    s, headers, _ = cluster.request("POST", CMS + "?fieldValidation=Warn", bogus)
    assert s == 201 and headers["Warning"] == '299 - "unknown field \\"bogus\\""' or \
        'unknown field' in headers["Warning"]
    s, headers, _ = cluster.request("POST", CMS + "?fieldValidation=Ignore",
                                    cm("fv2", bogus=1))
    assert s == 201 and "Warning" not in headers


def test_unknown_fields_are_never_stored(cluster: Cluster) -> None:
    """Upstream decodes into typed objects, so an unknown field is dropped, wherever it is."""
    for i, mode in enumerate(("Warn", "Ignore")):
        obj = cm(f"drop{i}", bogus=1)
        obj["metadata"]["alsoBogus"] = {"x": 1}
        assert cluster.json("POST", f"{CMS}?fieldValidation={mode}", obj)[0] == 201
        s, stored = cluster.json("GET", f"{CMS}/drop{i}")
        assert "bogus" not in stored and "alsoBogus" not in stored["metadata"]
    s, patched = cluster.json("PATCH", f"{CMS}/drop0", {"data": {"k": "v"}, "nope": 2},
                              content_type="application/merge-patch+json")
    assert s == 200 and "nope" not in patched and patched["data"] == {"k": "v"}


def test_control_characters_in_a_field_name_are_quoted_like_go(cluster: Cluster) -> None:
    obj = cm("ctl")
    obj["metadata"]["\x1f"] = None
    s, headers, _ = cluster.request("POST", CMS, obj)
    assert s == 201
    assert headers["Warning"] == '299 - "unknown field \\"metadata.\\\\x1f\\""'
    s, body = cluster.json("POST", CMS + "?fieldValidation=Strict", cm("ctl2", **{"\x07": 1}))
    assert_status(s, body, 400, "BadRequest")
    assert body["message"].endswith('unknown field "\\a"')


# ----- object semantics --------------------------------------------------------------
def test_generate_name(cluster: Cluster) -> None:
    s, body = cluster.json("POST", CMS, {"metadata": {"generateName": "gen-"}, "data": {}})
    assert s == 201
    name = body["metadata"]["name"]
    assert name.startswith("gen-") and len(name) == len("gen-") + 5


def test_generation_tracks_spec_only_and_status_is_split(cluster: Cluster) -> None:
    base = "/apis/apps/v1/namespaces/default/deployments"
    s, d = cluster.json("POST", base, deployment("gen"))
    assert s == 201 and d["metadata"]["generation"] == 1
    d["spec"]["replicas"] = 3
    d["status"] = {"replicas": 99}
    s, d = cluster.json("PUT", base + "/gen", d)
    assert d["metadata"]["generation"] == 2 and d.get("status", {}).get("replicas") != 99
    s, d = cluster.json("PATCH", base + "/gen", {"metadata": {"labels": {"x": "y"}}},
                        content_type="application/merge-patch+json")
    assert d["metadata"]["generation"] == 2
    d["status"] = {"replicas": 7, "observedGeneration": 2}
    d["spec"]["replicas"] = 50
    s, d = cluster.json("PUT", base + "/gen/status", d)
    assert s == 200 and d["status"]["replicas"] == 7 and d["spec"]["replicas"] == 3
    assert d["metadata"]["generation"] == 2
    s, scale = cluster.json("GET", base + "/gen/scale")
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 3
    assert scale["status"] == {"replicas": 7, "selector": "app=gen"}
    # /status takes annotation changes (how the Deployment controller records its
    # revision) without bumping the generation; server-owned metadata stays
    d["metadata"]["annotations"] = {"deployment.kubernetes.io/revision": "1"}
    d["metadata"]["generation"] = 40
    s, d = cluster.json("PUT", base + "/gen/status", d)
    assert s == 200 and d["metadata"]["generation"] == 2
    assert d["metadata"]["annotations"] == {"deployment.kubernetes.io/revision": "1"}


def test_stale_update_conflicts(cluster: Cluster) -> None:
    _, first = cluster.json("POST", CMS, cm("stale"))
    cluster.json("PATCH", CMS + "/stale", {"data": {"k": "2"}},
                 content_type="application/merge-patch+json")
    s, body = cluster.json("PUT", CMS + "/stale", first)
    assert_status(s, body, 409, "Conflict")
    assert body["message"] == ('Operation cannot be fulfilled on configmaps "stale": the object '
                               'has been modified; please apply your changes to the latest '
                               'version and try again')


def test_finalizers_hold_deletion(cluster: Cluster) -> None:
    owner = {"apiVersion": "v1", "kind": "ConfigMap", "name": "dup", "uid": "1234",
             "controller": True}
    obj = cm("fin", metadata={"name": "fin", "finalizers": ["example.com/hold"],
                              "ownerReferences": [owner]})
    assert cluster.json("POST", CMS, obj)[0] == 201
    s, body = cluster.json("DELETE", CMS + "/fin")
    assert s == 200 and body["metadata"]["deletionTimestamp"]
    assert body["metadata"]["ownerReferences"] == [owner]
    s, body = cluster.json("GET", CMS + "/fin")
    assert s == 200 and body["metadata"]["finalizers"] == ["example.com/hold"]
    s, _ = cluster.json("PATCH", CMS + "/fin", [{"op": "remove", "path": "/metadata/finalizers"}],
                        content_type="application/json-patch+json")
    assert s == 200
    assert cluster.json("GET", CMS + "/fin")[0] == 404


def test_pod_binding_and_graceful_deletion(cluster: Cluster) -> None:
    pods = "/api/v1/namespaces/default/pods"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "graceful"},
           "spec": {"containers": [{"name": "c", "image": "img"}]}}
    s, body = cluster.json("POST", pods, pod)
    assert s == 201 and body["status"]["phase"] == "Pending"
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "graceful"},
               "target": {"apiVersion": "v1", "kind": "Node", "name": "node-a"}}
    assert cluster.json("POST", pods + "/graceful/binding", binding)[0] == 201
    s, body = cluster.json("POST", pods + "/graceful/binding", binding)
    assert_status(s, body, 409, "Conflict")
    _, body = cluster.json("GET", pods + "/graceful")
    assert body["spec"]["nodeName"] == "node-a"
    assert {"type": "PodScheduled", "status": "True"}.items() <= \
        [c for c in body["status"]["conditions"] if c["type"] == "PodScheduled"][0].items()
    s, body = cluster.json("DELETE", pods + "/graceful")
    assert s == 200 and body["metadata"]["deletionGracePeriodSeconds"] == 30
    assert cluster.json("GET", pods + "/graceful")[0] == 200  # waits for its kubelet
    s, body = cluster.json("DELETE", pods + "/graceful?gracePeriodSeconds=0")
    assert s == 200 and body["kind"] == "Pod"  # pods answer with the deleted object
    assert cluster.json("GET", pods + "/graceful")[0] == 404


def test_cluster_ips_and_node_ports_are_unique(cluster: Cluster) -> None:
    svcs = "/api/v1/namespaces/default/services"
    ips, ports = set(), set()
    for i in range(30):
        svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"np-{i}"},
               "spec": {"type": "NodePort", "selector": {"app": "x"},
                        "ports": [{"port": 80, "targetPort": 8080}]}}
        s, body = cluster.json("POST", svcs, svc)
        assert s == 201, body
        ips.add(body["spec"]["clusterIP"])
        ports.add(body["spec"]["ports"][0]["nodePort"])
    assert len(ips) == 30 and len(ports) == 30
    assert all(ip.startswith("10.43.") and ip != "10.43.0.1" for ip in ips)
    assert all(30000 <= p <= 32767 for p in ports)
    taken = sorted(ports)[0]
    clash = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "clash"},
             "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": taken}]}}
    s, body = cluster.json("POST", svcs, clash)
    assert_status(s, body, 422, "Invalid")
    assert body["details"]["causes"][0]["field"] == "spec.ports[0].nodePort"
    outside = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "outside"},
               "spec": {"clusterIP": "192.168.1.1", "ports": [{"port": 80}]}}
    assert_status(*cluster.json("POST", svcs, outside), 422, "Invalid")
    # deleting a service frees its IP and port for someone else
    _, gone = cluster.json("GET", svcs + "/np-0")
    cluster.json("DELETE", svcs + "/np-0")
    again = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "reuse"},
             "spec": {"type": "NodePort", "clusterIP": gone["spec"]["clusterIP"],
                      "ports": [{"port": 80, "nodePort": gone["spec"]["ports"][0]["nodePort"]}]}}
    assert cluster.json("POST", svcs, again)[0] == 201


def test_default_kubernetes_service(cluster: Cluster) -> None:
    s, svc = cluster.json("GET", "/api/v1/namespaces/default/services/kubernetes")
    assert s == 200 and svc["spec"]["clusterIP"] == "10.43.0.1"
    s, ep = cluster.json("GET", "/api/v1/namespaces/default/endpoints/kubernetes")
    assert ep["subsets"][0]["ports"][0]["port"] == cluster.port


# ----- reads -------------------------------------------------------------------------
def test_tables_and_partial_metadata(cluster: Cluster) -> None:
    s, t = cluster.json("GET", CMS, headers={"Accept": TABLE})
    assert t["kind"] == "Table" and t["apiVersion"] == "meta.k8s.io/v1"
    assert [c["name"] for c in t["columnDefinitions"]] == ["Name", "Data", "Age"]
    assert t["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    s, t = cluster.json("GET", CMS + "/dup?includeObject=Object", headers={"Accept": TABLE})
    assert t["rows"][0]["object"]["kind"] == "ConfigMap"
    s, pl = cluster.json("GET", CMS, headers={
        "Accept": "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"})
    assert pl["kind"] == "PartialObjectMetadataList" and "data" not in pl["items"][0]


def test_list_resource_versions(cluster: Cluster) -> None:
    _, first = cluster.json("POST", CMS, cm("versions"))
    rv = first["metadata"]["resourceVersion"]
    cluster.json("PATCH", CMS + "/versions", {"data": {"k": "new"}},
                 content_type="application/merge-patch+json")
    s, old = cluster.json("GET", f"{CMS}?resourceVersion={rv}&resourceVersionMatch=Exact")
    assert s == 200 and old["metadata"]["resourceVersion"] == rv
    assert [i["data"] for i in old["items"] if i["metadata"]["name"] == "versions"] == [{"k": "v"}]
    s, now = cluster.json("GET", f"{CMS}?resourceVersion={rv}&resourceVersionMatch=NotOlderThan")
    assert int(now["metadata"]["resourceVersion"]) > int(rv)
    s, body = cluster.json("GET", f"{CMS}?labelSelector=a%20in%20(b")
    assert_status(s, body, 400, "BadRequest")
    s, body = cluster.json("GET", f"{CMS}?fieldSelector=spec.nothing=1")
    assert_status(s, body, 400, "BadRequest")
    s, body = cluster.json("GET", f"{CMS}?fieldSelector=metadata.name=versions")
    assert [i["metadata"]["name"] for i in body["items"]] == ["versions"]
    s, empty = cluster.json("GET", "/apis/batch/v1/namespaces/default/jobs")
    assert empty["items"] == [] and empty["metadata"]["resourceVersion"]


def _watch_lines(cluster: Cluster, query: str) -> list[dict]:
    started = time.monotonic()
    s, _, raw = cluster.request("GET", f"{CMS}?watch=1&{query}", timeout=20)
    assert s == 200
    assert time.monotonic() - started < 15
    return [json.loads(line) for line in raw.splitlines() if line.strip()]


def test_watch_initial_events_bookmark_and_timeout(cluster: Cluster) -> None:
    events = _watch_lines(cluster, "sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
                                   "&allowWatchBookmarks=true&timeoutSeconds=1")
    assert all(e["type"] == "ADDED" for e in events[:-1]) and len(events) > 1
    mark = events[-1]
    assert mark["type"] == "BOOKMARK" and mark["object"]["kind"] == "ConfigMap"
    assert mark["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    s, body = cluster.json("GET", f"{CMS}?watch=1&sendInitialEvents=true")
    assert_status(s, body, 422, "Invalid")


def test_watch_from_a_version_sees_only_later_changes(cluster: Cluster) -> None:
    _, listed = cluster.json("GET", CMS)
    rv = listed["metadata"]["resourceVersion"]
    cluster.json("POST", CMS, cm("after-list"))
    events = _watch_lines(cluster, f"resourceVersion={rv}&timeoutSeconds=1")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == \
        [("ADDED", "after-list")]


# ----- authentication ------------------------------------------------------------------
def test_anonymous_users_see_only_public_endpoints(cluster: Cluster) -> None:
    s, _, body = cluster.request("GET", "/healthz", anonymous=True)
    assert s == 200 and body == b"ok"
    assert cluster.request("GET", "/version", anonymous=True)[0] == 200
    s, _, raw = cluster.request("GET", "/api/v1/namespaces", anonymous=True)
    body = json.loads(raw)
    assert_status(s, body, 403, "Forbidden")
    assert 'User "system:anonymous" cannot list resource "namespaces"' in body["message"]


def test_namespace_deletion_waits_for_finalize(cluster: Cluster) -> None:
    assert cluster.json("POST", "/api/v1/namespaces",
                        {"apiVersion": "v1", "kind": "Namespace",
                         "metadata": {"name": "doomed"}})[0] == 201
    s, ns = cluster.json("DELETE", "/api/v1/namespaces/doomed")
    assert s == 200 and ns["status"]["phase"] == "Terminating"
    assert ns["metadata"]["deletionTimestamp"] and ns["spec"]["finalizers"] == ["kubernetes"]
    s, body = cluster.json("POST", "/api/v1/namespaces/doomed/configmaps", cm("late"))
    assert_status(s, body, 403, "Forbidden")
    assert "because it is being terminated" in body["message"]
    ns["spec"]["finalizers"] = []
    assert cluster.json("PUT", "/api/v1/namespaces/doomed/finalize", ns)[0] == 200
    assert cluster.json("GET", "/api/v1/namespaces/doomed")[0] == 404


def test_put_creates_where_upstream_allows_it(cluster: Cluster) -> None:
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "put-made"}, "spec": {"holderIdentity": "me"}}
    s, body = cluster.json("PUT", "/apis/coordination.k8s.io/v1/namespaces/default/leases/put-made",
                           lease)
    assert s == 201 and body["metadata"]["uid"]
    s, body = cluster.json("PUT", CMS + "/put-made", cm("put-made"))
    assert_status(s, body, 404, "NotFound")


def test_a_body_sent_in_slow_pieces_arrives_whole(cluster: Cluster) -> None:
    """A request body split over many TCP segments (chunked, with pauses) is read to its
    end, not cut at whatever the first segment held."""
    import http.client
    body = json.dumps(cm("pieces", data={f"k{i}": "v" * 50 for i in range(40)})).encode()

    def pieces():
        for i in range(0, len(body), 100):
            time.sleep(0.01)
            yield body[i:i + 100]
    conn = http.client.HTTPSConnection("127.0.0.1", cluster.port, context=cluster.ssl_context(),
                                       timeout=10)
    try:
        conn.request("POST", CMS, body=pieces(), encode_chunked=True,
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 201, resp.read()
    finally:
        conn.close()
    assert len(cluster.json("GET", CMS + "/pieces")[1]["data"]) == 40
