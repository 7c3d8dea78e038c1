"""gRPC probes: the gRPC health checking protocol (grpc.health.v1.Health/Check), as
upstream's prober speaks it — connect to podIP:port without TLS, ask for `service`,
SERVING is success, anything else a failure with upstream's wording.

The two messages are one field each, so machinery/protobuf's wire-format helpers
encode them instead of generated protobuf code; grpcio (already here for the etcd
client) carries the call, imported only when a gRPC probe first runs."""
from __future__ import annotations

import asyncio
import time
from typing import Any

from ..machinery import protobuf

CHECK_METHOD = "/grpc.health.v1.Health/Check"
# grpc.health.v1.HealthCheckResponse.ServingStatus
SERVING_STATUS = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}
SERVING = 1


def encode_request(service: str) -> bytes:
    """HealthCheckRequest{service = 1 (string)}; an empty service is an empty message."""
    return protobuf.encode_bytes_field(1, service.encode()) if service else b""


def decode_response(buf: bytes) -> int:
    """HealthCheckResponse's status (field 1, enum); unknown fields are skipped."""
    status = 0
    for number, wire, value in protobuf.iter_fields(buf):
        if number == 1 and wire == 0:
            status = value
    return status


def _go_code(code: Any) -> str:
    """grpc's NOT_FOUND as Go prints codes.NotFound."""
    return "".join(w.capitalize() for w in code.name.split("_"))


def _seconds(timeout: float) -> str:
    """A duration as Go's %v prints whole seconds (1s, 10s) or fractions (1.5s)."""
    return f"{timeout:g}s"


async def grpc_probe(host: str, port: int, service: str, timeout: float,
                     user_agent: str) -> tuple[bool, str]:
    """(healthy, message) after one Health/Check within `timeout` seconds overall."""
    import grpc
    from grpc import aio

    addr = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    deadline = time.monotonic() + timeout
    options = [("grpc.primary_user_agent", user_agent), ("grpc.enable_retries", 0)]
    async with aio.insecure_channel(addr, options=options) as channel:
        try:
            await asyncio.wait_for(channel.channel_ready(), timeout)
        except (asyncio.TimeoutError, TimeoutError):
            return False, (f'timeout: failed to connect service "{addr}" within '
                           f"{_seconds(timeout)}: context deadline exceeded")
        check = channel.unary_unary(CHECK_METHOD)   # bytes in, bytes out
        try:
            raw = await check(encode_request(service),
                              timeout=max(deadline - time.monotonic(), 0.001))
        except aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.UNIMPLEMENTED:
                return False, ("error: this server does not implement the grpc health protocol "
                               f"(grpc.health.v1.Health): {e.details()}")
            if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                return False, f"timeout: health rpc did not complete within {_seconds(timeout)}"
            return False, (f"error: health rpc probe failed: rpc error: code = "
                           f"{_go_code(e.code())} desc = {e.details()}")
    try:
        status = decode_response(raw)
    except protobuf.Malformed as e:
        return False, f"error: health rpc probe failed: {e}"
    if status != SERVING:
        return False, f'service unhealthy (responded with "{SERVING_STATUS.get(status, status)}")'
    return True, "service is healthy"
