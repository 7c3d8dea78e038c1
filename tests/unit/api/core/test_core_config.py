"""ConfigMaps, Secrets, ServiceAccounts, Namespaces."""
import base64

from pybernetes.api.core.configmaps import ConfigMapStrategy
from pybernetes.api.core.namespaces import NamespaceStrategy
from pybernetes.api.core.secrets import SecretStrategy
from pybernetes.api.core.serviceaccounts import ServiceAccountStrategy

from core_flow import create, messages, update

CM = ConfigMapStrategy()
SEC = SecretStrategy()
NS = NamespaceStrategy()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_configmap_keys_and_size():
    _, errs = create(CM, {"metadata": {"name": "c"}, "data": {"ok.key": "v", "bad/key": "v",
                                                              "dup": "x"},
                          "binaryData": {"dup": b64("x")}})
    msgs = messages(errs)
    assert msgs[0].startswith('data[bad/key]: Invalid value: "bad/key": a valid config key must '
                              "consist of alphanumeric characters, '-', '_' or '.'")
    assert 'data[dup]: Invalid value: "dup": duplicate of key present in binaryData' in msgs
    _, errs = create(CM, {"metadata": {"name": "big"}, "data": {"a": "x" * (1024 * 1024 + 1)}})
    assert messages(errs) == [": Too long: may not be more than 1048576 bytes"]


def test_immutable_configmap():
    old, _ = create(CM, {"metadata": {"name": "c"}, "data": {"a": "1"}, "immutable": True})
    new = {**old, "data": {"a": "2"}}
    assert messages(update(CM, new, old)[1]) == [
        "data: Forbidden: field is immutable when `immutable` is set"]
    assert update(CM, old, old)[1] == []
    assert CM.table_row({"metadata": {"name": "c"}, "data": {"a": "1"},
                         "binaryData": {"b": ""}})[:2] == ["c", 2]


def test_secret_defaults_and_string_data():
    sec, errs = create(SEC, {"metadata": {"name": "s"}, "stringData": {"user": "admin"}})
    assert errs == []
    assert sec["type"] == "Opaque"
    assert sec["data"] == {"user": b64("admin")} and "stringData" not in sec
    assert SEC.table_row(sec)[:3] == ["s", "Opaque", 1]
    assert SEC.field_labels(sec)["type"] == "Opaque"


def test_secret_type_rules():
    _, errs = create(SEC, {"metadata": {"name": "t"}, "type": "kubernetes.io/tls",
                           "data": {"tls.crt": b64("x")}})
    assert messages(errs) == ["data[tls.key]: Required value"]
    _, errs = create(SEC, {"metadata": {"name": "sa"},
                           "type": "kubernetes.io/service-account-token"})
    assert messages(errs) == [
        "metadata.annotations[kubernetes.io/service-account.name]: Required value"]
    _, errs = create(SEC, {"metadata": {"name": "d"}, "type": "kubernetes.io/dockerconfigjson",
                           "data": {".dockerconfigjson": b64("{not json")}})
    assert len(errs) == 1 and errs[0].field == "data[.dockerconfigjson]"
    assert errs[0].bad_value == "<secret contents redacted>"
    _, errs = create(SEC, {"metadata": {"name": "d"}, "type": "kubernetes.io/dockerconfigjson",
                           "data": {".dockerconfigjson": b64('{"auths": {}}')}})
    assert errs == []


def test_secret_type_is_immutable():
    old, _ = create(SEC, {"metadata": {"name": "s"}, "data": {"a": b64("1")}})
    new = {**old, "type": "kubernetes.io/basic-auth", "data": {"username": b64("u")}}
    assert messages(update(SEC, new, old)[1]) == [
        'type: Invalid value: "kubernetes.io/basic-auth": field is immutable']


def test_namespace_create_and_finalize_rules():
    ns, errs = create(NS, {"metadata": {"name": "team-a"}})
    assert errs == []
    assert ns["spec"] == {"finalizers": ["kubernetes"]}
    assert ns["status"] == {"phase": "Active"}
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team-a"}
    assert NS.name_validator("a.b") == ["must not contain dots"]
    # a plain update cannot drop the finalizer (only the finalize subresource may)
    new, _ = update(NS, {"metadata": dict(ns["metadata"]), "spec": {"finalizers": []}}, ns)
    assert new["spec"]["finalizers"] == ["kubernetes"]
    assert NS.table_row(ns)[:2] == ["team-a", "Active"]
    assert NS.field_labels(ns) == {"metadata.name": "team-a", "status.phase": "Active"}
    bad = {"metadata": {"name": "x"}, "spec": {"finalizers": ["custom"]}}
    assert messages(NS.validate(bad)) == [
        'spec.finalizers[0]: Invalid value: "custom": name is neither a standard finalizer '
        "name nor is it fully qualified"]


def test_namespace_status_phase_rules():
    ns, _ = create(NS, {"metadata": {"name": "n"}})
    term = {**ns, "status": {"phase": "Terminating"}}
    assert messages(NS.validate_status_update(term, ns)) == [
        'status.Phase: Invalid value: "Terminating": may only be \'Active\' if '
        "`deletionTimestamp` is empty"]
    term["metadata"] = {**ns["metadata"], "deletionTimestamp": "2026-01-01T00:00:00Z"}
    assert NS.validate_status_update(term, ns) == []


def test_serviceaccount_row():
    sa = ServiceAccountStrategy()
    assert sa.short_names == ("sa",)
    assert sa.table_row({"metadata": {"name": "default"}, "secrets": [{"name": "t"}]})[:2] == [
        "default", 1]
