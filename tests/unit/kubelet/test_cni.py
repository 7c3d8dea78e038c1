"""CNI invocation as the spec tells a runtime to do it, checked against small
recording plugins (no root needed): environment, stdin, chaining, the on-disk cache,
reverse-order DEL and error results. The real plugins are exercised in
tests/integration/test_pod_network.py."""
from __future__ import annotations

import json
import os
import stat
import sys
import textwrap

import pytest

from pybernetes.kubelet.network.cni import CNI, CNIError, RuntimeConf

# A plugin that appends what it was given to $LOG and answers like an interface or
# chained plugin would; its behaviour is chosen by its "mode" config key.
PLUGIN = textwrap.dedent("""\
    #!{python}
    import json, os, sys
    conf = json.load(sys.stdin)
    env = {{k: v for k, v in os.environ.items() if k.startswith("CNI_")}}
    with open(os.environ["LOG"], "a") as f:
        f.write(json.dumps({{"plugin": os.path.basename(sys.argv[0]), "env": env,
                            "conf": conf}}) + "\\n")
    mode = conf.get("mode", "ok")
    cmd = env["CNI_COMMAND"]
    if cmd == "VERSION":
        print(json.dumps({{"cniVersion": "1.0.0", "supportedVersions": ["0.4.0", "1.0.0"]}}))
    elif mode == "fail":
        print(json.dumps({{"cniVersion": "1.0.0", "code": 11, "msg": "no more addresses",
                          "details": "range 10.0.0.0/30 is full"}}))
        sys.exit(1)
    elif mode == "garbage":
        sys.stderr.write("panic: something broke\\n")
        sys.exit(2)
    elif cmd == "ADD":
        result = conf.get("prevResult") or {{"cniVersion": "1.0.0", "ips": []}}
        result.setdefault("seen", []).append(os.path.basename(sys.argv[0]))
        if mode == "ip":
            result["ips"].append({{"address": "10.0.0.2/24", "gateway": "10.0.0.1"}})
        print(json.dumps(result))
""")


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("first", "second", "third"):
        p = bin_dir / name
        p.write_text(PLUGIN.format(python=sys.executable))
        p.chmod(p.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("LOG", str(log))

    def calls() -> list[dict]:
        if not log.exists():
            return []
        lines = log.read_text().splitlines()
        log.unlink()
        return [json.loads(line) for line in lines]
    return CNI([str(bin_dir)], cache_dir=str(tmp_path / "cache")), calls


def netconf(**extra) -> dict:
    return {"cniVersion": "1.0.0", "name": "podnet", "plugins": [
        {"type": "first", "mode": "ip", **extra},
        {"type": "second", "capabilities": {"portMappings": True}},
        {"type": "third", "capabilities": {"bandwidth": False}},
    ]}


def rt(**kw) -> RuntimeConf:
    base = dict(container_id="abc123", netns="/run/netns/abc123",
                args=[("IgnoreUnknown", "1"), ("K8S_POD_NAME", "web")],
                capability_args={"portMappings": [{"hostPort": 8080, "containerPort": 80,
                                                   "protocol": "tcp"}],
                                 "bandwidth": {"ingressRate": 1}})
    base.update(kw)
    return RuntimeConf(**base)


async def test_add_runs_plugins_in_order_chaining_results(plugins):
    cni, calls = plugins
    result = await cni.add_list(netconf(), rt())
    assert result["ips"] == [{"address": "10.0.0.2/24", "gateway": "10.0.0.1"}]
    assert result["seen"] == ["first", "second", "third"]

    seen = calls()
    assert [c["plugin"] for c in seen] == ["first", "second", "third"]
    env = seen[0]["env"]
    assert env["CNI_COMMAND"] == "ADD" and env["CNI_CONTAINERID"] == "abc123"
    assert env["CNI_NETNS"] == "/run/netns/abc123" and env["CNI_IFNAME"] == "eth0"
    assert env["CNI_ARGS"] == "IgnoreUnknown=1;K8S_POD_NAME=web"
    assert env["CNI_PATH"] == cni.bin_dirs[0]
    # every plugin sees the list's name and version; the first has no prevResult
    assert all(c["conf"]["name"] == "podnet" and c["conf"]["cniVersion"] == "1.0.0"
               for c in seen)
    assert "prevResult" not in seen[0]["conf"]
    assert seen[1]["conf"]["prevResult"]["seen"] == ["first"]
    # runtimeConfig carries only the capabilities a plugin declared (and enabled)
    assert "runtimeConfig" not in seen[0]["conf"]
    assert seen[1]["conf"]["runtimeConfig"] == {"portMappings": [
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}
    assert "runtimeConfig" not in seen[2]["conf"]

    cached = cni.cached("podnet", rt())
    assert cached["result"] == result and cached["config"] == netconf()
    assert cached["containerId"] == "abc123" and cached["ifName"] == "eth0"


async def test_del_runs_in_reverse_with_the_cached_result_and_config(plugins, tmp_path):
    cni, calls = plugins
    result = await cni.add_list(netconf(), rt())
    calls()
    # a "restarted" runtime: a new CNI object, a changed config, no capability args
    again = CNI(cni.bin_dirs, cache_dir=cni.cache_dir)
    changed = netconf()
    changed["plugins"] = changed["plugins"][:1]
    await again.del_list(changed, rt(capability_args={}))
    seen = calls()
    assert [c["plugin"] for c in seen] == ["third", "second", "first"]
    assert all(c["env"]["CNI_COMMAND"] == "DEL" for c in seen)
    assert all(c["conf"]["prevResult"] == result for c in seen)
    assert seen[1]["conf"]["runtimeConfig"]["portMappings"][0]["hostPort"] == 8080
    assert again.cached("podnet", rt()) is None
    assert os.listdir(os.path.join(cni.cache_dir, "results")) == []

    # DEL again: no cache, so the given config without prevResult — still fine
    await again.del_list(changed, rt(netns=""))
    seen = calls()
    assert [c["plugin"] for c in seen] == ["first"]
    assert "prevResult" not in seen[0]["conf"] and seen[0]["env"]["CNI_NETNS"] == ""


async def test_check_uses_the_cache(plugins):
    cni, calls = plugins
    with pytest.raises(CNIError, match="no cached result"):
        await cni.check_list(netconf(), rt())
    result = await cni.add_list(netconf(), rt())
    calls()
    await cni.check_list(netconf(), rt())
    seen = calls()
    assert [c["env"]["CNI_COMMAND"] for c in seen] == ["CHECK"] * 3
    assert all(c["conf"]["prevResult"] == result for c in seen)


async def test_error_results_become_cni_errors(plugins):
    cni, calls = plugins
    with pytest.raises(CNIError) as err:
        await cni.add_list(netconf(mode="fail"), rt())
    e = err.value
    assert (e.plugin, e.network, e.command, e.code) == ("first", "podnet", "ADD", 11)
    assert e.msg == "no more addresses" and e.details == "range 10.0.0.0/30 is full"
    assert str(e) == ('plugin type="first" name="podnet" failed (add): '
                      "no more addresses; range 10.0.0.0/30 is full")
    assert [c["plugin"] for c in calls()] == ["first"]       # the chain stopped there
    assert cni.cached("podnet", rt()) is None

    with pytest.raises(CNIError, match="exit status 2: panic: something broke"):
        await cni.add_list(netconf(mode="garbage"), rt())


async def test_bad_input_is_refused_before_anything_runs(plugins):
    cni, calls = plugins
    with pytest.raises(CNIError, match='failed to find plugin "nope"'):
        await cni.add_list({"cniVersion": "1.0.0", "name": "n",
                            "plugins": [{"type": "nope"}]}, rt())
    with pytest.raises(CNIError, match="invalid container id"):
        await cni.add_list(netconf(), rt(container_id="../../etc"))
    with pytest.raises(CNIError, match="no plugins"):
        await cni.add_list({"cniVersion": "1.0.0", "name": "n", "plugins": []}, rt())
    with pytest.raises(CNIError, match="invalid plugin type"):
        await cni.add_list({"cniVersion": "1.0.0", "name": "n",
                            "plugins": [{"type": "../first"}]}, rt())
    assert calls() == []


async def test_version(plugins):
    cni, _ = plugins
    assert "1.0.0" in (await cni.version("first"))["supportedVersions"]


@pytest.mark.skipif(not os.access("/usr/lib/cni/bridge", os.X_OK),
                    reason="containernetworking-plugins not installed")
async def test_the_real_plugins_speak_our_version():
    cni = CNI(["/usr/lib/cni"], cache_dir="/nonexistent")
    for plugin in ("bridge", "host-local", "loopback", "portmap"):
        assert "1.0.0" in (await cni.version(plugin))["supportedVersions"]
