"""The container runtime interface the kubelet drives, shaped like Kubernetes' CRI
RuntimeService: a pod is a *sandbox* (its network namespace, hostname, DNS files,
cgroup parent) holding *containers* that share it. Implementations: runc
(isolated, `runtime/runc.py`), process (host processes, no isolation) and fake.

Everything the kubelet needs to find again after it restarts lives with the
runtime (on disk, under its state dir), never only in the kubelet's memory: a
restarted kubelet lists sandboxes and containers and carries on."""
from __future__ import annotations

import abc
from dataclasses import dataclass, field


@dataclass
class PortMapping:
    container_port: int
    host_port: int
    protocol: str = "TCP"   # TCP | UDP | SCTP
    host_ip: str = ""


@dataclass
class DNSConfig:
    """What the pod's /etc/resolv.conf says (the kubelet resolves dnsPolicy into this)."""

    servers: list[str] = field(default_factory=list)
    searches: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)


@dataclass
class SandboxConfig:
    pod_uid: str
    name: str
    namespace: str
    hostname: str
    attempt: int = 0
    host_network: bool = False
    host_pid: bool = False
    host_ipc: bool = False
    dns: DNSConfig = field(default_factory=DNSConfig)
    extra_hosts: list[tuple[str, list[str]]] = field(default_factory=list)  # hostAliases
    ports: list[PortMapping] = field(default_factory=list)                 # hostPorts
    cgroup_parent: str = ""     # e.g. kubepods/burstable/pod<uid>
    log_directory: str = ""     # /var/log/pods/<ns>_<name>_<uid>
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    sysctls: dict[str, str] = field(default_factory=dict)
    # CRI's runtime_handler: the pod's RuntimeClass handler; "" is the runtime's default
    # (records written before handlers existed have none: the default too)
    runtime_handler: str = ""
    # the pod cgroup's limits (upstream's pod-level cgroup); None: no limits of its own
    resources: Resources | None = None


@dataclass
class SandboxStatus:
    id: str
    state: str                  # "ready" | "notready"
    created_at: float
    ip: str = ""                # primary pod IP ("" with hostNetwork: use the node's)
    ips: list[str] = field(default_factory=list)
    netns_path: str = ""
    config: SandboxConfig | None = None


@dataclass
class Mount:
    host_path: str
    container_path: str
    readonly: bool = False
    propagation: str = "private"  # private | rslave | rshared
    selinux_relabel: bool = False


@dataclass
class Resources:
    """Linux resources, as the kubelet computes them from requests and limits."""

    cpu_shares: int = 2            # cgroup v1 shares (v2 weight derived from it)
    cpu_quota: int = 0             # microseconds per period; 0 = unlimited
    cpu_period: int = 100_000
    memory_limit: int = 0          # bytes; 0 = unlimited
    oom_score_adj: int = 0
    pids_limit: int = 0


@dataclass
class Security:
    run_as_user: int | None = None
    run_as_group: int | None = None
    supplemental_groups: list[int] = field(default_factory=list)
    readonly_rootfs: bool = False
    privileged: bool = False
    capabilities_add: list[str] = field(default_factory=list)    # without CAP_ prefix
    capabilities_drop: list[str] = field(default_factory=list)
    no_new_privs: bool = False     # allowPrivilegeEscalation: false
    masked_paths: list[str] | None = None
    readonly_paths: list[str] | None = None
    # securityContext.seccompProfile: "" (= Unconfined) | Unconfined | RuntimeDefault |
    # Localhost, with the profile's path relative to the kubelet's seccomp dir
    seccomp_profile_type: str = ""
    seccomp_localhost_profile: str = ""


@dataclass
class ContainerConfig:
    name: str
    attempt: int                   # restart count: 0 for the first run
    image: str                     # what the pod spec said (e.g. "busybox:1.36")
    image_ref: str                 # resolved image id ("sha256:...") from the image service
    command: list[str]             # the final argv (kubelet merged image entrypoint/cmd)
    env: list[tuple[str, str]] = field(default_factory=list)
    working_dir: str = ""
    mounts: list[Mount] = field(default_factory=list)
    resources: Resources = field(default_factory=Resources)
    security: Security = field(default_factory=Security)
    tty: bool = False
    stdin: bool = False
    stdin_once: bool = False
    log_path: str = ""             # relative to the sandbox log_directory: <name>/<attempt>.log
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass
class ContainerStatus:
    id: str
    name: str
    attempt: int
    state: str                     # "created" | "running" | "exited" | "unknown"
    created_at: float
    started_at: float = 0.0
    finished_at: float = 0.0
    exit_code: int = 0
    reason: str = ""               # "OOMKilled" | "Error" | "Completed" | ""
    message: str = ""
    image: str = ""
    image_ref: str = ""
    pid: int = 0
    log_path: str = ""             # absolute
    sandbox_id: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: bytes


def handler_not_supported(handler: str) -> str:
    """What CRI-O says of a handler it does not have (the kubelet prefixes it with
    "Failed to create pod sandbox: ")."""
    return f'RuntimeHandler "{handler}" not supported'


class ContainerRuntimeError(Exception):
    """A runtime operation failed; `reason` is what the pod status should say
    (e.g. CreateContainerError, RunContainerError, CreateContainerConfigError)."""

    def __init__(self, message: str, reason: str = "RunContainerError"):
        super().__init__(message)
        self.reason = reason


class Runtime(abc.ABC):
    name = ""  # "runc" | "process" | "fake"

    @abc.abstractmethod
    async def version(self) -> str:
        """e.g. "runc://1.1.5" (nodeInfo.containerRuntimeVersion)."""

    def runtime_handlers(self) -> list[str]:
        """The handlers a sandbox may ask for (CRI's RuntimeHandlers: "" is the default,
        listed first); run_pod_sandbox refuses any other."""
        return [""]

    # ----- sandboxes ---------------------------------------------------------------
    @abc.abstractmethod
    async def run_pod_sandbox(self, cfg: SandboxConfig) -> str:
        """Create the pod's namespaces/network/cgroup and files; return its id."""

    @abc.abstractmethod
    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        """Stop every container in it and tear its network down (idempotent)."""

    @abc.abstractmethod
    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        """Forget it entirely: no netns, mount, cgroup or file left (idempotent)."""

    @abc.abstractmethod
    async def pod_sandbox_status(self, sandbox_id: str) -> SandboxStatus:
        """Raises KeyError for an unknown sandbox."""

    @abc.abstractmethod
    async def list_pod_sandboxes(self, pod_uid: str | None = None) -> list[SandboxStatus]:
        """All sandboxes, or one pod's (CRI's PodSandboxFilter)."""

    # ----- containers --------------------------------------------------------------
    @abc.abstractmethod
    async def create_container(self, sandbox_id: str, cfg: ContainerConfig,
                               rootfs_layers: list[str]) -> str:
        """Prepare (not start) a container. `rootfs_layers` are the image's unpacked
        layer directories, lowest first (the image service gives them)."""

    @abc.abstractmethod
    async def start_container(self, container_id: str) -> None:
        ...

    @abc.abstractmethod
    async def stop_container(self, container_id: str, timeout: float) -> None:
        """SIGTERM (or the image's stop signal), SIGKILL after `timeout` seconds."""

    @abc.abstractmethod
    async def remove_container(self, container_id: str) -> None:
        ...

    @abc.abstractmethod
    async def container_status(self, container_id: str) -> ContainerStatus:
        """Raises KeyError for an unknown container."""

    @abc.abstractmethod
    async def list_containers(self, sandbox_id: str | None = None) -> list[ContainerStatus]:
        ...

    @abc.abstractmethod
    async def exec_sync(self, container_id: str, cmd: list[str],
                        timeout: float) -> ExecResult:
        """Run cmd inside the container (exec probes); kill it after `timeout`."""

    async def reopen_container_log(self, container_id: str) -> None:
        """CRI ReopenContainerLog: the kubelet renamed the log file away (rotation);
        the runtime starts writing a new file at the container's log path."""
        raise NotImplementedError
