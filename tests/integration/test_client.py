"""pybernetes.client against a real API server: REST calls and the server's Status as
StatusError, paginated lists, watches, informers (handlers, indexes, relist after 410,
an API server restart), event aggregation as `kubectl describe` shows it, and leader
election on a Lease (one leader, hand-over on release, on a dead holder, and
LeadershipLost when the server is gone)."""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

import pytest

from pybernetes.client.api import CONFIGMAPS, EVENTS, LEASES, NAMESPACES, PODS, APIClient
from pybernetes.client.events import EventRecorder
from pybernetes.client.informer import Informer, object_key
from pybernetes.client.leader_election import LeaderElector, LeadershipLost
from pybernetes.machinery.errors import StatusError
from tests.conftest import Cluster, Kubectl, kubectl_binary, start_cluster

REPO = Path(__file__).resolve().parents[2]
API_ONLY = ["--disable", "controller-manager", "--disable", "scheduler", "--disable", "kubelet"]


@pytest.fixture(scope="module")
def api_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """An API server alone: nothing else writes to (or garbage-collects) what we make."""
    c = start_cluster(tmp_path_factory.mktemp("client"), extra=API_ONLY)
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
async def client(api_cluster: Cluster) -> Any:
    c = await APIClient.from_kubeconfig(api_cluster.kubeconfig)
    try:
        yield c
    finally:
        await c.close()


async def eventually(check: Callable[[], Any], timeout: float = 10, what: str = "") -> Any:
    """Poll `check` (sync or async) until it returns something truthy, at most `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        got = check()
        if isinstance(got, Awaitable):
            got = await got
        if got:
            return got
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout}s: {what or check}")
        await asyncio.sleep(0.05)


async def make_namespace(client: APIClient, name: str) -> str:
    await client.create(NAMESPACES, {"metadata": {"name": name}})
    return name


def cm(name: str, ns: str, **data: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns}, "data": dict(data)}


def pod(name: str, ns: str, node: str = "", labels: dict | None = None,
        owner_uid: str = "") -> dict:
    spec: dict = {"containers": [{"name": "c", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    md: dict = {"name": name, "namespace": ns, "labels": labels or {}}
    if owner_uid:
        md["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                  "name": "owner", "uid": owner_uid}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": spec}


# -- REST calls ------------------------------------------------------------------------


async def test_crud_round_trip(client: APIClient) -> None:
    ns = await make_namespace(client, "crud")
    made = await client.create(CONFIGMAPS, cm("settings", ns, color="blue"))
    assert made["metadata"]["uid"] and made["data"] == {"color": "blue"}
    got = await client.get(CONFIGMAPS, "settings", ns)
    assert got["metadata"]["resourceVersion"] == made["metadata"]["resourceVersion"]
    got["data"]["size"] = "L"
    updated = await client.update(CONFIGMAPS, got)
    assert updated["data"] == {"color": "blue", "size": "L"}
    merged = await client.patch(CONFIGMAPS, "settings", {"data": {"color": "red"}}, ns)
    assert merged["data"]["color"] == "red"
    jsonp = await client.patch(CONFIGMAPS, "settings",
                               [{"op": "remove", "path": "/data/size"}], ns, patch_type="json")
    assert jsonp["data"] == {"color": "red"}
    smp = await client.patch(CONFIGMAPS, "settings", {"metadata": {"labels": {"a": "b"}}}, ns,
                             patch_type="strategic")
    assert smp["metadata"]["labels"] == {"a": "b"}
    dry = await client.create(CONFIGMAPS, cm("dry", ns), dry_run=True)
    assert dry["metadata"]["name"] == "dry"
    lst = await client.list(CONFIGMAPS, ns, label_selector="a=b")
    assert [o["metadata"]["name"] for o in lst["items"]] == ["settings"]
    await client.delete(CONFIGMAPS, "settings", ns)
    lst = await client.list(CONFIGMAPS, ns, field_selector="metadata.name=settings")
    assert lst["items"] == []


async def test_errors_are_the_servers_status(client: APIClient) -> None:
    ns = await make_namespace(client, "errors")
    with pytest.raises(StatusError) as e:
        await client.get(CONFIGMAPS, "missing", ns)
    assert (e.value.code, e.value.reason) == (404, "NotFound")
    assert e.value.message == 'configmaps "missing" not found'
    assert e.value.details == {"name": "missing", "kind": "configmaps"}

    first = await client.create(CONFIGMAPS, cm("twice", ns))
    with pytest.raises(StatusError) as e:
        await client.create(CONFIGMAPS, cm("twice", ns))
    assert (e.value.code, e.value.reason) == (409, "AlreadyExists")
    assert e.value.message == 'configmaps "twice" already exists'

    await client.patch(CONFIGMAPS, "twice", {"data": {"k": "v"}}, ns)
    with pytest.raises(StatusError) as e:  # a write from a stale read
        await client.update(CONFIGMAPS, first)
    assert (e.value.code, e.value.reason) == (409, "Conflict")
    assert "the object has been modified" in e.value.message

    with pytest.raises(StatusError) as e:
        await client.create(CONFIGMAPS, cm("Not_Valid", ns))
    assert (e.value.code, e.value.reason) == (422, "Invalid")
    assert e.value.message.startswith('ConfigMap "Not_Valid" is invalid')

    with pytest.raises(StatusError) as e:
        await client.delete(CONFIGMAPS, "twice", ns, preconditions={"uid": "not-the-uid"})
    assert e.value.code == 409

    with pytest.raises(StatusError) as e:
        await client.patch(CONFIGMAPS, "twice", {"data": "not a map"}, ns)
    assert 400 <= e.value.code < 500


async def test_list_all_walks_every_page(client: APIClient) -> None:
    ns = await make_namespace(client, "pages")
    for i in range(7):
        await client.create(CONFIGMAPS, cm(f"c{i}", ns))
    first = await client.list(CONFIGMAPS, ns, limit=2)
    assert len(first["items"]) == 2 and first["metadata"]["continue"]
    items, rv = await client.list_all(CONFIGMAPS, ns, page=2)
    names = [o["metadata"]["name"] for o in items]
    assert sorted(names) == [f"c{i}" for i in range(7)] and len(set(names)) == 7
    assert int(rv) >= max(int(o["metadata"]["resourceVersion"]) for o in items)
    items, _ = await client.list_all(CONFIGMAPS, ns, label_selector="nothing=here", page=2)
    assert items == []


async def test_watch_yields_changes_in_order(client: APIClient) -> None:
    ns = await make_namespace(client, "watching")
    _, rv = await client.list_all(CONFIGMAPS, ns)
    seen: list[tuple[str, str]] = []

    async def watch() -> None:
        async for typ, obj in client.watch(CONFIGMAPS, ns, rv, timeout_seconds=20):
            if typ == "BOOKMARK":
                continue
            seen.append((typ, obj["metadata"]["name"]))
            if typ == "DELETED":
                return

    task = asyncio.create_task(watch())
    await client.create(CONFIGMAPS, cm("w", ns))
    await client.patch(CONFIGMAPS, "w", {"data": {"x": "1"}}, ns)
    await client.delete(CONFIGMAPS, "w", ns)
    await asyncio.wait_for(task, 15)
    assert seen == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]


# -- informers -------------------------------------------------------------------------


class Recorder:
    """Handlers that write down what they were told."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def handlers(self) -> dict:
        return {"on_add": lambda o: self.events.append(("add", object_key(o))),
                "on_update": lambda old, new: self.events.append(("update", object_key(new))),
                "on_delete": lambda o: self.events.append(("delete", object_key(o)))}

    def of(self, key: str) -> list[str]:
        return [what for what, k in self.events if k == key]


def names(objs: list[dict]) -> set[str]:
    return {o["metadata"]["name"] for o in objs}


async def test_informer_handlers_and_indexes(client: APIClient) -> None:
    ns = await make_namespace(client, "informed")
    other = await make_namespace(client, "informed-other")
    await client.create(PODS, pod("early", ns, node="n1", labels={"app": "web"},
                                  owner_uid="uid-1"))
    await client.create(PODS, pod("elsewhere", other, node="n1", labels={"app": "db"}))
    inf = Informer(client, PODS)
    rec = Recorder()
    inf.add_handler(**rec.handlers())
    inf.add_index("app", lambda o: [(o["metadata"].get("labels") or {}).get("app", "")])
    await inf.start()
    try:
        await inf.wait_synced(20)
        # the initial list fires adds
        assert rec.of(f"{ns}/early") == ["add"] and rec.of(f"{other}/elsewhere") == ["add"]
        assert names(inf.list(ns)) == {"early"}
        assert names(inf.by_index("node", "n1")) == {"early", "elsewhere"}
        assert names(inf.by_index("owner-uid", "uid-1")) == {"early"}
        assert names(inf.by_index("app", "web")) == {"early"}
        uid = inf.get(ns, "early")["metadata"]["uid"]
        assert names(inf.by_index("uid", uid)) == {"early"}

        # a new pod, then it is bound (node index moves) and relabelled (custom index)
        await client.create(PODS, pod("late", ns, labels={"app": "web"}, owner_uid="uid-2"))
        await eventually(lambda: inf.get(ns, "late"), what="late pod cached")
        assert inf.by_index("node", "n2") == []
        await client.post(PODS, "late", "binding", {
            "apiVersion": "v1", "kind": "Binding", "metadata": {"name": "late"},
            "target": {"kind": "Node", "name": "n2"}}, namespace=ns)
        await eventually(lambda: names(inf.by_index("node", "n2")) == {"late"},
                         what="node index follows the binding")
        await client.patch(PODS, "late", {"metadata": {"labels": {"app": "api"},
                                                       "ownerReferences": None}}, ns)
        await eventually(lambda: names(inf.by_index("app", "api")) == {"late"},
                         what="custom index follows the label")
        assert names(inf.by_index("app", "web")) == {"early"}
        assert inf.by_index("owner-uid", "uid-2") == []
        assert "update" in rec.of(f"{ns}/late")

        # deletes leave no trace in any index
        await client.delete(PODS, "early", ns, grace_period_seconds=0)
        await eventually(lambda: rec.of(f"{ns}/early")[-1:] == ["delete"],
                         what="delete handler")
        assert inf.get(ns, "early") is None
        assert names(inf.by_index("node", "n1")) == {"elsewhere"}
        assert inf.by_index("owner-uid", "uid-1") == [] and inf.by_index("uid", uid) == []
        assert "uid-1" not in inf._indexes["owner-uid"] and uid not in inf._indexes["uid"]
        assert names(inf.list(ns)) == {"late"}

        # a handler added after sync is told about everything cached, as adds
        late = Recorder()
        inf.add_handler(**late.handlers())
        assert sorted(late.events) == sorted([("add", f"{ns}/late"), ("add", f"{other}/elsewhere")])
        # ... and then follows changes like the others
        await client.delete(PODS, "late", ns, grace_period_seconds=0)
        await eventually(lambda: late.of(f"{ns}/late")[-1:] == ["delete"], what="late delete")
        # an index added late covers what is already cached
        inf.add_index("by-name", lambda o: [o["metadata"]["name"]])
        assert names(inf.by_index("by-name", "elsewhere")) == {"elsewhere"}
    finally:
        await inf.stop()


async def test_informer_scoped_to_a_namespace_and_selector(client: APIClient) -> None:
    ns = await make_namespace(client, "scoped")
    await client.create(CONFIGMAPS, cm("in", ns))
    await client.create(CONFIGMAPS, {**cm("labelled", ns), "metadata": {
        "name": "labelled", "namespace": ns, "labels": {"pick": "me"}}})
    inf = Informer(client, CONFIGMAPS, namespace=ns, label_selector="pick=me")
    await inf.start()
    try:
        await inf.wait_synced(20)
        assert inf.keys() == [f"{ns}/labelled"]
        await client.patch(CONFIGMAPS, "in", {"metadata": {"labels": {"pick": "me"}}}, ns)
        await eventually(lambda: inf.get(ns, "in"), what="object entering the selection")
        await client.patch(CONFIGMAPS, "labelled", {"metadata": {"labels": None}}, ns)
        await eventually(lambda: inf.get(ns, "labelled") is None,
                         what="object leaving the selection")
    finally:
        await inf.stop()


def offline_changes(data_dir: Path, delete: list[str], create: list[str]) -> None:
    """While the server is down: change configmaps in `default` straight through the
    registry, then compact, so every older resourceVersion is gone for good."""
    from pybernetes.api.registry import registry
    from pybernetes.apiserver.bootstrap import SYSTEM
    from pybernetes.apiserver.config import APIServerConfig
    from pybernetes.apiserver.resource_store import Context
    from pybernetes.apiserver.state import APIState
    from pybernetes.storage.store import open_store

    async def run() -> None:
        store = open_store("sqlite", data_dir=str(data_dir))
        await store.start()
        api = APIState(APIServerConfig(data_dir=str(data_dir)), store, registry())
        await api.start()
        try:
            cms = api.resource("", "v1", "configmaps")
            for name in delete:
                await cms.delete("default", name, {}, Context(SYSTEM))
            for name in create:
                await cms.create("default", cm(name, "default"), Context(SYSTEM))
            await store.compact(await store.current_revision())
        finally:
            await api.stop()
            await store.close()

    asyncio.run(run())


async def test_informer_survives_restarts_and_relists_after_410(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pybernetes.client.informer")
    data_dir = tmp_path / "data"
    c = start_cluster(data_dir, extra=API_ONLY)
    client = await APIClient.from_kubeconfig(c.kubeconfig)
    inf = Informer(client, CONFIGMAPS, namespace="default")
    rec = Recorder()
    inf.add_handler(**rec.handlers())
    try:
        for name in ("stays", "goes-offline"):
            await client.create(CONFIGMAPS, cm(name, "default"))
        await inf.start()
        await inf.wait_synced(20)
        assert {"default/stays", "default/goes-offline"} <= set(inf.keys())

        # 1. a plain restart: the informer reconnects and catches up with new changes
        await asyncio.to_thread(c.stop)
        c = await asyncio.to_thread(start_cluster, data_dir, c.port, API_ONLY)
        await client.create(CONFIGMAPS, cm("after-restart", "default"))
        await eventually(lambda: inf.get("default", "after-restart"), 30,
                         "informer caught up after the restart")
        await client.patch(CONFIGMAPS, "stays", {"data": {"v": "2"}}, "default")
        await eventually(lambda: (inf.get("default", "stays").get("data") or {}).get("v"),
                         30, "update seen after the restart")

        # 2. changes made while the informer cannot watch, then history compacted away:
        # its watch is refused with 410, it lists again and reports what it missed
        caplog.clear()
        await asyncio.to_thread(c.stop)
        await asyncio.to_thread(offline_changes, data_dir, ["goes-offline"], ["born-offline"])
        c = await asyncio.to_thread(start_cluster, data_dir, c.port, API_ONLY)
        await eventually(lambda: rec.of("default/goes-offline")[-1:] == ["delete"], 30,
                         "deletion while away reported")
        await eventually(lambda: rec.of("default/born-offline") == ["add"], 30,
                         "creation while away reported")
        assert inf.get("default", "goes-offline") is None
        assert "resourceVersion too old, listing again" in caplog.text
        await client.create(CONFIGMAPS, cm("after-relist", "default"))
        await eventually(lambda: inf.get("default", "after-relist"), 30,
                         "watching again after the relist")
        assert rec.of("default/stays") == ["add", "update"]
    finally:
        await inf.stop()
        await client.close()
        await asyncio.to_thread(c.stop)


# -- events ----------------------------------------------------------------------------


async def test_repeated_events_aggregate_into_one(client: APIClient,
                                                  api_cluster: Cluster) -> None:
    ns = await make_namespace(client, "eventful")
    target = await client.create(PODS, pod("noisy", ns))
    rec = EventRecorder(client, "default-scheduler")
    for _ in range(5):
        rec.event(target, "Warning", "FailedScheduling", "0/0 nodes are available")
        await rec.flush()
    for _ in range(20):  # a burst: all in flight at once
        rec.event(target, "Warning", "FailedScheduling", "0/0 nodes are available")
    rec.event(target, "Normal", "Scheduled", "Successfully assigned to n1")
    await rec.flush(15)
    events = (await client.list(EVENTS, ns))["items"]
    failed = [e for e in events if e["reason"] == "FailedScheduling"]
    assert len(failed) == 1, failed
    assert failed[0]["count"] == 25
    assert failed[0]["involvedObject"]["uid"] == target["metadata"]["uid"]
    assert failed[0]["source"]["component"] == "default-scheduler"
    assert [e["count"] for e in events if e["reason"] == "Scheduled"] == [1]

    binary = kubectl_binary("1.33") or kubectl_binary()
    if binary is None:
        pytest.skip("no kubectl on this machine")
    out = await asyncio.to_thread(Kubectl(binary, api_cluster.kubeconfig), "describe", "pod",
                                  "noisy", "-n", ns)
    lines = [ln for ln in out.splitlines() if "FailedScheduling" in ln]
    assert len(lines) == 1 and "(x25 over" in lines[0], out
    assert "0/0 nodes are available" in lines[0]
    assert any("Scheduled" in ln and "Successfully assigned to n1" in ln
               for ln in out.splitlines())


# -- leader election -------------------------------------------------------------------

FAST = {"lease_duration": 4, "renew_deadline": 3, "retry_period": 0.5}


class Candidate:
    """A LeaderElector running in a task; `leading` is set while its work runs."""

    def __init__(self, client: APIClient, lease: str, identity: str, **timing: float):
        self.elector = LeaderElector(client, lease, identity, namespace="default",
                                     **(timing or FAST))
        self.identity = identity
        self.leading = asyncio.Event()
        self.work_stopped = asyncio.Event()
        self.task = asyncio.create_task(self.elector.run(self._lead))

    async def _lead(self) -> None:
        self.leading.set()
        try:
            await asyncio.Event().wait()
        finally:
            self.leading.clear()
            self.work_stopped.set()

    async def cancel(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def lease_spec(client: APIClient, name: str) -> dict:
    return (await client.get(LEASES, name, "default"))["spec"]


async def both_clients(api_cluster: Cluster) -> tuple[APIClient, APIClient]:
    return (await APIClient.from_kubeconfig(api_cluster.kubeconfig),
            await APIClient.from_kubeconfig(api_cluster.kubeconfig))


async def test_one_leader_and_release_hands_over(api_cluster: Cluster,
                                                 client: APIClient) -> None:
    ca, cb = await both_clients(api_cluster)
    # a long lease: a hand-over within the wait below can only come from the release
    slow = {"lease_duration": 60, "renew_deadline": 3, "retry_period": 0.5}
    a = Candidate(ca, "one-leader", "a", **slow)
    b = Candidate(cb, "one-leader", "b", **slow)
    try:
        await eventually(lambda: a.leading.is_set() or b.leading.is_set(), 15, "a leader")
        leader, standby = (a, b) if a.leading.is_set() else (b, a)
        for _ in range(20):  # a few renewals' worth: never two leaders
            assert leader.leading.is_set() and not standby.leading.is_set()
            await asyncio.sleep(0.1)
        spec = await lease_spec(client, "one-leader")
        assert spec["holderIdentity"] == leader.identity
        assert spec["leaseDurationSeconds"] == 60 and spec["leaseTransitions"] == 0

        await leader.cancel()  # a clean stop: work ends, then the Lease is released
        assert leader.work_stopped.is_set()
        await eventually(lambda: standby.leading.is_set(), 10, "standby takes over")
        spec = await lease_spec(client, "one-leader")
        assert spec["holderIdentity"] == standby.identity and spec["leaseTransitions"] == 1
    finally:
        for cand in (a, b):
            await cand.cancel()
        await ca.close()
        await cb.close()
    assert (await lease_spec(client, "one-leader"))["holderIdentity"] == ""


LEADER_SCRIPT = textwrap.dedent("""
    import asyncio, sys
    from pybernetes.client.api import APIClient
    from pybernetes.client.leader_election import LeaderElector

    async def main():
        client = await APIClient.from_kubeconfig(sys.argv[1])
        elector = LeaderElector(client, sys.argv[2], sys.argv[3], namespace="default",
                                lease_duration=4, renew_deadline=3, retry_period=0.5)
        async def lead():
            print("leading", flush=True)
            await asyncio.Event().wait()
        await elector.run(lead)

    asyncio.run(main())
""")


async def test_dead_leader_is_replaced_after_the_lease_runs_out(
        api_cluster: Cluster, client: APIClient) -> None:
    proc = subprocess.Popen([sys.executable, "-c", LEADER_SCRIPT, api_cluster.kubeconfig,
                             "dead-leader", "doomed"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    cb = await APIClient.from_kubeconfig(api_cluster.kubeconfig)
    b = None
    try:
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
        assert line.strip() == b"leading"
        b = Candidate(cb, "dead-leader", "survivor")
        for _ in range(10):  # the holder renews: the standby waits
            assert not b.leading.is_set()
            await asyncio.sleep(0.2)
        before = await lease_spec(client, "dead-leader")
        assert before["holderIdentity"] == "doomed"
        os.kill(proc.pid, signal.SIGKILL)  # no release: its Lease just stops being renewed
        proc.wait(5)
        await eventually(lambda: b.leading.is_set(), 4 + 0.5 + 5, "takeover after expiry")
        after = await lease_spec(client, "dead-leader")
        assert after["holderIdentity"] == "survivor"
        assert after["leaseTransitions"] == before["leaseTransitions"] + 1
        assert after["acquireTime"] > before["renewTime"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        if b:
            await b.cancel()
        await cb.close()


async def test_leader_that_cannot_renew_loses_leadership(tmp_path: Path) -> None:
    c = start_cluster(tmp_path / "data", extra=API_ONLY)
    client = await APIClient.from_kubeconfig(c.kubeconfig)
    try:
        a = Candidate(client, "cut-off", "cut-off-leader")
        await eventually(lambda: a.leading.is_set(), 15, "leading")
        await asyncio.to_thread(c.stop)  # the API server is gone
        with pytest.raises(LeadershipLost, match="failed to renew lease default/cut-off"):
            # within renew_deadline of the last renewal (+ one retry period)
            await asyncio.wait_for(asyncio.shield(a.task), 3 + 0.5 + 5)
        assert a.work_stopped.is_set() and not a.elector.is_leader
    finally:
        await client.close()
        c.stop()


async def test_leader_seeing_another_holder_stops_at_once(api_cluster: Cluster,
                                                          client: APIClient) -> None:
    """If the Lease is found in another's hands (we were too slow to renew, say), the
    work stops on that very renewal rather than at renew_deadline."""
    ca = await APIClient.from_kubeconfig(api_cluster.kubeconfig)
    slow = {"lease_duration": 60, "renew_deadline": 30, "retry_period": 0.5}
    a = Candidate(ca, "usurped", "old-leader", **slow)
    try:
        await eventually(lambda: a.leading.is_set(), 15, "leading")
        lease = await client.get(LEASES, "usurped", "default")
        lease["spec"]["holderIdentity"] = "usurper"
        await client.update(LEASES, lease)
        with pytest.raises(LeadershipLost, match="held by usurper"):
            await asyncio.wait_for(asyncio.shield(a.task), 10)
        assert a.work_stopped.is_set()
        assert (await lease_spec(client, "usurped"))["holderIdentity"] == "usurper"
    finally:
        await a.cancel()
        await ca.close()


async def test_standby_outlives_api_errors_while_waiting(tmp_path: Path) -> None:
    """A candidate waiting for the Lease keeps trying through an API server restart."""
    data_dir = tmp_path / "data"
    c = start_cluster(data_dir, extra=API_ONLY)
    client = await APIClient.from_kubeconfig(c.kubeconfig)
    holder = await APIClient.from_kubeconfig(c.kubeconfig)
    try:
        a = Candidate(holder, "patient", "holder")
        await eventually(lambda: a.leading.is_set(), 15, "leading")
        b = Candidate(client, "patient", "waiter")
        await asyncio.sleep(1)
        await asyncio.to_thread(c.stop)
        await a.cancel()        # the holder goes; its release cannot reach the server
        await asyncio.sleep(1)  # b's attempts fail meanwhile
        assert not b.task.done() and not b.leading.is_set()
        c = await asyncio.to_thread(start_cluster, data_dir, c.port, API_ONLY)
        await eventually(lambda: b.leading.is_set(), 20, "the waiter leads after the restart")
        assert (await lease_spec(client, "patient"))["holderIdentity"] == "waiter"
        await b.cancel()
    finally:
        await a.cancel()
        await client.close()
        await holder.close()
        c.stop()
