"""gRPC probes against a real grpcio server on loopback that speaks grpc.health.v1 with
protobuf's own message classes (built from the health.proto descriptor, so the probe's
hand encoding is checked against protobuf itself): outcomes and wording, timeouts,
and the probe workers' thresholds on top."""
from __future__ import annotations

import asyncio
import socket

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc import aio

from pybernetes.kubelet.grpc_probe import decode_response, encode_request
from pybernetes.kubelet.probes import (FAILURE, LIVENESS, READINESS, SUCCESS, ProbeManager,
                                       ProbeTarget, run_handler)

from .test_probes import POD, Recorder, wait_for


def health_messages() -> tuple[type, type]:
    """HealthCheckRequest / HealthCheckResponse as protoc would generate them."""
    f = descriptor_pb2.FileDescriptorProto(name="test_grpc_health_v1.proto",
                                           package="grpc.health.v1", syntax="proto3")
    req = f.message_type.add(name="HealthCheckRequest")
    req.field.add(name="service", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
                  label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    resp = f.message_type.add(name="HealthCheckResponse")
    enum = resp.enum_type.add(name="ServingStatus")
    for i, name in enumerate(("UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN")):
        enum.value.add(name=name, number=i)
    resp.field.add(name="status", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_ENUM,
                   type_name=".grpc.health.v1.HealthCheckResponse.ServingStatus",
                   label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return (message_factory.GetMessageClass(pool.FindMessageTypeByName(
                "grpc.health.v1.HealthCheckRequest")),
            message_factory.GetMessageClass(pool.FindMessageTypeByName(
                "grpc.health.v1.HealthCheckResponse")))


Request, Response = health_messages()
SERVING, NOT_SERVING = 1, 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HealthServer:
    """grpc.health.v1.Health/Check from a status table (as grpc's own HealthServicer:
    an unknown service is NOT_FOUND); "slow" answers after 3 s."""

    def __init__(self, health: bool = True):
        self.statuses = {"": SERVING, "slow": SERVING}
        self.seen: list[tuple[str, str]] = []    # (service asked, user agent)
        self.health = health

    async def check(self, request, context):
        agent = dict(context.invocation_metadata()).get("user-agent", "")
        self.seen.append((request.service, agent))
        if request.service == "slow":
            await asyncio.sleep(3)
        if request.service not in self.statuses:
            await context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        return Response(status=self.statuses[request.service])

    async def start(self) -> "HealthServer":
        self.server = aio.server()
        if self.health:
            handler = grpc.unary_unary_rpc_method_handler(
                self.check, request_deserializer=Request.FromString,
                response_serializer=Response.SerializeToString)
            self.server.add_generic_rpc_handlers(
                (grpc.method_handlers_generic_handler("grpc.health.v1.Health",
                                                      {"Check": handler}),))
        self.port = free_port()
        self.server.add_insecure_port(f"127.0.0.1:{self.port}")
        await self.server.start()
        return self


@pytest.fixture
async def health():
    s = await HealthServer().start()
    yield s
    await s.server.stop(None)


def target() -> ProbeTarget:
    return ProbeTarget(pod_ip="127.0.0.1", container_id="c1", ports=[])


def grpc_probe(port: int, service: str | None = None, **fields) -> dict:
    handler = {"port": port} if service is None else {"port": port, "service": service}
    return {"grpc": handler, **fields}


def test_messages_match_protobuf():
    for service in ("", "a", "x" * 300, "grpc.health.v1.Health"):
        assert encode_request(service) == Request(service=service).SerializeToString()
    for status in range(4):
        assert decode_response(Response(status=status).SerializeToString()) == status


async def test_serving_is_success_anything_else_failure(health: HealthServer):
    out = await run_handler(grpc_probe(health.port), target())
    assert (out.result, out.output) == (SUCCESS, "service is healthy")
    assert health.seen[-1][0] == ""
    assert health.seen[-1][1].startswith("kube-probe/1.33")

    health.statuses["db"] = NOT_SERVING
    out = await run_handler(grpc_probe(health.port, "db"), target())
    assert (out.result, out.output) == (FAILURE, 'service unhealthy (responded with '
                                                 '"NOT_SERVING")')
    assert health.seen[-1][0] == "db"

    out = await run_handler(grpc_probe(health.port, "nope"), target())
    assert (out.result, out.output) == (FAILURE, "error: health rpc probe failed: rpc error: "
                                                 "code = NotFound desc = unknown service")


async def test_no_health_service_no_server_and_slow_answers():
    bare = await HealthServer(health=False).start()
    try:
        out = await run_handler(grpc_probe(bare.port), target())
        assert out.result == FAILURE
        assert out.output.startswith("error: this server does not implement the grpc health "
                                     "protocol (grpc.health.v1.Health): ")
    finally:
        await bare.server.stop(None)

    port = free_port()   # nothing listens: the connection never becomes ready
    out = await run_handler(grpc_probe(port, timeoutSeconds=1), target())
    assert (out.result, out.output) == (FAILURE, f'timeout: failed to connect service '
                                                 f'"127.0.0.1:{port}" within 1s: context '
                                                 "deadline exceeded")


async def test_timeout_seconds_bounds_the_call(health: HealthServer):
    out = await run_handler(grpc_probe(health.port, "slow", timeoutSeconds=1), target())
    assert (out.result, out.output) == (FAILURE, "timeout: health rpc did not complete "
                                                 "within 1s")


async def test_workers_apply_thresholds_to_grpc_results(health: HealthServer):
    rec = Recorder()
    mgr = ProbeManager(POD, on_change=rec.change, on_event=rec.event)
    health.statuses["app"] = SERVING
    c = {"name": "app",
         "livenessProbe": grpc_probe(health.port, "app", periodSeconds=0.05,
                                     failureThreshold=3),
         "readinessProbe": grpc_probe(health.port, periodSeconds=0.05, successThreshold=2)}
    mgr.add_container(c, target())
    try:
        await wait_for(lambda: mgr.ready("app"))
        assert mgr.live("app")
        assert [(ch.kind, ch.result) for ch in rec.changes] == [(READINESS, SUCCESS)]
        health.statuses["app"] = NOT_SERVING
        await wait_for(lambda: any(ch.kind == LIVENESS for ch in rec.changes))
        failed = [ch for ch in rec.changes if ch.kind == LIVENESS]
        assert [(ch.result, ch.grace_period) for ch in failed] == [(FAILURE, 45)]
        unhealthy = [m for _, r, m in rec.events if r == "Unhealthy"]
        assert unhealthy == ['Liveness probe failed: service unhealthy (responded with '
                             '"NOT_SERVING")'] * 3
    finally:
        await mgr.close()
