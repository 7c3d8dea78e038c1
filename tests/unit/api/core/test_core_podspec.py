"""Pod spec defaulting/validation shared with the workload groups."""
import copy

from pybernetes.api import podspec

from core_flow import messages

LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
             "'-', and must start and end with an alphanumeric character (e.g. 'my-name',  or "
             "'123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")


def defaulted(spec: dict) -> dict:
    spec = copy.deepcopy(spec)
    podspec.default_pod_spec(spec)
    return spec


def test_template_spec_defaults_match_a_v133_deployment_template():
    spec = defaulted({"containers": [{"name": "web", "image": "nginx:1.27",
                                      "ports": [{"containerPort": 80}]}]})
    assert spec == {
        "containers": [{"name": "web", "image": "nginx:1.27", "imagePullPolicy": "IfNotPresent",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}], "resources": {},
                        "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File"}],
        "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "schedulerName": "default-scheduler",
        "securityContext": {}, "terminationGracePeriodSeconds": 30}
    # pod-only defaults never reach templates (upstream issue 69445)
    assert "enableServiceLinks" not in spec


def test_pull_policy_follows_the_tag():
    for image, policy in (("nginx", "Always"), ("nginx:latest", "Always"),
                          ("reg:5000/app", "Always"), ("reg:5000/app:v1", "IfNotPresent"),
                          ("busybox@sha256:" + "a" * 64, "IfNotPresent")):
        assert podspec.default_pull_policy(image) == policy, image


def test_probe_volume_and_env_defaults():
    spec = defaulted({
        "containers": [{"name": "c", "image": "i:1",
                        "readinessProbe": {"httpGet": {"port": 8080}},
                        "livenessProbe": {"grpc": {"port": 9000}, "periodSeconds": 5},
                        "env": [{"name": "NODE", "valueFrom": {"fieldRef": {
                            "fieldPath": "spec.nodeName"}}}]}],
        "volumes": [{"name": "scratch"}, {"name": "cfg", "configMap": {"name": "c"}},
                    {"name": "sec", "secret": {"secretName": "s"}},
                    {"name": "host", "hostPath": {"path": "/tmp"}}]})
    c = spec["containers"][0]
    assert c["readinessProbe"] == {"httpGet": {"port": 8080, "path": "/", "scheme": "HTTP"},
                                   "timeoutSeconds": 1, "periodSeconds": 10,
                                   "successThreshold": 1, "failureThreshold": 3}
    assert c["livenessProbe"]["periodSeconds"] == 5
    assert c["livenessProbe"]["grpc"] == {"port": 9000, "service": ""}
    assert c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"] == "v1"
    vols = {v["name"]: v for v in spec["volumes"]}
    assert vols["scratch"] == {"name": "scratch", "emptyDir": {}}
    assert vols["cfg"]["configMap"]["defaultMode"] == 420
    assert vols["sec"]["secret"]["defaultMode"] == 420
    assert vols["host"]["hostPath"] == {"path": "/tmp", "type": ""}


def test_pod_only_defaults_copy_limits_and_host_ports():
    spec = defaulted({"hostNetwork": True, "containers": [{
        "name": "c", "image": "i:1", "ports": [{"containerPort": 53}],
        "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}}]})
    podspec.default_pod_only(spec)
    c = spec["containers"][0]
    assert c["resources"]["requests"] == {"cpu": "500m", "memory": "1Gi"}
    assert c["ports"][0]["hostPort"] == 53
    assert spec["enableServiceLinks"] is True


def test_container_errors_use_upstream_paths_and_words():
    spec = defaulted({"containers": [
        {"name": "Web_1", "image": "x:1"},
        {"name": "dup", "image": ""},
        {"name": "dup", "image": "x:1", "imagePullPolicy": "Sometimes",
         "ports": [{"containerPort": 0}, {"containerPort": 70000, "protocol": "HTTP",
                                          "name": "web"}, {"containerPort": 80, "name": "web"}],
         "env": [{"name": ""}, {"name": "1=bad"}]}]})
    msgs = messages(podspec.validate_pod_spec(spec, "spec"))
    assert f'spec.containers[0].name: Invalid value: "Web_1": {LABEL_MSG}' in msgs
    assert "spec.containers[1].image: Required value" in msgs
    assert 'spec.containers[2].name: Duplicate value: "dup"' in msgs
    assert ('spec.containers[2].imagePullPolicy: Unsupported value: "Sometimes": supported '
            'values: "Always", "IfNotPresent", "Never"') in msgs
    assert "spec.containers[2].ports[0].containerPort: Required value" in msgs
    assert ("spec.containers[2].ports[1].containerPort: Invalid value: 70000: must be between 1 "
            "and 65535, inclusive") in msgs
    assert ('spec.containers[2].ports[1].protocol: Unsupported value: "HTTP": supported values: '
            '"SCTP", "TCP", "UDP"') in msgs
    assert 'spec.containers[2].ports[2].name: Duplicate value: "web"' in msgs
    assert "spec.containers[2].env[0].name: Required value" in msgs
    assert any(m.startswith('spec.containers[2].env[1].name: Invalid value: "1=bad"') for m in msgs)


def test_spec_level_errors():
    msgs = messages(podspec.validate_pod_spec(defaulted({"containers": []}), "spec"))
    assert msgs == ["spec.containers: Required value"]
    spec = defaulted({"restartPolicy": "Sometimes", "containers": [{
        "name": "c", "image": "i:1", "volumeMounts": [{"name": "missing", "mountPath": "/x"}],
        "livenessProbe": {"successThreshold": 2, "exec": {"command": ["true"]}},
        "readinessProbe": {}}],
        "volumes": [{"name": "v", "emptyDir": {}, "hostPath": {"path": "/"}}],
        "tolerations": [{"operator": "Equal", "value": "x"}]})
    msgs = messages(podspec.validate_pod_spec(spec, "spec"))
    assert ('spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", '
            '"Never", "OnFailure"') in msgs
    assert 'spec.containers[0].volumeMounts[0].name: Not found: "missing"' in msgs
    assert "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1" in msgs
    assert "spec.containers[0].readinessProbe: Required value: must specify a handler type" in msgs
    assert any(m.startswith("spec.volumes[0].") and
               m.endswith("Forbidden: may not specify more than 1 volume type") for m in msgs)
    assert ('spec.tolerations[0].operator: Invalid value: "Equal": operator must be Exists when '
            '`key` is empty, which means "match all values and all keys"') in msgs


def test_resource_requests_may_not_exceed_limits():
    spec = defaulted({"containers": [{"name": "c", "image": "i:1", "resources": {
        "limits": {"cpu": "500m"}, "requests": {"cpu": "1", "memory": "-1"}}}]})
    msgs = messages(podspec.validate_pod_spec(spec, "spec"))
    assert ('spec.containers[0].resources.requests[cpu]: Invalid value: "1": must be less than '
            'or equal to cpu limit of 500m') in msgs
    assert ('spec.containers[0].resources.requests[memory]: Invalid value: "-1": must be greater '
            'than or equal to 0') in msgs


def test_template_validation_paths():
    tpl = {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c"}]}}
    podspec.default_pod_template(tpl)
    assert messages(podspec.validate_pod_template(tpl, "spec.template")) == [
        "spec.template.spec.containers[0].image: Required value"]
    assert podspec.validate_pod_template_spec is podspec.validate_pod_template


def test_qos_classes():
    def qos(resources):
        return podspec.pod_qos_class({"containers": [{"name": "c", "resources": resources}]})
    assert qos({}) == "BestEffort"
    assert qos({"limits": {"cpu": "1", "memory": "1Gi"}}) == "Guaranteed"
    assert qos({"limits": {"cpu": "1", "memory": "1Gi"},
                "requests": {"cpu": "1000m", "memory": "1024Mi"}}) == "Guaranteed"
    assert qos({"requests": {"cpu": "100m"}}) == "Burstable"
    assert qos({"limits": {"cpu": "1"}}) == "Burstable"


def test_dns_none_and_init_container_probes():
    spec = defaulted({"dnsPolicy": "None", "containers": [{"name": "c", "image": "i:1"}],
                      "initContainers": [{"name": "i", "image": "i:1",
                                          "readinessProbe": {"exec": {"command": ["true"]}}},
                                         {"name": "side", "image": "i:1", "restartPolicy": "Always",
                                          "readinessProbe": {"exec": {"command": ["true"]}}}]})
    assert messages(podspec.validate_pod_spec(spec, "spec")) == [
        "spec.initContainers[0].readinessProbe: Forbidden: may not be set for init containers "
        "without restartPolicy=Always",
        "spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None"]


def test_resource_quantities_are_stored_canonical():
    spec = defaulted({"containers": [{"name": "c", "image": "i:1", "resources": {
        "limits": {"cpu": "0.5", "memory": "1024Mi"},
        "requests": {"cpu": "0.0001", "memory": "1.5Gi", "example.com/dev": "1000"}}}]})
    res = spec["containers"][0]["resources"]
    assert res["limits"] == {"cpu": "500m", "memory": "1Gi"}
    assert res["requests"] == {"cpu": "1m", "memory": "1536Mi", "example.com/dev": "1k"}


def test_grpc_probe_port_must_be_a_port_number():
    spec = defaulted({"containers": [{"name": "c", "image": "i:1",
                                      "livenessProbe": {"grpc": {"port": 0}},
                                      "startupProbe": {"grpc": {"port": 70000, "service": "s"}},
                                      "readinessProbe": {"grpc": {"port": 9000}}}]})
    assert messages(podspec.validate_pod_spec(spec, "spec")) == [
        "spec.containers[0].livenessProbe.grpc.port: Invalid value: 0: must be between 1 and "
        "65535, inclusive",
        "spec.containers[0].startupProbe.grpc.port: Invalid value: 70000: must be between 1 and "
        "65535, inclusive"]
