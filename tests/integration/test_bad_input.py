"""Bad input never hurts the API server: every malformed, wrongly-typed or hostile request
gets a 4xx Kubernetes Status (never a 5xx or a traceback), rejected writes store nothing,
and the server keeps serving correctly afterwards. Runs against a real server over HTTPS."""
from __future__ import annotations

import copy
import json
import os
import signal
import ssl
import threading
import time
import urllib.parse
from typing import Any, Iterator

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.conftest import start_cluster

NS = "default"
KINDS: dict[str, tuple[str, dict]] = {
    "pods": (f"/api/v1/namespaces/{NS}/pods", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}},
        "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80}],
                                 "env": [{"name": "E", "value": "v"}]}]}}),
    "deployments": (f"/apis/apps/v1/namespaces/{NS}/deployments", {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}},
                 "template": {"metadata": {"labels": {"a": "b"}},
                              "spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
    "services": (f"/api/v1/namespaces/{NS}/services", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
        "spec": {"selector": {"a": "b"}, "ports": [{"port": 80, "targetPort": 8080}]}}),
    "configmaps": (f"/api/v1/namespaces/{NS}/configmaps", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"k": "v"}}),
    "namespaces": ("/api/v1/namespaces", {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "fuzz-ns"}}),
    "roles": (f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/roles", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "r"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}),
    "jobs": (f"/apis/batch/v1/namespaces/{NS}/jobs", {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
                                       "containers": [{"name": "c", "image": "i"}]}}}}),
}
WRONG = ([], ["x"], [None], [[]], [{"a": 1}], "s", 7, 1.5, True, None, {"x": {"y": []}},
         "\u2603\U0001F600\x00", "x" * 5000)
POD_URL = KINDS["pods"][0]


def assert_status(status: int, raw: bytes, allowed: tuple[int, ...] = ()) -> dict:
    """A 4xx whose body is a JSON Status with a matching code."""
    assert 400 <= status < 500 or status in allowed, (status, raw[:400])
    if status >= 400:
        body = json.loads(raw)
        assert body.get("kind") == "Status", raw[:400]
        assert body.get("code") == status and body.get("status") == "Failure", raw[:400]
        assert "Traceback" not in body.get("message", "")
        return body
    return {}


def counts(cluster) -> dict[str, int]:
    out = {}
    for kind, (url, _) in KINDS.items():
        status, body = cluster.json("GET", url)
        assert status == 200, body
        out[kind] = len(body["items"])
    return out


def mutations(value: Any, path: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    """Every node of an object replaced by each wrongly-typed value."""
    children = value.items() if isinstance(value, dict) else enumerate(value) \
        if isinstance(value, list) else ()
    for key, child in children:
        for bad in WRONG:
            yield path + (key,), bad
        yield from mutations(child, path + (key,))


def replaced(obj: dict, path: tuple, value: Any) -> dict:
    out = copy.deepcopy(obj)
    cur = out
    for k in path[:-1]:
        cur = cur[k]
    cur[path[-1]] = value
    return out


@pytest.fixture(scope="module")
def baseline(cluster) -> dict[str, int]:
    """One real pod to patch/update/delete against, then the object counts."""
    url, pod = KINDS["pods"]
    status, body = cluster.json("POST", url, dict(pod, metadata={"name": "victim"}))
    assert status == 201, body
    return counts(cluster)


def test_wrong_json_types_at_every_level(cluster, baseline):
    deadline = time.monotonic() + 300  # a safety bound, not a speed check
    for kind, (url, obj) in KINDS.items():
        for path, bad in mutations(obj):
            if path[-1] == "kind" or path[-1] == "apiVersion":
                continue
            assert time.monotonic() < deadline, "wrong-type sweep took too long"
            body = replaced(obj, path, bad)
            status, _, raw = cluster.request("POST", url + "?dryRun=All", body)
            assert_status(status, raw, allowed=(201,))
    assert counts(cluster) == baseline


def test_wrong_type_answer_reads_like_upstream_decoder(cluster, baseline):
    url, pod = KINDS["pods"]
    status, _, raw = cluster.request("POST", url, replaced(pod, ("spec", "containers"), "s"))
    body = assert_status(status, raw)
    assert status == 400 and body["reason"] == "BadRequest"
    assert body["message"] == (
        'Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal string into '
        "Go struct field PodSpec.spec.containers of type []v1.Container")
    status, _, raw = cluster.request(
        "POST", url, replaced(pod, ("spec", "containers", 0, "ports", 0, "containerPort"), "80"))
    assert "ContainerPort.spec.containers.ports.containerPort of type int32" in \
        assert_status(status, raw)["message"]
    # an update and a patch are checked the same way, before any strategy sees them
    status, _, raw = cluster.request("PUT", url + "/victim",
                                     replaced(pod, ("metadata", "name"), 5))
    assert status == 400, raw
    status, _, raw = cluster.request("PATCH", url + "/victim", {"spec": {"containers": 3}},
                                     content_type="application/merge-patch+json")
    assert status == 400 and b"cannot unmarshal number" in raw, raw
    assert counts(cluster) == baseline


def test_nulls_decode_as_zero_values(cluster, baseline):
    """null list items become empty structs (then fail validation), null fields are unset."""
    url, pod = KINDS["pods"]
    status, _, raw = cluster.request("POST", url, replaced(pod, ("spec", "containers"), [None]))
    body = assert_status(status, raw)
    assert status == 422 and "spec.containers[0].name: Required value" in body["message"]
    ok = replaced(pod, ("metadata", "labels"), None)
    ok["metadata"]["name"] = "nulls"
    ok["spec"]["nodeName"] = None
    status, body = cluster.json("POST", url + "?dryRun=All", ok)
    assert status == 201, body
    assert "labels" not in body["metadata"] and "nodeName" not in body["spec"]
    assert counts(cluster) == baseline


@pytest.mark.parametrize("spec", [[], "s", 5, [None], {"replicas": "3"}, {"replicas": -1},
                                  {"replicas": 1.5}, {"replicas": [3]}])
def test_scale_subresource_wrong_types(cluster, baseline, spec):
    url, dep = KINDS["deployments"]
    status, _ = cluster.json("POST", url, replaced(dep, ("metadata", "name"), "scaled"))
    assert status == 201
    try:
        scale = {"apiVersion": "autoscaling/v1", "kind": "Scale",
                 "metadata": {"name": "scaled"}, "spec": spec}
        status, _, raw = cluster.request("PUT", url + "/scaled/scale", scale)
        assert status in (400, 422) and assert_status(status, raw)
        status, _, raw = cluster.request("PATCH", url + "/scaled/scale", {"spec": spec},
                                         content_type="application/merge-patch+json")
        assert status in (400, 422) and assert_status(status, raw)
        _, got = cluster.json("GET", url + "/scaled")
        assert got["spec"]["replicas"] == 1
    finally:
        assert cluster.json("DELETE", url + "/scaled?propagationPolicy=Background")[0] == 200
    deadline = time.monotonic() + 10
    while cluster.json("GET", url + "/scaled")[0] != 404 and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.mark.parametrize("path,body", [
    (f"{POD_URL}/victim/binding", {"target": "node-1"}),
    (f"{POD_URL}/victim/binding", {"target": {"name": 5}}),
    (f"{POD_URL}/victim/binding", {"metadata": [], "target": {"name": "n"}}),
    ("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", {"spec": 5}),
    ("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
     {"spec": {"resourceAttributes": "pods"}}),
    ("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", {"spec": {"nonResourceAttributes": [None]}}),
    ("/apis/authentication.k8s.io/v1/tokenreviews", {"spec": {"token": 5}}),
    ("/apis/authentication.k8s.io/v1/tokenreviews", {"spec": None}),
])
def test_subresources_and_reviews_wrong_types(cluster, baseline, path, body):
    status, _, raw = cluster.request("POST", path, body)
    assert_status(status, raw, allowed=(201,))
    _, pod = cluster.json("GET", POD_URL + "/victim")
    assert not pod["spec"].get("nodeName")


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                 max_size=4),
    max_leaves=25)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(kind=st.sampled_from(sorted(KINDS)), data=st.data(), value=_json)
def test_fuzzed_values_anywhere(cluster, baseline, kind, data, value):
    url, obj = KINDS[kind]
    paths = [p for p, _ in mutations(obj) if p[-1] not in ("kind", "apiVersion")]
    paths = list(dict.fromkeys(paths))
    path = data.draw(st.sampled_from(paths))
    method = data.draw(st.sampled_from(["POST", "PUT", "PATCH"]))
    target = url if method == "POST" else f"{url}/{obj['metadata']['name']}"
    ctype = "application/merge-patch+json" if method == "PATCH" else "application/json"
    status, _, raw = cluster.request(method, target + "?dryRun=All",
                                     replaced(obj, path, value), content_type=ctype)
    assert_status(status, raw, allowed=(200, 201))


def _laughs() -> bytes:
    lines = [b"a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]"]
    names = "abcdefghij"
    for prev, cur in zip(names, names[1:]):
        refs = ",".join([f"*{prev}"] * 9)
        lines.append(f"{cur}: &{cur} [{refs}]".encode())
    return b"\n".join(lines) + b"\n"


@pytest.mark.parametrize("body,ctype,code,needle", [
    (b"", "application/json", 400, "empty"),
    (b"   \n", "application/yaml", 400, "empty"),
    (b"{", "application/json", 400, "decoded as JSON"),
    (b"\xff\xfe\x00\x81 not utf-8", "application/json", 400, "decoded as JSON"),
    (b"\xef\xbb\xbf{}", "application/json", 400, "BOM"),
    (b"[" * 10000 + b"]" * 10000, "application/json", 400, "decoded as JSON"),
    (b"[" * 10000 + b"]" * 10000, "application/yaml", 400, "nested too deeply"),
    (b"- " * 3000 + b"x", "application/yaml", 400, "nested too deeply"),
    (_laughs(), "application/yaml", 400, "too many nodes"),
    (b"a: &a [*a]\n", "application/yaml", 400, "its own anchor"),
    (b"!!python/object/apply:os.system ['true']\n", "application/yaml", 400, "constructor"),
    (b"foo: !!binary aGVsbG8=\n", "application/yaml", 400, "!!binary"),
    (b"key: [unclosed\n", "application/yaml", 400, "decoded as YAML"),
    (b"[1, 2]", "application/json", 400, "must be a Pod"),
    (b'"just a string"', "application/json", 400, "must be a Pod"),
    (b"null", "application/json", 400, "must be a Pod"),
    (b"{}", "text/html", 415, "content type"),
    (b"{}", "application/vnd.kubernetes.protobuf", 400, ""),
    (b'{"kind": "Service", "apiVersion": "v1"}', "application/json", 400, "kind"),
])
def test_malformed_bodies(cluster, baseline, body, ctype, code, needle):
    status, _, raw = cluster.request("POST", POD_URL, body, content_type=ctype, timeout=20)
    msg = assert_status(status, raw)["message"]
    assert status == code, raw[:300]
    assert needle in msg, msg
    assert counts(cluster) == baseline


def test_oversized_body_is_413(cluster, baseline):
    big = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"},
           "data": {"k": "x" * (3 * 1024 * 1024 + 10)}}
    status, _, raw = cluster.request("POST", KINDS["configmaps"][0], big, timeout=30)
    assert status == 413 and assert_status(status, raw)["reason"] == "RequestEntityTooLarge"
    assert counts(cluster) == baseline


@pytest.mark.parametrize("query", [
    "labelSelector=a%20in%20(", "labelSelector=!!!==", "labelSelector=%00",
    "fieldSelector=metadata.name%3D%3D%3Dx", "fieldSelector=bogus.field%3Dx",
    "limit=abc", "limit=1e9999", "continue=%25%25garbage", "continue=eyJ2IjoxfQ",
    "resourceVersion=abc", "resourceVersion=-1&resourceVersionMatch=Exact",
    "resourceVersionMatch=Bogus&resourceVersion=1", "watch=1&timeoutSeconds=abc",
    "watch=true&resourceVersion=abc",
])
def test_bad_query_parameters(cluster, baseline, query):
    status, _, raw = cluster.request("GET", f"{POD_URL}?{query}", timeout=10)
    assert_status(status, raw)


@pytest.mark.parametrize("query", ["fieldValidation=Sometimes", "dryRun=Some", "dryRun=",
                                   "fieldManager=" + "x" * 200])
def test_bad_write_parameters(cluster, baseline, query):
    url, cm = KINDS["configmaps"]
    status, _, raw = cluster.request("POST", f"{url}?{query}", cm)
    assert_status(status, raw, allowed=(201,) if query.startswith("fieldManager") else ())
    if status == 201:
        assert cluster.json("DELETE", f"{url}/cm")[0] == 200
    assert counts(cluster) == baseline


def test_yaml_timestamps_stay_strings(cluster, baseline):
    """An unquoted date in YAML is a string in JSON, not a wrongly-typed value."""
    url, _ = KINDS["configmaps"]
    body = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dated}\ndata: {day: 2020-01-01}\n"
    status, _, raw = cluster.request("POST", url + "?dryRun=All", body,
                                     content_type="application/yaml")
    assert status == 201, raw
    assert json.loads(raw)["data"] == {"day": "2020-01-01"}


def test_negative_limit_lists_everything(cluster, baseline):
    status, body = cluster.json("GET", POD_URL + "?limit=-5")
    assert status == 200 and len(body["items"]) == baseline["pods"]


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(segments=st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=5),
       query=st.dictionaries(st.sampled_from(["labelSelector", "fieldSelector", "limit",
                                              "continue", "resourceVersion", "timeoutSeconds",
                                              "watch", "propagationPolicy", "dryRun"]),
                             st.text(max_size=20), max_size=3),
       prefix=st.sampled_from([POD_URL, "/api/v1", "/apis/apps/v1", "/api", "/apis/x"]),
       method=st.sampled_from(["GET", "DELETE", "POST", "PUT", "PATCH", "OPTIONS"]))
def test_random_paths_and_queries(cluster, baseline, segments, query, prefix, method):
    path = prefix + "/" + "/".join(urllib.parse.quote(s, safe="") for s in segments)
    qs = urllib.parse.urlencode(query)
    body = b"{}" if method in ("POST", "PUT", "PATCH") else None
    ctype = "application/merge-patch+json" if method == "PATCH" else "application/json"
    status, _, raw = cluster.request(method, path + ("?" + qs if qs else ""), body,
                                     content_type=ctype, timeout=10)
    assert_status(status, raw, allowed=(200,))


@pytest.mark.parametrize("ctype,patch", [
    ("application/json-patch+json", [{"op": "remove", "path": "/spec/nope/0"}]),
    ("application/json-patch+json", [{"op": "replace", "path": "/spec/containers/99/name",
                                      "value": "x"}]),
    ("application/json-patch+json", [{"op": "bogus", "path": "/spec"}]),
    ("application/json-patch+json", [{"path": "/spec"}]),
    ("application/json-patch+json", [{"op": "add"}]),
    ("application/json-patch+json", [{"op": "add", "path": 5, "value": 1}]),
    ("application/json-patch+json", [{"op": "test", "path": "/metadata/name", "value": "no"}]),
    ("application/json-patch+json", [{"op": "move", "from": "/nope", "path": "/spec/x"}]),
    ("application/json-patch+json", [1, "x", None]),
    ("application/json-patch+json", {"op": "add"}),
    ("application/json-patch+json", [{"op": "replace", "path": "/spec", "value": []}]),
    ("application/json-patch+json", [{"op": "replace", "path": "", "value": 3}]),
    ("application/merge-patch+json", [1, 2]),
    ("application/merge-patch+json", "str"),
    ("application/merge-patch+json", {"metadata": []}),
    ("application/merge-patch+json", {"spec": {"containers": {"a": 1}}}),
    ("application/merge-patch+json", {"metadata": {"name": "other"}}),
    ("application/merge-patch+json", {"metadata": {"resourceVersion": "1"}}),
    ("application/strategic-merge-patch+json", [1]),
    ("application/strategic-merge-patch+json", {"spec": {"$patch": "replace"}}),
    ("application/strategic-merge-patch+json", {"$patch": "delete"}),
    ("application/strategic-merge-patch+json", {"spec": {"$patch": 5}}),
    ("application/strategic-merge-patch+json", {"spec": {"$patch": "bogus"}}),
    ("application/strategic-merge-patch+json",
     {"spec": {"$setElementOrder/containers": "bad"}}),
    ("application/strategic-merge-patch+json",
     {"spec": {"$setElementOrder/containers": [1, None, {"x": 1}]}}),
    ("application/strategic-merge-patch+json",
     {"spec": {"containers": [{"$patch": "delete"}]}}),
    ("application/strategic-merge-patch+json",
     {"spec": {"containers": [{"name": "c", "$patch": "bogus"}]}}),
    ("application/strategic-merge-patch+json",
     {"spec": {"$deleteFromPrimitiveList/containers": {"a": 1}}}),
    ("application/strategic-merge-patch+json", {"spec": {"$retainKeys": "x"}}),
    ("application/strategic-merge-patch+json", {"metadata": {"labels": [1]}}),
    ("application/apply-patch+yaml", b"- 1\n- 2\n"),
    ("application/apply-patch+yaml", b"kind: Pod\n"),
    ("application/bogus-patch+json", {}),
])
def test_patches_with_wrong_shapes(cluster, baseline, ctype, patch):
    status, before = cluster.json("GET", POD_URL + "/victim")
    query = "?fieldManager=fuzz" if "apply" in ctype else ""
    status, _, raw = cluster.request("PATCH", POD_URL + "/victim" + query, patch,
                                     content_type=ctype)
    assert_status(status, raw, allowed=(200,))
    if status == 200:  # an accepted oddity must still leave a valid pod
        assert json.loads(raw)["spec"]["containers"]
    else:
        _, after = cluster.json("GET", POD_URL + "/victim")
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert counts(cluster) == baseline


@pytest.mark.parametrize("body,query", [
    ({"gracePeriodSeconds": "abc"}, ""),
    ({"preconditions": 5}, ""),
    ({"preconditions": {"uid": "not-the-uid"}}, ""),
    ({"preconditions": {"resourceVersion": "1"}}, ""),
    ({"propagationPolicy": "Sideways"}, ""),
    ({"propagationPolicy": 7}, ""),
    ({"dryRun": "All"}, ""),
    ({"dryRun": ["Nope"]}, ""),
    ([1], ""),
    ("str", ""),
    (b"{not json", ""),
    (None, "gracePeriodSeconds=abc"),
    (None, "propagationPolicy=Sideways"),
    (None, "dryRun=Bogus"),
])
def test_delete_options_garbage(cluster, baseline, body, query):
    status, _, raw = cluster.request("DELETE", f"{POD_URL}/victim?{query}", body)
    assert_status(status, raw)
    assert counts(cluster) == baseline


@pytest.mark.parametrize("method,path,headers,code", [
    ("GET", POD_URL, {"Accept": "text/html"}, 406),
    ("GET", POD_URL, {"Accept": "application/json;as=Bogus;g=x;v=y"}, 406),
    ("PUT", POD_URL, {}, 405),
    ("POST", POD_URL + "/victim", {}, 405),
    ("PROPFIND", POD_URL, {}, 405),
    ("GET", POD_URL + "/victim/bogussub", {}, 404),
    ("GET", "/api/v1/namespaces/%2e%2e/pods/victim", {}, 404),
    ("GET", "/api/v1/bogusresources", {}, 404),
])
def test_wrong_methods_headers_and_paths(cluster, baseline, method, path, headers, code):
    body = b"{}" if method in ("PUT", "POST") else None
    status, _, raw = cluster.request(method, path, body, headers=headers)
    assert_status(status, raw)
    assert status == code, raw[:300]


@pytest.mark.parametrize("name", ["UPPER", "a" * 300, "sp ace", "../etc", "\u2603", "-x-",
                                  "a/b", "a%2Fb", ""])
def test_invalid_names(cluster, baseline, name):
    url, cm = KINDS["configmaps"]
    status, _, raw = cluster.request("POST", url, replaced(cm, ("metadata", "name"), name))
    assert status in (400, 422), raw[:300]
    assert_status(status, raw)
    assert counts(cluster) == baseline


def test_conflicts_lose_nothing(cluster, baseline):
    url, cm = KINDS["configmaps"]
    status, created = cluster.json("POST", url, replaced(cm, ("metadata", "name"), "conf"))
    assert status == 201
    status, _, raw = cluster.request("POST", url, replaced(cm, ("metadata", "name"), "conf"))
    assert status == 409 and assert_status(status, raw)["reason"] == "AlreadyExists"
    stale = copy.deepcopy(created)
    stale["metadata"]["resourceVersion"] = "1"
    stale["data"] = {"k": "lost"}
    status, _, raw = cluster.request("PUT", url + "/conf", stale)
    assert status == 409 and assert_status(status, raw)["reason"] == "Conflict"
    _, now = cluster.json("GET", url + "/conf")
    assert now["data"] == {"k": "v"} and now["metadata"]["uid"] == created["metadata"]["uid"]
    assert cluster.json("DELETE", url + "/conf")[0] == 200


def test_server_still_serves_after_the_abuse(cluster, baseline):
    """Runs last in the file: the server is alive, counts unchanged, writes still work."""
    assert counts(cluster) == baseline
    url, pod = KINDS["pods"]
    status, body = cluster.json("POST", url, replaced(pod, ("metadata", "name"), "after"))
    assert status == 201, body
    status, got = cluster.json("GET", url + "/after")
    assert status == 200 and got["metadata"]["uid"] == body["metadata"]["uid"]
    assert cluster.proc.poll() is None


# ----- a killed process ---------------------------------------------------------------------
def test_sigkill_during_creates_loses_nothing(tmp_path):
    """SIGKILL the apiserver child mid-burst: the supervisor restarts it, every acknowledged
    create is there with its uid, nothing is half-written, and the server serves again."""
    cluster = start_cluster(tmp_path / "killed")
    url = KINDS["configmaps"][0]
    acked: dict[str, str] = {}
    stop = threading.Event()

    def creator(worker: int) -> None:
        for i in range(2000):
            if stop.is_set():
                return
            name = f"burst-{worker}-{i}"
            body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
                    "data": {"payload": name * 50}}
            try:
                status, _, raw = cluster.request("POST", url, body, timeout=5)
            except (OSError, ssl.SSLError):
                time.sleep(0.05)  # the server is down: try the next name shortly
                continue
            if status == 201:
                acked[name] = json.loads(raw)["metadata"]["uid"]

    try:
        old = cluster.component_pid("apiserver")
        assert old is not None
        threads = [threading.Thread(target=creator, args=(w,), daemon=True) for w in range(3)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while len(acked) < 20 and time.monotonic() < deadline:
            time.sleep(0.02)
        before_kill = len(acked)
        os.kill(old, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until the restarted server acknowledges more
            new = cluster.component_pid("apiserver")
            if new not in (None, old) and len(acked) > before_kill + 20:
                break
            time.sleep(0.1)
        stop.set()
        for t in threads:
            t.join(15)
        print(f"acked {before_kill} before the kill, {len(acked)} in all")
        assert new not in (None, old), "the supervisor did not restart the apiserver"
        assert len(acked) > before_kill, "no create succeeded after the restart"
        status, body = cluster.json("GET", url)
        assert status == 200
        stored = {o["metadata"]["name"]: o for o in body["items"]
                  if o["metadata"]["name"].startswith("burst-")}
        for name, uid in acked.items():
            assert name in stored, f"acknowledged create {name} was lost"
            assert stored[name]["metadata"]["uid"] == uid
        for name, obj in stored.items():  # in-flight creates are whole or absent
            assert obj["data"] == {"payload": name * 50}
            assert obj["metadata"]["uid"] and obj["metadata"]["resourceVersion"]
        status, _ = cluster.json("POST", url, {"metadata": {"name": "after-kill"}})
        assert status == 201
        assert cluster.proc.poll() is None
    finally:
        stop.set()
        cluster.stop()
