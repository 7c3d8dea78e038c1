import asyncio

import pytest

from pybernetes.api.authentication import SelfSubjectReviewStrategy
from pybernetes.api.authorization import (SelfSubjectAccessReviewStrategy,
                                          SubjectAccessReviewStrategy)
from pybernetes.api.autoscaling import HPAV1Strategy, HPAV2Strategy, v1_to_v2, v2_to_v1
from pybernetes.api.certificates import CertificateSigningRequestStrategy
from pybernetes.api.coordination import LeaseStrategy
from pybernetes.api.discovery import EndpointSliceStrategy
from pybernetes.api.networking import IngressStrategy, NetworkPolicyStrategy
from pybernetes.api.policy import PodDisruptionBudgetStrategy
from pybernetes.api.rbac import ClusterRoleBindingStrategy, RoleBindingStrategy, RoleStrategy
from pybernetes.api.strategy import Registry
from pybernetes.api.scheduling import PriorityClassStrategy
from pybernetes.api.storage import StorageClassStrategy
from pybernetes.machinery.errors import StatusError

from group_helpers import column_names, create, messages, update

GROUP_MODULES = ("apps", "events", "authentication", "authorization", "autoscaling", "batch",
                 "certificates", "networking", "policy", "rbac", "storage", "scheduling",
                 "coordination", "discovery")


def registry() -> Registry:
    """Our groups only (the core group is someone else's and may be mid-change)."""
    import importlib
    reg = Registry()
    for name in GROUP_MODULES:
        for s in importlib.import_module(f"pybernetes.api.{name}").STRATEGIES:
            reg.register(s)
    return reg


def test_ingress_path_type_required_and_table():
    s = IngressStrategy()
    ing = {"metadata": {"name": "web"}, "spec": {"rules": [{"host": "a.example.com", "http": {
        "paths": [{"path": "/", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}
    obj, errs = create(s, ing)
    assert messages(errs) == ["spec.rules[0].http.paths[0].pathType: Required value: pathType "
                              "must be specified"]
    ing["spec"]["rules"][0]["http"]["paths"][0]["pathType"] = "Prefix"
    ing["spec"]["ingressClassName"] = "nginx"
    obj, errs = create(s, ing)
    assert errs == [] and obj["status"] == {"loadBalancer": {}}
    obj["status"] = {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}}
    assert column_names(s) == ["Name", "Class", "Hosts", "Address", "Ports", "Age"]
    assert s.table_row(obj)[:5] == ["web", "nginx", "a.example.com", "10.0.0.1", "80"]
    empty = {"metadata": {"name": "e"}, "spec": {}}
    assert any("either `defaultBackend` or `rules`" in m for m in messages(create(s, empty)[1]))


def test_networkpolicy_policy_types_computed():
    s = NetworkPolicyStrategy()
    np = {"metadata": {"name": "np"}, "spec": {"podSelector": {}, "egress": [{"ports": [{"port": 53}]}]}}
    obj, errs = create(s, np)
    assert errs == []
    assert obj["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert obj["spec"]["egress"][0]["ports"][0]["protocol"] == "TCP"
    assert s.table_row(obj)[:2] == ["np", "<none>"]
    obj, _ = create(s, {"metadata": {"name": "np"}, "spec": {"podSelector": {"matchLabels": {"a": "b"}}}})
    assert obj["spec"]["policyTypes"] == ["Ingress"] and s.table_row(obj)[1] == "a=b"


def test_rbac_validation_and_tables():
    rb = RoleBindingStrategy()
    b = {"metadata": {"name": "rb"}, "roleRef": {"kind": "Role", "name": "r"},
         "subjects": [{"kind": "User", "name": "alice"},
                      {"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}]}
    obj, errs = create(rb, b)
    assert errs == []
    assert obj["roleRef"]["apiGroup"] == "rbac.authorization.k8s.io"
    assert obj["subjects"][0]["apiGroup"] == "rbac.authorization.k8s.io"
    assert rb.table_row(obj)[1] == "Role/r" and rb.table_row(obj)[3:] == ["alice", "", "ns/sa"]
    changed = {**obj, "roleRef": {**obj["roleRef"], "name": "other"}}
    assert [m.split(":")[0] for m in messages(update(rb, changed, obj)[1])] == ["roleRef"]
    assert messages(update(rb, changed, obj)[1])[0].endswith("cannot change roleRef")
    crb = ClusterRoleBindingStrategy()
    _, errs = create(crb, {"metadata": {"name": "c"}, "roleRef": {"kind": "Role", "name": "r"},
                           "subjects": [{"kind": "ServiceAccount", "name": "sa"},
                                        {"kind": "Robot", "name": "x"}]})
    assert messages(errs) == [
        'roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole"',
        "subjects[0].namespace: Required value",
        'subjects[1].kind: Unsupported value: "Robot": supported values: "ServiceAccount", '
        '"User", "Group"']
    role = RoleStrategy()
    _, errs = create(role, {"metadata": {"name": "r"}, "rules": [
        {"verbs": ["get"], "nonResourceURLs": ["/x"]}, {"verbs": []}]})
    assert [e.field for e in errs] == ["rules[0].nonResourceURLs", "rules[1].verbs",
                                       "rules[1].apiGroups", "rules[1].resources"]
    assert column_names(role) == ["Name", "Created At"] and role.columns[1].type == "date"
    r, _ = create(role, {"metadata": {"name": "r"}})
    assert role.table_row(r)[1] == r["metadata"]["creationTimestamp"]
    assert role.name_validator("a:b") == [] and role.name_validator("a/b")


def test_storageclass_defaults_and_table():
    s = StorageClassStrategy()
    obj, errs = create(s, {"metadata": {"name": "local", "annotations": {
        "storageclass.kubernetes.io/is-default-class": "true"}}, "provisioner": "rancher.io/local-path"})
    assert errs == [] and obj["reclaimPolicy"] == "Delete"
    assert obj["volumeBindingMode"] == "Immediate"
    assert s.table_row(obj)[:5] == ["local (default)", "rancher.io/local-path", "Delete",
                                    "Immediate", False]
    changed = {**obj, "provisioner": "other.io/x", "volumeBindingMode": "WaitForFirstConsumer"}
    assert messages(update(s, changed, obj)[1]) == [
        "provisioner: Forbidden: updates to provisioner are forbidden.",
        'volumeBindingMode: Invalid value: "WaitForFirstConsumer": field is immutable']


def test_lease_and_endpointslice():
    lease = LeaseStrategy()
    obj, errs = create(lease, {"metadata": {"name": "l"}, "spec": {"holderIdentity": "me",
                                                                    "leaseDurationSeconds": 0}})
    assert messages(errs) == ["spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"]
    assert lease.table_row(obj)[:2] == ["l", "me"]
    eps = EndpointSliceStrategy()
    obj, errs = create(eps, {"metadata": {"name": "s"}, "addressType": "IPv4",
                             "endpoints": [{"addresses": [f"10.0.0.{i}"]} for i in range(5)],
                             "ports": [{"port": 80}]})
    assert errs == [] and obj["ports"][0] == {"port": 80, "protocol": "TCP", "name": ""}
    assert eps.table_row(obj)[1:4] == ["IPv4", "80", "10.0.0.0,10.0.0.1,10.0.0.2 + 2 more..."]
    _, errs = create(eps, {"metadata": {"name": "s"}, "addressType": "IPv4",
                           "endpoints": [{"addresses": ["fd00::1"]}]})
    assert [e.field for e in errs] == ["endpoints[0].addresses[0]"]


def test_pdb():
    s = PodDisruptionBudgetStrategy()
    obj, errs = create(s, {"metadata": {"name": "p"}, "spec": {"minAvailable": 1,
                                                                "selector": {"matchLabels": {"a": "b"}}}})
    assert errs == [] and obj["status"]["disruptionsAllowed"] == 0
    assert column_names(s) == ["Name", "Min Available", "Max Unavailable", "Allowed Disruptions",
                               "Age"]
    assert s.table_row(obj)[:4] == ["p", "1", "N/A", 0]
    _, errs = create(s, {"metadata": {"name": "p"}, "spec": {"minAvailable": 1,
                                                              "maxUnavailable": "120%"}})
    assert [m.split(": ")[-1] for m in messages(errs)] == [
        "minAvailable and maxUnavailable cannot be both set", "must not be greater than 100%"]


def test_hpa_v2_defaults_and_v1_round_trip():
    v2 = HPAV2Strategy()
    obj, errs = create(v2, {"metadata": {"name": "h"}, "spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "maxReplicas": 5, "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}})
    assert errs == []
    assert obj["spec"]["minReplicas"] == 1
    assert obj["spec"]["metrics"] == [{"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": 80}}}]
    assert obj["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 60
    assert obj["spec"]["behavior"]["scaleUp"]["policies"][0] == {"type": "Pods", "value": 4,
                                                                 "periodSeconds": 15}
    obj["spec"]["metrics"].append({"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {
        "type": "AverageValue", "averageValue": "1k"}}})
    obj["status"] = {"currentReplicas": 2, "desiredReplicas": 2, "currentMetrics": [
        {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 30}}}],
        "conditions": [{"type": "AbleToScale", "status": "True"}]}
    as_v1 = v2_to_v1(obj)
    assert as_v1["apiVersion"] == "autoscaling/v1"
    assert as_v1["spec"]["targetCPUUtilizationPercentage"] == 80
    assert as_v1["status"]["currentCPUUtilizationPercentage"] == 30
    assert "metrics" not in as_v1["spec"]
    back = v1_to_v2(as_v1)
    assert back == {**obj, "apiVersion": "autoscaling/v2"}
    assert v2.table_row(obj)[1:6] == ["Deployment/web", "cpu: 30%/80%, <unknown>/1k", "1", 5, 2]
    assert HPAV1Strategy().table_row(as_v1)[2] == "cpu: 30%/80%, <unknown>/1k"


def test_hpa_v1_storage_and_validation():
    v1 = HPAV1Strategy()
    assert v1.preferred is False and v1.storage_prefix() == HPAV2Strategy().storage_prefix()
    obj, errs = create(v1, {"metadata": {"name": "h"}, "spec": {
        "scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 3,
        "targetCPUUtilizationPercentage": 50}})
    assert errs == [] and obj["status"] == {"currentReplicas": 0, "desiredReplicas": 0}
    stored = v1.to_storage(obj)
    assert stored["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 50
    assert v1.from_storage(stored)["spec"]["targetCPUUtilizationPercentage"] == 50
    _, errs = create(v1, {"metadata": {"name": "h"}, "spec": {"scaleTargetRef": {"kind": "D"},
                                                               "minReplicas": 4, "maxReplicas": 3}})
    assert messages(errs) == ["spec.scaleTargetRef.name: Required value",
                              "spec.maxReplicas: Invalid value: 3: must be greater than or equal "
                              "to `minReplicas`"]
    assert registry().groups()["autoscaling"] == ["v2", "v1"]


def test_priorityclass():
    s = PriorityClassStrategy()
    obj, errs = create(s, {"metadata": {"name": "high"}, "value": 1000, "globalDefault": True})
    assert errs == [] and obj["preemptionPolicy"] == "PreemptLowerPriority"
    assert column_names(s) == ["Name", "Value", "Global-Default", "Age", "PreemptionPolicy"]
    row = s.table_row(obj)
    assert row[:3] == ["high", 1000, True] and row[4] == "PreemptLowerPriority"
    msgs = messages(create(s, {"metadata": {"name": "system-x"}, "value": 2_000_000_000})[1])
    assert msgs == ['metadata.name: Invalid value: "system-x": priority class names with '
                    "'system-' prefix are reserved",
                    "value: Forbidden: maximum allowed value of a user defined priority is "
                    "1000000000"]
    assert messages(create(s, {"metadata": {"name": "x"}})[1]) == ["value: Required value"]
    assert messages(update(s, {**obj, "value": 5}, obj)[1]) == [
        "value: Forbidden: may not be changed in an update."]


CSR_PEM = None


def _csr_request() -> str:
    import base64

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alice")])).sign(key, hashes.SHA256())
    return base64.b64encode(csr.public_bytes(serialization.Encoding.PEM)).decode()


def test_csr_validation_status_and_table():
    s = CertificateSigningRequestStrategy()
    csr = {"metadata": {"name": "alice"}, "spec": {
        "request": _csr_request(), "signerName": "kubernetes.io/kube-apiserver-client",
        "usages": ["client auth"], "expirationSeconds": 86400}}
    obj, errs = create(s, csr)
    assert errs == [] and obj["status"] == {}
    obj["spec"]["username"] = "admin"
    assert column_names(s) == ["Name", "Age", "SignerName", "Requestor", "RequestedDuration",
                               "Condition"]
    row = s.table_row(obj)
    assert row[2:] == ["kubernetes.io/kube-apiserver-client", "admin", "24h", "Pending"]
    approved = {**obj, "status": {"conditions": [{"type": "Approved", "reason": "ok"}]}}
    s.prepare_for_approval_update(approved, obj)
    assert approved["status"]["conditions"][0]["status"] == "True"
    approved["status"]["certificate"] = "Y2VydA=="
    assert s.table_row(approved)[5] == "Approved,Issued"
    assert s.field_labels(obj)["spec.signerName"] == "kubernetes.io/kube-apiserver-client"
    bad = {"metadata": {"name": "b"}, "spec": {"request": "bm90IGEgY3Ny", "signerName": "nope",
                                               "usages": ["flying"]}}
    fields = [e.field for e in create(s, bad)[1]]
    assert fields == ["spec.request", "spec.signerName", "spec.usages[0]"]


def test_self_subject_review_and_access_reviews():
    user = {"username": "alice", "groups": ["dev", "system:authenticated"], "uid": "", "extra": {}}
    out = asyncio.run(SelfSubjectReviewStrategy().handle_create(
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}, user))
    assert out["status"] == {"userInfo": {"username": "alice",
                                          "groups": ["dev", "system:authenticated"]}}
    ssar = SelfSubjectAccessReviewStrategy()
    review = {"spec": {"resourceAttributes": {"verb": "get", "resource": "pods"}}}
    assert asyncio.run(ssar.handle_create(review, user))["status"]["allowed"] is False
    admin = {**user, "groups": ["system:masters"]}
    answer = asyncio.run(ssar.handle_create(review, admin))
    assert answer["status"]["allowed"] is True and answer["status"]["reason"]
    with pytest.raises(StatusError) as e:
        asyncio.run(ssar.handle_create({"spec": {}}, admin))
    assert e.value.code == 422
    sar = SubjectAccessReviewStrategy()
    res = asyncio.run(sar.handle_create({"spec": {"groups": ["system:masters"],
                                                  "nonResourceAttributes": {"path": "/x",
                                                                            "verb": "get"}}}, user))
    assert res["status"]["allowed"] is True
    for s in (ssar, sar, SelfSubjectReviewStrategy()):
        assert s.verbs == ("create",) and s.virtual and not s.namespaced


def test_registry_has_every_group_resource():
    reg = registry()
    want = {("apps", "deployments"), ("apps", "controllerrevisions"), ("batch", "cronjobs"),
            ("networking.k8s.io", "ingressclasses"), ("rbac.authorization.k8s.io", "roles"),
            ("storage.k8s.io", "csinodes"), ("coordination.k8s.io", "leases"),
            ("discovery.k8s.io", "endpointslices"), ("events.k8s.io", "events"),
            ("policy", "poddisruptionbudgets"), ("scheduling.k8s.io", "priorityclasses"),
            ("certificates.k8s.io", "certificatesigningrequests"),
            ("authentication.k8s.io", "selfsubjectreviews"),
            ("authorization.k8s.io", "subjectaccessreviews")}
    have = {(s.group, s.plural) for s in reg.strategies}
    assert want <= have
    for s in reg.strategies:
        if s.group and not getattr(s, "virtual", False):
            if s.kind != "Event":  # events.k8s.io borrows core's columns
                assert len(s.columns) >= 2 and s.columns[0].name == "Name"
                assert len(s.table_row({"metadata": {"name": "x"}})) == len(s.columns), s.kind
