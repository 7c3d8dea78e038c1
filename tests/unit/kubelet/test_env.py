"""A container's environment: envFrom, env, valueFrom, $(VAR) expansion, service links."""
import base64

import pytest

from pybernetes.kubelet.env import (ConfigError, PodContext, container_env, dict_lookup, expand,
                                    field_ref_value, mapping, service_env)

CM = {"metadata": {"name": "settings"}, "data": {"MODE": "prod", "LEVEL": "3", "1bad": "x",
                                                 "also.bad key": "y"}}
SECRET = {"metadata": {"name": "creds"},
          "data": {"password": base64.b64encode(b"s3cret").decode(), "USER": "YWRtaW4="}}
LOOKUP = dict_lookup({("configmap", "shop", "settings"): CM, ("secret", "shop", "creds"): SECRET})
CTX = PodContext(pod_ips=["10.42.0.5", "fd00::5"], host_ips=["192.168.5.1"],
                 node_allocatable={"cpu": "4", "memory": "8Gi"})


def pod(container: dict, **spec) -> dict:
    return {"metadata": {"name": "web", "namespace": "shop", "uid": "u-9",
                         "labels": {"app": "web", "tier": "front"},
                         "annotations": {"note": 'say "hi"'}},
            "spec": {"nodeName": "node-1", "serviceAccountName": "builder",
                     "containers": [container], **spec}}


def test_expansion_rules():
    get = mapping({"A": "1", "B": "two"})
    assert expand("$(A)-$(B)", get) == "1-two"
    assert expand("$$(A) $(MISSING) $(A", get) == "$(A) $(MISSING) $(A"
    assert expand("cost $5 and $$ and $", get) == "cost $5 and $ and $"


async def test_env_from_then_env_later_wins_and_invalid_keys_are_reported():
    c = {"name": "app",
         "envFrom": [{"configMapRef": {"name": "settings"}},
                     {"secretRef": {"name": "creds"}, "prefix": "DB_"}],
         "env": [{"name": "MODE", "value": "dev-$(LEVEL)"},
                 {"name": "URL", "value": "postgres://$(DB_USER)@db/$(NOPE)"},
                 {"name": "ESCAPED", "value": "$$(MODE)"}]}
    env, events = await container_env(pod(c), c, LOOKUP, ctx=CTX)
    d = dict(env)
    assert d["MODE"] == "dev-3" and d["DB_password"] == "s3cret" and d["DB_USER"] == "admin"
    assert d["URL"] == "postgres://admin@db/$(NOPE)" and d["ESCAPED"] == "$(MODE)"
    assert "1bad" not in d
    names = [k for k, _ in env]
    assert names.index("MODE") < names.index("DB_USER") < names.index("URL")
    assert [(e.reason, e.message) for e in events] == [(
        "InvalidEnvironmentVariableNames",
        "Keys [1bad, also.bad key] from the EnvFrom configMap shop/settings were skipped since "
        "they are considered invalid environment variable names.")]


async def test_value_from_refs_and_optional():
    c = {"name": "app", "resources": {"limits": {"memory": "256Mi"}, "requests": {"cpu": "250m"}},
         "env": [
             {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
             {"name": "LVL", "valueFrom": {"configMapKeyRef": {"name": "settings",
                                                               "key": "LEVEL"}}},
             {"name": "GONE", "valueFrom": {"configMapKeyRef": {"name": "none", "key": "k",
                                                                "optional": True}}},
             {"name": "NOKEY", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "k",
                                                              "optional": True}}},
             {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
             {"name": "IPS", "valueFrom": {"fieldRef": {"fieldPath": "status.podIPs"}}},
             {"name": "TIER", "valueFrom": {"fieldRef": {
                 "fieldPath": "metadata.labels['tier']"}}},
             {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {
                 "resource": "limits.memory", "divisor": "1Mi"}}},
             {"name": "CPU_REQ_M", "valueFrom": {"resourceFieldRef": {
                 "resource": "requests.cpu", "divisor": "1m"}}},
             {"name": "CPU_LIM", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
         ]}
    env, _ = await container_env(pod(c), c, LOOKUP, ctx=CTX)
    assert dict(env) == {"PW": "s3cret", "LVL": "3", "POD": "web", "IPS": "10.42.0.5,fd00::5",
                         "TIER": "front", "MEM_MI": "256", "CPU_REQ_M": "250", "CPU_LIM": "4"}


@pytest.mark.parametrize("ref, message", [
    ({"configMapKeyRef": {"name": "missing", "key": "k"}}, 'configmap "missing" not found'),
    ({"secretKeyRef": {"name": "nope", "key": "k"}}, 'secret "nope" not found'),
    ({"configMapKeyRef": {"name": "settings", "key": "k"}},
     "couldn't find key k in ConfigMap shop/settings"),
    ({"secretKeyRef": {"name": "creds", "key": "k"}}, "couldn't find key k in Secret shop/creds"),
])
async def test_missing_refs_are_config_errors(ref, message):
    c = {"name": "app", "env": [{"name": "X", "valueFrom": ref}]}
    with pytest.raises(ConfigError) as e:
        await container_env(pod(c), c, LOOKUP)
    assert str(e.value) == message and e.value.reason == "CreateContainerConfigError"


async def test_env_from_missing_optional_and_required():
    c = {"name": "app", "envFrom": [{"configMapRef": {"name": "x", "optional": True}}]}
    assert (await container_env(pod(c), c, LOOKUP))[0] == []
    c = {"name": "app", "envFrom": [{"secretRef": {"name": "x"}}]}
    with pytest.raises(ConfigError, match='secret "x" not found'):
        await container_env(pod(c), c, LOOKUP)


def test_field_refs_whole_maps_and_unsupported():
    p = pod({"name": "c"})
    assert field_ref_value(p, "metadata.labels", CTX) == 'app="web"\ntier="front"'
    assert field_ref_value(p, "metadata.annotations['note']", CTX) == 'say "hi"'
    assert field_ref_value(p, "spec.serviceAccountName", CTX) == "builder"
    assert field_ref_value(p, "status.hostIP", CTX) == "192.168.5.1"
    with pytest.raises(ConfigError, match="unsupported fieldPath: spec.bogus"):
        field_ref_value(p, "spec.bogus", CTX)


SERVICES = [
    {"metadata": {"name": "kubernetes", "namespace": "default"},
     "spec": {"clusterIP": "10.43.0.1", "ports": [{"name": "https", "port": 443}]}},
    {"metadata": {"name": "redis-primary", "namespace": "shop"},
     "spec": {"clusterIP": "10.43.0.20", "ports": [{"port": 6379},
                                                    {"name": "metrics", "port": 9121}]}},
    {"metadata": {"name": "headless", "namespace": "shop"}, "spec": {"clusterIP": "None",
                                                                     "ports": [{"port": 1}]}},
    {"metadata": {"name": "other", "namespace": "elsewhere"},
     "spec": {"clusterIP": "10.43.0.30", "ports": [{"port": 80}]}},
]


def test_service_links():
    env = service_env(SERVICES, "shop")
    assert env["KUBERNETES_SERVICE_HOST"] == "10.43.0.1"
    assert env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443"
    assert env["REDIS_PRIMARY_SERVICE_PORT"] == "6379"
    assert env["REDIS_PRIMARY_SERVICE_PORT_METRICS"] == "9121"
    assert env["REDIS_PRIMARY_PORT"] == "tcp://10.43.0.20:6379"
    assert env["REDIS_PRIMARY_PORT_9121_TCP_ADDR"] == "10.43.0.20"
    assert env["REDIS_PRIMARY_PORT_6379_TCP_PROTO"] == "tcp"
    assert not any(k.startswith(("HEADLESS", "OTHER")) for k in env)
    off = service_env(SERVICES, "shop", enable_service_links=False)
    assert set(off) == {k for k in env if k.startswith("KUBERNETES_")}


async def test_service_vars_expand_but_do_not_override():
    c = {"name": "app", "env": [{"name": "REDIS", "value": "$(REDIS_PRIMARY_SERVICE_HOST)"},
                                {"name": "KUBERNETES_SERVICE_HOST", "value": "mine"}]}
    env, _ = await container_env(pod(c), c, LOOKUP, services=SERVICES)
    d = dict(env)
    assert d["REDIS"] == "10.43.0.20" and d["KUBERNETES_SERVICE_HOST"] == "mine"
    c = {"name": "app"}
    env, _ = await container_env(pod(c, enableServiceLinks=False), c, LOOKUP, services=SERVICES)
    assert "REDIS_PRIMARY_SERVICE_HOST" not in dict(env)
