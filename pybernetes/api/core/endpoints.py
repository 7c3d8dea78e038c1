"""core/v1 Endpoints."""
from __future__ import annotations

from typing import Any

from ...machinery import errors
from ...machinery import validation as v
from ...machinery.errors import FieldError
from ...machinery.printing import age
from ..strategy import AGE_COLUMN, NAME_COLUMN, Column, Strategy
from .cells import invalid_all, meta, set_default

PROTOCOLS = ["SCTP", "TCP", "UDP"]
SHOWN = 3  # formatEndpoints prints three then " + N more..."


def _host_port(ip: str, port: Any) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def endpoints_cell(obj: dict) -> str:
    shown: list[str] = []
    count = 0
    for ss in obj.get("subsets") or []:
        addresses = ss.get("addresses") or []
        ports = ss.get("ports") or [None]
        for port in ports:
            for addr in addresses:
                ip = addr.get("ip", "")
                if len(shown) < SHOWN:
                    shown.append(ip if port is None else _host_port(ip, port.get("port")))
                count += 1
    if not obj.get("subsets"):
        return "<none>"
    text = ",".join(shown)
    if count > SHOWN:
        text += f" + {count - SHOWN} more..."
    return text


def _validate_subset(ss: dict, path: str) -> list[FieldError]:
    out: list[FieldError] = []
    for key in ("addresses", "notReadyAddresses"):
        for i, addr in enumerate(ss.get(key) or []):
            out += invalid_all(f"{path}.{key}[{i}].ip", addr.get("ip", ""),
                               v.is_valid_ip(addr.get("ip", "")))
    ports = ss.get("ports") or []
    names: set[str] = set()
    for i, p in enumerate(ports):
        pp = f"{path}.ports[{i}]"
        name = p.get("name", "")
        if len(ports) > 1 and not name:
            out.append(errors.required(f"{pp}.name", ""))
        elif name:
            out += invalid_all(f"{pp}.name", name, v.is_dns1123_label(name))
            if name in names:
                out.append(errors.duplicate(f"{pp}.name", name))
            names.add(name)
        out += invalid_all(f"{pp}.port", p.get("port", 0), v.is_valid_port_num(p.get("port") or 0))
        if p.get("protocol") not in PROTOCOLS:
            out.append(errors.not_supported(f"{pp}.protocol", p.get("protocol", ""), PROTOCOLS))
    return out


class EndpointsStrategy(Strategy):
    allow_create_on_update = True  # as upstream
    kind, plural = "Endpoints", "endpoints"
    singular = "endpoints"
    short_names = ("ep",)
    columns = (NAME_COLUMN,
               Column("Endpoints", "string", "", "Endpoints of the service"),
               AGE_COLUMN)

    def default(self, obj: dict) -> None:
        for ss in obj.get("subsets") or []:
            for p in ss.get("ports") or []:
                set_default(p, "protocol", "TCP")

    def validate(self, obj: dict) -> list[FieldError]:
        out: list[FieldError] = []
        for i, ss in enumerate(obj.get("subsets") or []):
            out += _validate_subset(ss, f"subsets[{i}]")
        return out

    def table_row(self, obj: dict) -> list[Any]:
        return [meta(obj).get("name", ""), endpoints_cell(obj), age(obj)]
