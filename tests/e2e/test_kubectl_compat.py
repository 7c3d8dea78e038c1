"""kubectl compatibility sweep: a broad set of real kubectl commands, per installed version.

One server for the module, one namespace per kubectl version. Nothing here needs running
pods (no controller manager, scheduler or kubelet runs): the API server alone must answer
as a real v1.33 cluster would. Add a version to VERSIONS to sweep it too.
"""
from __future__ import annotations

import base64
import datetime
import json
import textwrap

import pytest

from ..conftest import Cluster, Kubectl, kubectl_binary

SWEPT = ("1.27", "1.30", "1.33")
VERSIONS = [v for v in SWEPT if kubectl_binary(v)]
pytestmark = [pytest.mark.kubectl, pytest.mark.skipif(not VERSIONS, reason="no kubectl")]


class K(Kubectl):
    """kubectl of one version, bound to its own namespace; `minor` gates newer commands."""

    ns: str = ""
    minor: int = 0

    def header(self, *args: str) -> list[str]:
        """The header line of a table, split on runs of 2+ spaces (names may hold one)."""
        first = self(*args).split("\n", 1)[0]
        return [c.strip() for c in first.split("  ") if c.strip()]


@pytest.fixture(scope="module", params=VERSIONS)
def k(request, cluster: Cluster) -> K:
    ns = "compat-" + request.param.replace(".", "-")
    path = str(cluster.data_dir / f"{ns}.kubeconfig")
    with open(cluster.kubeconfig) as src, open(path, "w") as dst:
        dst.write(src.read())
    kc = K(kubectl_binary(request.param), path)
    kc.ns, kc.minor = ns, int(request.param.split(".")[1])
    assert f"namespace/{ns} created" in kc("create", "namespace", ns)
    kc("config", "set-context", "--current", f"--namespace={ns}")
    return kc


def _self_signed(cn: str) -> tuple[str, str]:
    """A throwaway certificate and key (PEM) for `create secret tls`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


def _csr_pem(cn: str) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def test_create_helpers(k: K, tmp_path) -> None:
    def created(*args: str) -> str:
        out = k("create", *args)
        assert " created" in out, out
        return out

    created("deployment", "web", "--image=nginx:1.27", "--replicas=3")
    assert k("get", "deploy", "web", "-o", "jsonpath={.spec.replicas}") == "3"
    created("job", "once", "--image=busybox")
    created("cronjob", "tick", "--image=busybox", "--schedule=*/5 * * * *")
    created("service", "clusterip", "svc-c", "--tcp=80:8080")
    created("service", "nodeport", "svc-n", "--tcp=80:8080")
    created("service", "loadbalancer", "svc-lb", "--tcp=443:8443")
    created("service", "externalname", "svc-x", "--external-name=example.com")
    created("role", "reader", "--verb=get,list", "--resource=pods")
    created("clusterrole", f"reader-{k.ns}", "--verb=get", "--resource=nodes")
    created("rolebinding", "reader-b", "--role=reader", "--user=alice")
    created("clusterrolebinding", f"reader-{k.ns}", f"--clusterrole=reader-{k.ns}",
            "--group=ops")
    created("quota", "q", "--hard=pods=10,requests.cpu=2")
    created("pdb", "web-pdb", "--selector=app=web", "--min-available=1")
    created("priorityclass", f"high-{k.ns}", "--value=1000", "--description=hi")
    created("ingress", "ing", "--rule=foo.example.com/bar=svc-c:80")
    created("secret", "generic", "gen", "--from-literal=a=b")
    cert, key = _self_signed("foo.example.com")
    (tmp_path / "tls.crt").write_text(cert)
    (tmp_path / "tls.key").write_text(key)
    created("secret", "tls", "tls", f"--cert={tmp_path / 'tls.crt'}",
            f"--key={tmp_path / 'tls.key'}")
    created("secret", "docker-registry", "reg", "--docker-server=r.example.com",
            "--docker-username=u", "--docker-password=p")
    created("serviceaccount", "robot")
    (tmp_path / "game.properties").write_text("lives=3\n")
    created("configmap", "from-file", f"--from-file={tmp_path / 'game.properties'}")
    created("namespace", f"{k.ns}-extra")

    assert k("get", "secret", "tls", "-o", "jsonpath={.type}") == "kubernetes.io/tls"
    assert k("get", "secret", "reg", "-o", "jsonpath={.type}") == "kubernetes.io/dockerconfigjson"
    cm = json.loads(k("get", "cm", "from-file", "-o", "json"))
    assert cm["data"] == {"game.properties": "lives=3\n"}
    svc_n = json.loads(k("get", "svc", "svc-n", "-o", "json"))
    assert 30000 <= svc_n["spec"]["ports"][0]["nodePort"] <= 32767
    assert k("get", "svc", "svc-x", "-o", "jsonpath={.spec.type}") == "ExternalName"
    ing = json.loads(k("get", "ingress", "ing", "-o", "json"))
    path = ing["spec"]["rules"][0]["http"]["paths"][0]
    assert path["path"] == "/bar" and path["pathType"] == "Exact"
    assert path["backend"]["service"] == {"name": "svc-c", "port": {"number": 80}}


HEADERS = {
    "deployments": ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
    "jobs": ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"],
    "cronjobs": ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "AGE"],
    "services": ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"],
    "roles": ["NAME", "CREATED AT"],
    "rolebindings": ["NAME", "ROLE", "AGE"],
    "resourcequotas": ["NAME", "REQUEST", "LIMIT", "AGE"],  # v1.33 moved AGE last
    "poddisruptionbudgets": ["NAME", "MIN AVAILABLE", "MAX UNAVAILABLE", "ALLOWED DISRUPTIONS",
                             "AGE"],
    "priorityclasses": ["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"],
    "ingresses": ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"],
    "secrets": ["NAME", "TYPE", "DATA", "AGE"],
    "serviceaccounts": ["NAME", "SECRETS", "AGE"],
    "configmaps": ["NAME", "DATA", "AGE"],
    "namespaces": ["NAME", "STATUS", "AGE"],
}


def test_table_headers(k: K) -> None:
    wrong = {r: k.header("get", r) for r, want in HEADERS.items() if k.header("get", r) != want}
    assert wrong == {}
    row = k("get", "ingress", "ing").split("\n")[1].split()
    assert row[:4] == ["ing", "<none>", "foo.example.com", "80"]


def test_get_variants(k: K) -> None:
    everything = k("get", "all")
    for name in ("deployment.apps/web", "service/svc-c", "job.batch/once", "cronjob.batch/tick"):
        assert name in everything
    k("get", "events")
    across = k("get", "deployments", "-A")
    assert across.split("\n")[0].split()[0] == "NAMESPACE" and k.ns in across
    names = [line.split()[0] for line in
             k("get", "svc", "--sort-by=.metadata.name").strip().split("\n")[1:]]
    assert names == sorted(names) and "svc-c" in names
    k("label", "deploy", "web", "app=web", "--overwrite")
    with_l = k("get", "deploy", "-L", "app").split("\n")
    assert with_l[0].split()[-1] == "APP" and with_l[1].split()[-1] == "web"
    shown = k("get", "deploy", "--show-labels").split("\n")
    assert shown[0].split()[-1] == "LABELS" and "app=web" in shown[1]
    as_yaml = k("get", "cm", "-o", "yaml")
    assert as_yaml.startswith("apiVersion: v1\nitems:") and "kind: List" in as_yaml
    wide = k("api-resources", "-o", "wide")
    assert wide.split("\n")[0].split() == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED",
                                           "KIND", "VERBS", "CATEGORIES"]
    verbs = "create delete deletecollection get list patch update watch"
    assert f"[{verbs}]" in wide or verbs.replace(" ", ",") in wide  # newer kubectl: commas
    cluster_scoped = k("api-resources", "--namespaced=false", "-o", "name").split()
    assert "nodes" in cluster_scoped and "namespaces" in cluster_scoped
    assert "pods" not in cluster_scoped


OBJECTS = """\
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 1
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, image: postgres:16}]}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec: {containers: [{name: a, image: busybox}]}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: rs}
spec:
  replicas: 0
  selector: {matchLabels: {app: rs}}
  template:
    metadata: {labels: {app: rs}}
    spec: {containers: [{name: a, image: busybox}]}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: LimitRange
metadata: {name: lr}
spec:
  limits:
  - type: Container
    default: {cpu: 500m}
    defaultRequest: {cpu: 100m}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web-hpa}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 4
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 80}}
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: lock}
spec: {holderIdentity: me, leaseDurationSeconds: 15}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: svc-c-abc
  labels: {kubernetes.io/service-name: svc-c}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
- addresses: [10.1.2.3]
  conditions: {ready: true}
"""

CLUSTER_OBJECTS = """\
apiVersion: v1
kind: Node
metadata:
  name: node-{ns}
  labels: {{kubernetes.io/hostname: node-{ns}}}
spec: {{}}
status:
  capacity: {{cpu: "4", memory: 8Gi, pods: "110"}}
  allocatable: {{cpu: "4", memory: 8Gi, pods: "110"}}
---
apiVersion: v1
kind: PersistentVolume
metadata: {{name: pv-{ns}}}
spec:
  capacity: {{storage: 1Gi}}
  accessModes: [ReadWriteOnce]
  hostPath: {{path: /tmp/pv}}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {{name: sc-{ns}}}
provisioner: example.com/none
"""


def test_describe_everything(k: K) -> None:
    out = k("create", "-f", "-", input=OBJECTS)
    assert out.count(" created") == OBJECTS.count("\n---\n") + 1
    k("create", "-f", "-", input=CLUSTER_OBJECTS.format(ns=k.ns))
    targets = [
        ("namespace", k.ns), ("node", f"node-{k.ns}"), ("service", "svc-c"),
        ("service", "svc-n"), ("configmap", "from-file"), ("secret", "tls"),
        ("deployment", "web"), ("replicaset", "rs"), ("statefulset", "db"),
        ("daemonset", "agent"), ("job", "once"), ("cronjob", "tick"), ("ingress", "ing"),
        ("pvc", "data"), ("pv", f"pv-{k.ns}"), ("role", "reader"), ("rolebinding", "reader-b"),
        ("clusterrole", f"reader-{k.ns}"), ("serviceaccount", "robot"), ("quota", "q"),
        ("limitrange", "lr"), ("pdb", "web-pdb"), ("hpa", "web-hpa"),
        ("priorityclass", f"high-{k.ns}"), ("storageclass", f"sc-{k.ns}"), ("lease", "lock"),
        ("endpointslice", "svc-c-abc"),
    ]
    for kind, name in targets:
        p = k.run("describe", kind, name, check=False)
        assert p.returncode == 0 and p.stderr == "", f"describe {kind}: {p.stderr}"
        assert "Name:" in p.stdout and name in p.stdout, (kind, p.stdout)
    # every kind, all at once, also works (describe without a name lists)
    for kind in ("deployments", "services", "pvc", "endpointslices"):
        k("describe", kind)


MORE_HEADERS = {
    "replicasets": ["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
    "statefulsets": ["NAME", "READY", "AGE"],
    "daemonsets": ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE",
                   "NODE SELECTOR", "AGE"],
    "pvc": ["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "STORAGECLASS",
            "VOLUMEATTRIBUTESCLASS", "AGE"],
    "limitranges": ["NAME", "CREATED AT"],
    "hpa": ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"],
    "leases": ["NAME", "HOLDER", "AGE"],
    "endpointslices": ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"],
    "nodes": ["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
    "storageclasses": ["NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE",
                       "ALLOWVOLUMEEXPANSION", "AGE"],
    "pv": ["NAME", "CAPACITY", "ACCESS MODES", "RECLAIM POLICY", "STATUS", "CLAIM",
           "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "REASON", "AGE"],
}


def test_more_table_headers(k: K) -> None:
    wrong = {r: k.header("get", r) for r, want in MORE_HEADERS.items()
             if k.header("get", r) != want}
    assert wrong == {}


def test_workload_verbs(k: K) -> None:
    assert "deployment.apps/web labeled" in k("label", "deploy", "web", "tier=a")
    k("label", "deploy", "web", "tier=b", "--overwrite")
    assert k("get", "deploy", "web", "-o", "jsonpath={.metadata.labels.tier}") == "b"
    k("label", "deploy", "web", "tier-")
    assert "tier" not in json.loads(k("get", "deploy", "web", "-o", "json"))["metadata"]["labels"]
    k("annotate", "deploy", "web", "note=1")
    k("annotate", "deploy", "web", "note=2", "--overwrite")
    assert k("get", "deploy", "web", "-o", "jsonpath={.metadata.annotations.note}") == "2"
    assert "image updated" in k("set", "image", "deployment/web", "nginx=nginx:1.28")
    assert "env updated" in k("set", "env", "deployment/web", "MODE=prod")
    assert "resource requirements updated" in k("set", "resources", "deployment/web",
                                                "--limits=cpu=200m,memory=256Mi")
    c = json.loads(k("get", "deploy", "web", "-o", "json"))["spec"]["template"]["spec"]
    c = c["containers"][0]
    assert c["image"] == "nginx:1.28" and {"name": "MODE", "value": "prod"} in c["env"]
    assert c["resources"]["limits"] == {"cpu": "200m", "memory": "256Mi"}

    assert "service/web exposed" in k("expose", "deployment", "web", "--port=80",
                                      "--target-port=8000")
    svc = json.loads(k("get", "svc", "web", "-o", "json"))
    assert svc["spec"]["selector"] == {"app": "web"}
    assert svc["spec"]["ports"][0]["targetPort"] == 8000
    assert "horizontalpodautoscaler.autoscaling/web autoscaled" in k(
        "autoscale", "deployment", "web", "--min=2", "--max=5", "--cpu-percent=70")
    hpa = json.loads(k("get", "hpa", "web", "-o", "json"))
    assert hpa["spec"]["maxReplicas"] == 5 and hpa["spec"]["minReplicas"] == 2

    assert "paused" in k("rollout", "pause", "deployment/web")
    assert k("get", "deploy", "web", "-o", "jsonpath={.spec.paused}") == "true"
    assert "resumed" in k("rollout", "resume", "deployment/web")
    assert "restarted" in k("rollout", "restart", "deployment/web")
    ann = json.loads(k("get", "deploy", "web", "-o", "json"))["spec"]["template"]["metadata"]
    assert "kubectl.kubernetes.io/restartedAt" in ann["annotations"]
    assert "deployment.apps/web" in k("rollout", "history", "deployment/web")


def test_dry_run_diff_wait(k: K, tmp_path) -> None:
    out = k("run", "ghost", "--image=busybox", "--dry-run=server")
    assert "pod/ghost created (server dry run)" in out
    assert k.run("get", "pod", "ghost", check=False).returncode != 0
    as_yaml = k("create", "configmap", "dry", "--from-literal=a=b", "--dry-run=server",
                "-o", "yaml")
    assert "uid:" in as_yaml and "creationTimestamp:" in as_yaml and "name: dry" in as_yaml
    assert k.run("get", "cm", "dry", check=False).returncode != 0

    manifest = tmp_path / "cm.yaml"
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: diffme\n"
                        f"  namespace: {k.ns}\ndata:\n  a: \"2\"\n")
    k("apply", "-f", "-", input=manifest.read_text().replace('"2"', '"1"'))
    p = k.run("diff", "-f", str(manifest), check=False)
    assert p.returncode == 1, p.stderr
    assert '-  a: "1"' in p.stdout and '+  a: "2"' in p.stdout
    same = tmp_path / "same.yaml"
    same.write_text(manifest.read_text().replace('"2"', '"1"'))
    assert k.run("diff", "-f", str(same), check=False).returncode == 0

    k("create", "configmap", "waited", "--from-literal=phase=done")
    out = k("wait", "cm/waited", "--for=jsonpath={.data.phase}=done", "--timeout=10s")
    assert "condition met" in out
    k("delete", "cm", "waited", "--wait=false")
    k("wait", "cm/waited", "--for=delete", "--timeout=10s")


def test_auth(k: K) -> None:
    assert k("auth", "can-i", "create", "pods").strip() == "yes"
    assert k("auth", "can-i", "'*'", "'*'", "--all-namespaces").strip() in ("yes", "no")
    if k.minor >= 28:
        out = k("auth", "whoami")
        assert "ATTRIBUTE" in out and "Username" in out
        who = json.loads(k("auth", "whoami", "-o", "json"))
        assert who["kind"] == "SelfSubjectReview" and who["status"]["userInfo"]["username"]


def test_node_verbs(k: K, cluster: Cluster) -> None:
    node = f"node-{k.ns}"
    assert f"node/{node} cordoned" in k("cordon", node)
    assert k("get", "node", node, "-o", "jsonpath={.spec.unschedulable}") == "true"
    assert "SchedulingDisabled" in k("get", "node", node)
    assert f"node/{node} uncordoned" in k("uncordon", node)
    assert f"node/{node} tainted" in k("taint", "nodes", node, "gpu=yes:NoSchedule")
    taints = json.loads(k("get", "node", node, "-o", "json"))["spec"]["taints"]
    assert {"key": "gpu", "value": "yes", "effect": "NoSchedule"} in taints
    k("taint", "nodes", node, "gpu:NoSchedule-")
    k("patch", "node", node, "--subresource=status", "--type=merge", "-p",
      '{"status":{"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady",'
      '"message":"ok","lastHeartbeatTime":null,"lastTransitionTime":null}]}}')
    assert k("get", "node", node).split("\n")[1].split()[1] == "Ready"

    k("scale", "deploy", "web", "--replicas=2")
    scale = json.loads(k("get", "deploy", "web", "--subresource=scale", "-o", "json"))
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 2
    # the Scale's own table, as upstream prints it (a Table answered for the subresource)
    table = k("get", "deploy", "web", "--subresource=scale").split("\n")
    assert table[0].split() == ["NAME", "DESIRED", "AVAILABLE", "AGE"]
    assert table[1].split()[:3] == ["web", "2", "0"]

    k("run", "bound", "--image=busybox")
    status, body = cluster.json("POST", f"/api/v1/namespaces/{k.ns}/pods/bound/binding", {
        "apiVersion": "v1", "kind": "Binding", "metadata": {"name": "bound"},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node}})
    assert status == 201, body
    assert k("get", "pod", "bound", "-o", "jsonpath={.spec.nodeName}") == node
    p = k.run("delete", "pod", "bound", "--grace-period=0", "--force", check=False)
    assert p.returncode == 0 and 'pod "bound" force deleted' in p.stdout, p.stderr
    assert k.run("get", "pod", "bound", check=False).returncode != 0


def test_certificate_approve(k: K) -> None:
    name = f"csr-{k.ns}"
    req = base64.b64encode(_csr_pem("robot").encode()).decode()
    k("create", "-f", "-", input=json.dumps({
        "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {"request": req, "signerName": "example.com/robot", "usages": ["client auth"]}}))
    assert f"certificatesigningrequest.certificates.k8s.io/{name} approved" in k(
        "certificate", "approve", name)
    row = k("get", "csr", name).split("\n")
    assert row[0].split()[:4] == ["NAME", "AGE", "SIGNERNAME", "REQUESTOR"]
    assert "Approved" in row[1]


def test_delete_and_replace_variants(k: K) -> None:
    k("create", "deployment", "orph", "--image=busybox")
    # no garbage collector runs here: the owner keeps the "orphan" finalizer, marked deleted
    out = k("delete", "deploy", "orph", "--cascade=orphan", "--wait=false")
    assert 'deployment.apps "orph" deleted' in out
    meta = json.loads(k("get", "deploy", "orph", "-o", "json"))["metadata"]
    assert meta["finalizers"] == ["orphan"] and meta["deletionTimestamp"]
    k("create", "configmap", "rep", "--from-literal=a=1")
    cm = json.loads(k("get", "cm", "rep", "-o", "json"))
    old_uid = cm["metadata"]["uid"]
    cm["data"]["a"] = "2"
    out = k("replace", "--force", "-f", "-", input=json.dumps(cm))
    assert "configmap/rep replaced" in out or ("deleted" in out and "replaced" in out)
    again = json.loads(k("get", "cm", "rep", "-o", "json"))
    assert again["data"]["a"] == "2" and again["metadata"]["uid"] != old_uid


def test_apply_kustomize_and_events(k: K, tmp_path) -> None:
    (tmp_path / "cm.yaml").write_text(textwrap.dedent("""\
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: kcm
        data:
          x: "1"
        """))
    (tmp_path / "kustomization.yaml").write_text(
        f"namespace: {k.ns}\nnamePrefix: kz-\ncommonLabels:\n  via: kustomize\n"
        "resources:\n- cm.yaml\n")
    assert "configmap/kz-kcm created" in k("apply", "-k", str(tmp_path))
    assert k("get", "cm", "kz-kcm", "-o", "jsonpath={.metadata.labels.via}") == "kustomize"
    k("create", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": "ev1"},
        "involvedObject": {"kind": "ConfigMap", "name": "kz-kcm", "namespace": k.ns},
        "reason": "Tested", "message": "hello from the sweep", "type": "Normal",
        "count": 1, "source": {"component": "sweep"}}))
    events = k("get", "events")
    assert events.split("\n")[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT",
                                              "MESSAGE"]
    assert "hello from the sweep" in events
    out = k("events")
    assert "hello from the sweep" in out and "ConfigMap/kz-kcm" in out


WIDE_HEADERS = {
    "deployments": ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES",
                    "SELECTOR"],
    "jobs": ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE", "CONTAINERS", "IMAGES",
             "SELECTOR"],
    "services": ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", "SELECTOR"],
    "rolebindings": ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"],
    "statefulsets": ["NAME", "READY", "AGE", "CONTAINERS", "IMAGES"],
    "pvc": ["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "STORAGECLASS",
            "VOLUMEATTRIBUTESCLASS", "AGE", "VOLUMEMODE"],
}


def test_wide_tables_and_cells(k: K) -> None:
    wrong = {r: k.header("get", r, "-o", "wide") for r, want in WIDE_HEADERS.items()
             if k.header("get", r, "-o", "wide") != want}
    assert wrong == {}
    rows = {line.split()[0]: line.split() for line in k("get", "svc").strip().split("\n")[1:]}
    assert rows["svc-lb"][1:5] == ["LoadBalancer", rows["svc-lb"][2], "<pending>",
                                   rows["svc-lb"][4]]
    assert rows["svc-lb"][4].startswith("443:") and rows["svc-lb"][4].endswith("/TCP")
    assert rows["svc-x"][1:4] == ["ExternalName", "<none>", "example.com"]
    pc = k("get", "priorityclass", f"high-{k.ns}").split("\n")[1].split()
    assert pc[1:3] == ["1000", "false"] and pc[-1] == "PreemptLowerPriority"
    pdb = k("get", "pdb", "web-pdb").split("\n")[1].split()
    assert pdb[1:4] == ["1", "N/A", "0"]
    hpa = k("get", "hpa", "web-hpa").split("\n")[1]
    assert "Deployment/web" in hpa and "cpu: <unknown>/80%" in hpa
    lease = k("get", "lease", "lock").split("\n")[1].split()
    assert lease[1] == "me"
    eps = k("get", "endpointslice", "svc-c-abc").split("\n")[1].split()
    assert eps[1:4] == ["IPv4", "8080", "10.1.2.3"]
    rb = k("get", "rolebinding", "reader-b", "-o", "wide").split("\n")[1].split()
    assert rb[1] == "Role/reader" and "alice" in rb


def test_events_in_describe_and_field_selectors(k: K) -> None:
    uid = k("get", "deploy", "web", "-o", "jsonpath={.metadata.uid}")
    k("create", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": "web.scaled"},
        "involvedObject": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                           "namespace": k.ns, "uid": uid},
        "reason": "ScalingReplicaSet", "message": "Scaled up replica set web-abc to 3",
        "type": "Normal", "count": 2, "source": {"component": "deployment-controller"},
        "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:10:00Z"}))
    described = k("describe", "deployment", "web")
    tail = described.split("Events:", 1)[1]
    assert "ScalingReplicaSet" in tail and "(x2 over " in tail
    assert "deployment-controller" in tail and "Scaled up replica set web-abc to 3" in tail
    picked = k("get", "events", "--field-selector",
               "involvedObject.kind=Deployment,reason=ScalingReplicaSet", "-o", "name").split()
    assert picked == ["event/web.scaled"]
    assert k("get", "events", "--field-selector", "type=Warning", "-o", "name").strip() == ""
    new_api = k("get", "events.events.k8s.io", "-o", "name").split()
    assert "event.events.k8s.io/web.scaled" in new_api


def test_more_verbs(k: K, tmp_path) -> None:
    assert "serviceaccount updated" in k("set", "serviceaccount", "deployment", "web", "robot")
    assert k("get", "deploy", "web",
             "-o", "jsonpath={.spec.template.spec.serviceAccountName}") == "robot"
    assert "selector updated" in k("set", "selector", "svc", "svc-c", "app=other")
    assert k("get", "svc", "svc-c", "-o", "jsonpath={.spec.selector.app}") == "other"
    assert "subjects updated" in k("set", "subject", "rolebinding", "reader-b", "--user=bob")
    users = [s["name"] for s in
             json.loads(k("get", "rolebinding", "reader-b", "-o", "json"))["subjects"]]
    assert users == ["alice", "bob"]

    k("scale", "deploy", "web", "--replicas=3")
    assert "scaled" in k("scale", "deploy", "web", "--current-replicas=3", "--replicas=1")
    p = k.run("scale", "deploy", "web", "--current-replicas=3", "--replicas=2", check=False)
    assert p.returncode != 0 and "Expected replicas to be 3, was 1" in p.stderr

    node = f"node-{k.ns}"
    out = k("drain", node, "--ignore-daemonsets", "--timeout=20s")
    assert f"node/{node} drained" in out
    k("uncordon", node)

    other = f"{k.ns}-rbac"
    role = tmp_path / "role.yaml"
    role.write_text(f"apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\n"
                    f"metadata: {{name: rec, namespace: {other}}}\n"
                    "rules: [{apiGroups: [''], resources: [pods], verbs: [get]}]\n")
    p = k.run("auth", "reconcile", "-f", str(role))
    assert "role.rbac.authorization.k8s.io/rec reconciled" in p.stdout
    assert "reconciliation required create" in p.stderr  # the details go to stderr
    assert k("get", "ns", other, "-o", "name").strip() == f"namespace/{other}"  # made for it
    role.write_text(role.read_text().replace("[get]", "[get, list]"))
    assert "missing rules added" in k.run("auth", "reconcile", "-f", str(role)).stderr
    rules = json.loads(k("get", "role", "rec", "-n", other, "-o", "json"))["rules"]
    assert sorted(v for r in rules for v in r["verbs"]) == ["get", "list"]  # a rule added

    pruned = tmp_path / "prune"
    pruned.mkdir()
    doc = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {n}\n  labels: {{set: pr}}\n"
    (pruned / "a.yaml").write_text(doc.format(n="pr-a"))
    (pruned / "b.yaml").write_text(doc.format(n="pr-b"))
    k("apply", "-f", str(pruned), "-l", "set=pr")
    (pruned / "b.yaml").unlink()
    out = k("apply", "--prune", "-l", "set=pr", "--prune-allowlist=core/v1/ConfigMap"
            if k.minor >= 26 else "--prune-whitelist=core/v1/ConfigMap", "-f", str(pruned))
    assert "configmap/pr-b pruned" in out
    assert k("get", "cm", "-l", "set=pr", "-o", "name").split() == ["configmap/pr-a"]
