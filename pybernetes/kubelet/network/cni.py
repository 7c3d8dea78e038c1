"""Running CNI plugins as the CNI specification tells a runtime to (what libcni does
for containerd and CRI-O): a plugin is an executable found on CNI_PATH, driven by
CNI_* environment variables with its network configuration on stdin, answering a
JSON result or a JSON error on stdout.

A network configuration *list* runs its plugins in order on ADD, each one getting
the previous result as `prevResult`, and in reverse order on DEL. The final ADD
result is cached on disk (as libcni caches under /var/lib/cni/results), together
with the configuration and arguments it was made with, so DEL and CHECK work after
the runtime restarts and even after the configuration changed."""
from __future__ import annotations

import copy
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

from pybernetes.kubelet import spawn

DEFAULT_BIN_DIRS = ("/opt/cni/bin", "/usr/lib/cni")
_SAFE_ID = re.compile(r"^[A-Za-z0-9_.-]+$")
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# CNI spec well-known error codes, for messages when a plugin gives no text.
ERROR_CODES = {
    1: "incompatible CNI version", 2: "unsupported field in network configuration",
    3: "container unknown or does not exist", 4: "invalid necessary environment variables",
    5: "I/O failure", 6: "failed to decode content", 7: "invalid network config",
    11: "try again later",
}


class CNIError(Exception):
    """A plugin answered an error (or could not be run). Carries the spec's fields."""

    def __init__(self, plugin: str, network: str, command: str, code: int, msg: str,
                 details: str = ""):
        self.plugin, self.network, self.command = plugin, network, command
        self.code, self.msg, self.details = code, msg, details
        text = msg or ERROR_CODES.get(code, "unknown error")
        if details:
            text = f"{text}; {details}"
        # libcni's wording, which containerd wraps into the sandbox error users see.
        super().__init__(f'plugin type="{plugin}" name="{network}" failed '
                         f"({command.lower()}): {text}")


@dataclass
class RuntimeConf:
    """One attachment of one container to one network (libcni's RuntimeConf)."""

    container_id: str
    netns: str                       # "" when the namespace is already gone (DEL)
    ifname: str = "eth0"
    args: list[tuple[str, str]] = field(default_factory=list)       # CNI_ARGS
    capability_args: dict[str, Any] = field(default_factory=dict)   # runtimeConfig


class CNI:
    """Plugin execution plus the result cache for any number of network lists."""

    def __init__(self, bin_dirs: list[str] | tuple[str, ...] | None = None,
                 cache_dir: str = "/var/lib/pybernetes/cni", timeout: float = 60.0):
        self.bin_dirs = [d for d in (bin_dirs or DEFAULT_BIN_DIRS)]
        self.cache_dir = cache_dir
        self.timeout = timeout

    # ----- network lists -----------------------------------------------------------
    async def add_list(self, netconf: dict, rt: RuntimeConf) -> dict:
        """ADD every plugin in order, chaining results; cache and return the last."""
        _check_list(netconf)
        _check_id(rt.container_id)
        result: dict | None = None
        for plugin in netconf["plugins"]:
            conf = _plugin_conf(netconf, plugin, result, rt.capability_args)
            result = await self.exec_plugin("ADD", conf, rt, netconf["name"])
            if result is None:
                raise CNIError(plugin["type"], netconf["name"], "ADD", 999,
                               "plugin returned no result")
        assert result is not None
        self._write_cache(netconf, rt, result)
        return result

    async def del_list(self, netconf: dict, rt: RuntimeConf) -> None:
        """DEL every plugin in reverse order with the cached result as prevResult.
        The cached configuration and capability arguments win over the given ones
        (the attachment is torn down as it was made). Missing cache: DEL anyway —
        plugins must tolerate it, and the caller may not know what ADD did."""
        _check_id(rt.container_id)
        cached = self.cached(netconf["name"], rt)
        if cached is not None:
            netconf = cached["config"]
            rt = RuntimeConf(rt.container_id, rt.netns, rt.ifname, rt.args,
                             cached.get("capabilityArgs") or rt.capability_args)
        _check_list(netconf)
        prev = cached.get("result") if cached else None
        for plugin in reversed(netconf["plugins"]):
            conf = _plugin_conf(netconf, plugin, prev, rt.capability_args)
            await self.exec_plugin("DEL", conf, rt, netconf["name"])
        self._remove_cache(netconf["name"], rt)

    async def check_list(self, netconf: dict, rt: RuntimeConf) -> None:
        """CHECK every plugin in order against the cached result (raises CNIError)."""
        cached = self.cached(netconf["name"], rt)
        if cached is None:
            raise CNIError(netconf["plugins"][0]["type"], netconf["name"], "CHECK", 3,
                           f"no cached result for container {rt.container_id}")
        netconf = cached["config"]
        for plugin in netconf["plugins"]:
            conf = _plugin_conf(netconf, plugin, cached["result"],
                                cached.get("capabilityArgs") or {})
            await self.exec_plugin("CHECK", conf, rt, netconf["name"])

    async def version(self, plugin_type: str, cni_version: str = "1.0.0") -> dict:
        """The plugin's VERSION answer: {"cniVersion", "supportedVersions"}."""
        rt = RuntimeConf(container_id="", netns="", ifname="")
        out = await self.exec_plugin("VERSION", {"cniVersion": cni_version,
                                                 "type": plugin_type}, rt, "")
        return out or {}

    def forget(self, network: str, rt: RuntimeConf) -> None:
        """Drop an attachment's cached result without running DEL (for one whose
        effects all live inside the namespace being removed, such as loopback)."""
        _check_id(rt.container_id)
        self._remove_cache(network, rt)

    def cached(self, network: str, rt: RuntimeConf) -> dict | None:
        try:
            with open(self._cache_path(network, rt), "rb") as f:
                data = json.load(f)
        except (FileNotFoundError, ValueError):
            return None
        return data if data.get("kind") == "cniCacheV1" else None

    # ----- one plugin --------------------------------------------------------------
    def find_plugin(self, plugin_type: str) -> str:
        if not plugin_type or "/" in plugin_type:
            raise CNIError(plugin_type, "", "ADD", 7, f"invalid plugin type {plugin_type!r}")
        for d in self.bin_dirs:
            path = os.path.join(d, plugin_type)
            if os.access(path, os.X_OK):
                return path
        raise CNIError(plugin_type, "", "ADD", 7,
                       f'failed to find plugin "{plugin_type}" in path {self.bin_dirs}')

    async def exec_plugin(self, command: str, conf: dict, rt: RuntimeConf,
                          network: str) -> dict | None:
        """Run one plugin; return its parsed stdout (None when empty, as for DEL)."""
        plugin_type = conf.get("type", "")
        try:
            path = self.find_plugin(plugin_type)
        except CNIError as e:
            raise CNIError(plugin_type, network, command, e.code, e.msg) from None
        try:
            done = await spawn.run([path], timeout=self.timeout, env=self._env(command, rt),
                                   input=json.dumps(conf).encode())
        except spawn.CommandTimeout:
            raise CNIError(plugin_type, network, command, 5,
                           f"timed out after {self.timeout}s") from None
        except OSError as e:
            raise CNIError(plugin_type, network, command, 5, f"could not run {path}: {e}"
                           ) from None
        out = done.stdout
        if done.returncode != 0:
            raise _error_from(plugin_type, network, command, done.returncode, out,
                              done.stderr)
        if not out.strip():
            return None
        try:
            return json.loads(out)
        except ValueError:
            raise CNIError(plugin_type, network, command, 6,
                           f"invalid JSON result: {out[:200]!r}") from None

    def _env(self, command: str, rt: RuntimeConf) -> dict[str, str]:
        env = dict(os.environ)
        # Plugins run iptables/ip by name; a kubelet started with a thin PATH must not
        # make portmap fail, so the usual sbin directories are always there.
        env["PATH"] = ":".join(p for p in (env.get("PATH", ""), _SYSTEM_PATH) if p)
        env.update({
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": rt.container_id,
            "CNI_NETNS": rt.netns,
            "CNI_IFNAME": rt.ifname,
            "CNI_ARGS": ";".join(f"{k}={v}" for k, v in rt.args),
            "CNI_PATH": ":".join(self.bin_dirs),
        })
        return env

    # ----- cache ---------------------------------------------------------------------
    def _cache_path(self, network: str, rt: RuntimeConf) -> str:
        return os.path.join(self.cache_dir, "results",
                            f"{network}-{rt.container_id}-{rt.ifname}")

    def _write_cache(self, netconf: dict, rt: RuntimeConf, result: dict) -> None:
        path = self._cache_path(netconf["name"], rt)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        data = {"kind": "cniCacheV1", "containerId": rt.container_id, "ifName": rt.ifname,
                "networkName": netconf["name"], "netns": rt.netns,
                "cniArgs": [list(a) for a in rt.args],
                "capabilityArgs": rt.capability_args, "config": netconf, "result": result}
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            f.write(json.dumps(data))   # the C encoder; json.dump runs a Python one
        # a crash leaves the old entry or the new one, never half; no fsync (as libcni):
        # after a power loss the namespace and veth are gone too, and DEL without a
        # cache entry still releases the lease
        os.replace(tmp, path)

    def _remove_cache(self, network: str, rt: RuntimeConf) -> None:
        try:
            os.unlink(self._cache_path(network, rt))
        except FileNotFoundError:
            pass


def _plugin_conf(netconf: dict, plugin: dict, prev: dict | None,
                 capability_args: dict[str, Any]) -> dict:
    """What one plugin of a list reads on stdin: its own section plus the list's name
    and version, the previous result, and runtimeConfig limited to the capabilities
    the plugin declared (so a plugin never sees arguments it did not ask for)."""
    conf = copy.deepcopy(plugin)
    conf["name"] = netconf["name"]
    conf["cniVersion"] = netconf["cniVersion"]
    if prev is not None:
        conf["prevResult"] = prev
    wanted = {k for k, on in (plugin.get("capabilities") or {}).items() if on}
    runtime = {k: v for k, v in capability_args.items() if k in wanted}
    if runtime:
        conf["runtimeConfig"] = runtime
    return conf


def _check_list(netconf: dict) -> None:
    if not isinstance(netconf.get("name"), str) or not netconf["name"]:
        raise CNIError("", "", "ADD", 7, "network configuration list has no name")
    if not netconf.get("cniVersion"):
        raise CNIError("", netconf["name"], "ADD", 7, "network configuration has no cniVersion")
    plugins = netconf.get("plugins")
    if not isinstance(plugins, list) or not plugins:
        raise CNIError("", netconf["name"], "ADD", 7, "network configuration has no plugins")


def _check_id(container_id: str) -> None:
    # The spec limits container ids to this alphabet; it also keeps cache paths safe.
    if not _SAFE_ID.match(container_id or ""):
        raise CNIError("", "", "ADD", 4, f"invalid container id {container_id!r}")


def _error_from(plugin: str, network: str, command: str, rc: int | None,
                out: bytes, err: bytes) -> CNIError:
    try:
        body = json.loads(out)
    except ValueError:
        body = None
    if isinstance(body, dict) and ("code" in body or "msg" in body):
        return CNIError(plugin, network, command, int(body.get("code") or 999),
                        str(body.get("msg") or ""), str(body.get("details") or ""))
    text = (err or out).decode(errors="replace").strip()[:2000]
    return CNIError(plugin, network, command, 999, f"exit status {rc}: {text}")
