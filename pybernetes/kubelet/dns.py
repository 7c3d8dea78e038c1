"""A pod's /etc/resolv.conf and /etc/hosts, as upstream's kubelet decides them.

resolv.conf per dnsPolicy:
  ClusterFirst             cluster DNS server, search <ns>.svc.<domain> svc.<domain> <domain>
                           + the host's searches, options ndots:5 (with hostNetwork it
                           is treated as Default, as upstream does)
  ClusterFirstWithHostNet  ClusterFirst, also with hostNetwork
  Default                  the node's resolv.conf
  None                     only what spec.dnsConfig says
spec.dnsConfig is merged on top of any of them. Without a cluster DNS address the
ClusterFirst policies fall back to Default with a MissingClusterDNS warning."""
from __future__ import annotations

from dataclasses import dataclass, field

from pybernetes.kubelet.backoff import pod_ref
from pybernetes.kubelet.runtime.base import DNSConfig

MAX_NAMESERVERS = 3             # validation.MaxDNSNameservers
MAX_SEARCHES = 32               # validation.MaxDNSSearchPaths
MAX_SEARCH_CHARS = 2048         # validation.MaxDNSSearchListChars
DEFAULT_OPTIONS = ["ndots:5"]
HOST_RESOLV_CONF = "/etc/resolv.conf"


@dataclass
class DNSWarning:
    """An event the kubelet should record on the pod (type Warning)."""

    reason: str
    message: str


@dataclass
class HostDNS:
    servers: list[str] = field(default_factory=list)
    searches: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _merge_options(base: list[str], extra: list[str]) -> list[str]:
    """Options by name; a later value for the same name wins, order of first sight kept."""
    out: dict[str, str] = {}
    for opt in base + extra:
        name = opt.split(":", 1)[0]
        out[name] = opt
    return list(out.values())


def parse_resolv_conf(text: str) -> HostDNS:
    """nameservers accumulate, the last `search` line wins, options merge."""
    host = HostDNS()
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0]
        fields = line.split()
        if not fields:
            continue
        if fields[0] == "nameserver" and len(fields) > 1:
            host.servers.append(fields[1])
        elif fields[0] == "search":
            # the same domain with and without the trailing dot counts once
            host.searches = [s if s == "." else s.rstrip(".") for s in fields[1:]]
        elif fields[0] == "options":
            host.options = _merge_options(host.options, fields[1:])
    return host


def read_host_dns(path: str | None = HOST_RESOLV_CONF) -> HostDNS:
    """The node's resolv.conf (--resolv-conf); "" → no file (lookups go to localhost)."""
    if not path:
        return HostDNS(servers=["127.0.0.1"], searches=["."])
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return parse_resolv_conf(f.read())
    except OSError:
        return HostDNS()


def dns_kind(spec: dict) -> str:
    """"cluster" | "host" | "none" (upstream's getPodDNSType)."""
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    if policy == "None":
        return "none"
    if policy == "ClusterFirstWithHostNet":
        return "cluster"
    if policy == "ClusterFirst" and not spec.get("hostNetwork"):
        return "cluster"
    return "host"   # Default, and ClusterFirst with hostNetwork


def cluster_searches(namespace: str, cluster_domain: str, host_searches: list[str]) -> list[str]:
    if not cluster_domain:
        return list(host_searches)
    return _unique([f"{namespace}.svc.{cluster_domain}", f"svc.{cluster_domain}",
                    cluster_domain] + host_searches)


def _fit(cfg: DNSConfig, warnings: list[DNSWarning]) -> DNSConfig:
    """Trim to the resolver's limits with upstream's DNSConfigForming warnings."""
    if len(cfg.servers) > MAX_NAMESERVERS:
        cfg.servers = cfg.servers[:MAX_NAMESERVERS]
        warnings.append(DNSWarning("DNSConfigForming", (
            "Nameserver limits were exceeded, some nameservers have been omitted, the applied "
            f"nameserver line is: {' '.join(cfg.servers)}")))
    searches, trimmed = [], False
    for s in cfg.searches:
        if len(s) > 253:            # glibc aborts on such search paths; drop them
            trimmed = True
            continue
        if len(searches) >= MAX_SEARCHES or len(" ".join(searches + [s])) > MAX_SEARCH_CHARS:
            trimmed = True
            break
        searches.append(s)
    if trimmed:
        cfg.searches = searches
        warnings.append(DNSWarning("DNSConfigForming", (
            "Search Line limits were exceeded, some search paths have been omitted, the applied "
            f"search line is: {' '.join(searches)}")))
    return cfg


def pod_dns(pod: dict, *, cluster_dns: list[str], cluster_domain: str = "cluster.local",
            host: HostDNS | None = None) -> tuple[DNSConfig, list[DNSWarning]]:
    """The sandbox's DNS settings for `pod`, and the events to record."""
    spec = pod.get("spec") or {}
    ns = (pod.get("metadata") or {}).get("namespace") or "default"
    host = host if host is not None else read_host_dns()
    warnings: list[DNSWarning] = []
    kind = dns_kind(spec)
    cfg = DNSConfig(list(host.servers), list(host.searches), list(host.options))
    if kind == "none":
        cfg = DNSConfig()
    elif kind == "cluster" and cluster_dns:
        cfg = DNSConfig(list(cluster_dns), cluster_searches(ns, cluster_domain, host.searches),
                        list(DEFAULT_OPTIONS))
    elif kind == "cluster":
        msg = ("kubelet does not have ClusterDNS IP configured and cannot create Pod using "
               '"ClusterFirst" policy. Falling back to "Default" policy.')
        warnings.append(DNSWarning("MissingClusterDNS", f'pod: "{pod_ref(pod)}". {msg}'))
    extra = spec.get("dnsConfig") or {}
    if extra:
        cfg.servers = _unique(cfg.servers + list(extra.get("nameservers") or []))
        cfg.searches = _unique(cfg.searches + list(extra.get("searches") or []))
        opts = [o.get("name", "") + (f":{o['value']}" if o.get("value") is not None else "")
                for o in extra.get("options") or [] if o.get("name")]
        cfg.options = _merge_options(cfg.options, opts)
    return _fit(cfg, warnings), warnings


def resolv_conf(cfg: DNSConfig) -> str:
    """The file the runtime writes (search, nameservers, options: containerd's order)."""
    lines = []
    if cfg.searches:
        lines.append("search " + " ".join(cfg.searches))
    lines += [f"nameserver {s}" for s in cfg.servers]
    if cfg.options:
        lines.append("options " + " ".join(cfg.options))
    return "".join(line + "\n" for line in lines)


# ----- hostname and /etc/hosts ------------------------------------------------------
def _truncate_hostname(name: str) -> str:
    """upstream truncates to 63 characters and trims a trailing '-' or '.'."""
    if len(name) <= 63:
        return name
    return name[:63].rstrip("-.")


def pod_hostname(pod: dict, cluster_domain: str = "cluster.local") -> tuple[str, str]:
    """(hostname, domain): spec.hostname or the pod name; with a subdomain the domain is
    <subdomain>.<ns>.svc.<cluster domain> (else "")."""
    spec, md = pod.get("spec") or {}, pod.get("metadata") or {}
    hostname = _truncate_hostname(spec.get("hostname") or md.get("name") or "")
    domain = ""
    if spec.get("subdomain"):
        domain = f"{spec['subdomain']}.{md.get('namespace') or 'default'}.svc.{cluster_domain}"
    return hostname, domain


def sandbox_hostname(pod: dict, cluster_domain: str = "cluster.local") -> str:
    """The UTS hostname: the FQDN when setHostnameAsFQDN is true and there is a domain."""
    hostname, domain = pod_hostname(pod, cluster_domain)
    if (pod.get("spec") or {}).get("setHostnameAsFQDN") and domain:
        return f"{hostname}.{domain}"
    return hostname


def _aliases(pod: dict) -> str:
    aliases = (pod.get("spec") or {}).get("hostAliases") or []
    if not aliases:
        return ""
    out = "\n# Entries added by HostAliases.\n"
    for a in aliases:
        out += f"{a.get('ip', '')}\t" + "\t".join(a.get("hostnames") or []) + "\n"
    return out


def etc_hosts(pod: dict, pod_ips: list[str], cluster_domain: str = "cluster.local",
              node_hosts_path: str = "/etc/hosts") -> str:
    """/etc/hosts as the kubelet writes it (its managed file, or the node's with
    hostNetwork), hostAliases appended."""
    if (pod.get("spec") or {}).get("hostNetwork"):
        try:
            with open(node_hosts_path, encoding="utf-8", errors="replace") as f:
                base = f.read()
        except OSError:
            base = ""
        return "# Kubernetes-managed hosts file (host network).\n" + base + _aliases(pod)
    hostname, domain = pod_hostname(pod, cluster_domain)
    out = ("# Kubernetes-managed hosts file.\n"
           "127.0.0.1\tlocalhost\n"
           "::1\tlocalhost ip6-localhost ip6-loopback\n"
           "fe00::0\tip6-localnet\n"
           "fe00::0\tip6-mcastprefix\n"
           "fe00::1\tip6-allnodes\n"
           "fe00::2\tip6-allrouters\n")
    for ip in pod_ips:
        out += f"{ip}\t{hostname}.{domain}\t{hostname}\n" if domain else f"{ip}\t{hostname}\n"
    return out + _aliases(pod)


def host_aliases(pod: dict) -> list[tuple[str, list[str]]]:
    """spec.hostAliases in SandboxConfig.extra_hosts' shape."""
    return [(a.get("ip", ""), list(a.get("hostnames") or []))
            for a in (pod.get("spec") or {}).get("hostAliases") or []]
