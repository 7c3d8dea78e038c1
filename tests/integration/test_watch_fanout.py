"""Watch fan-out: an event is encoded once per representation and shared by every watcher
of that representation; watchers with selectors or other forms still see their own events."""
from __future__ import annotations

import json
import threading
import time

from pybernetes.apiserver.bootstrap import SYSTEM
from pybernetes.apiserver.negotiation import Target
from pybernetes.apiserver.resource_store import Context, ListOptions
from pybernetes.apiserver.state import APIState
from pybernetes.apiserver.watch import _Stream
from pybernetes.machinery.selectors import LabelSelector
from tests.conftest import Cluster

CMS = "/api/v1/namespaces/default/configmaps"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
PARTIAL = "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io"


def cm(name: str, labels: dict | None = None, value: str = "1") -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": labels or {}}, "data": {"v": value}}


class Watcher(threading.Thread):
    """One watch request, read to its end (timeoutSeconds) in a thread."""

    def __init__(self, cluster: Cluster, query: str, accept: str | None = None):
        super().__init__(daemon=True)
        self.cluster, self.query, self.accept = cluster, query, accept
        self.events: list[dict] = []
        self.status = 0

    def run(self) -> None:
        headers = {"Accept": self.accept} if self.accept else {}
        self.status, _, raw = self.cluster.request("GET", f"{CMS}?watch=1&{self.query}",
                                                   headers=headers, timeout=30)
        self.events = [json.loads(line) for line in raw.splitlines() if line.strip()]


def names(w: Watcher) -> list[tuple[str, str]]:
    return [(e["type"], e["object"]["metadata"]["name"]) for e in w.events]


def test_each_watcher_sees_its_events_in_its_form(cluster: Cluster) -> None:
    _, listed = cluster.json("GET", CMS)
    rv = listed["metadata"]["resourceVersion"]
    base = f"resourceVersion={rv}&timeoutSeconds=4"
    watchers = {
        "all": Watcher(cluster, base),
        "all2": Watcher(cluster, base),
        "team": Watcher(cluster, base + "&labelSelector=team%3Da"),
        "named": Watcher(cluster, base + "&fieldSelector=metadata.name%3Dtwo"),
        "table": Watcher(cluster, base, TABLE),
        "partial": Watcher(cluster, base, PARTIAL),
    }
    for w in watchers.values():
        w.start()
    time.sleep(1.0)  # every watch is open: the events below are live, not replayed
    assert cluster.json("POST", CMS, cm("one", {"team": "a"}))[0] == 201
    assert cluster.json("POST", CMS, cm("two"))[0] == 201
    patch = {"metadata": {"labels": {"team": "a"}}}
    assert cluster.json("PATCH", f"{CMS}/two", patch,
                        content_type="application/merge-patch+json")[0] == 200
    patch = {"metadata": {"labels": {"team": None}}}
    assert cluster.json("PATCH", f"{CMS}/one", patch,
                        content_type="application/merge-patch+json")[0] == 200
    assert cluster.json("DELETE", f"{CMS}/two")[0] == 200
    for w in watchers.values():
        w.join(30)
        assert not w.is_alive() and w.status == 200

    every = [("ADDED", "one"), ("ADDED", "two"), ("MODIFIED", "two"), ("MODIFIED", "one"),
             ("DELETED", "two")]
    assert names(watchers["all"]) == every
    assert watchers["all2"].events == watchers["all"].events
    # a selector turns entering into ADDED and leaving into DELETED
    assert names(watchers["team"]) == [("ADDED", "one"), ("ADDED", "two"), ("DELETED", "one"),
                                       ("DELETED", "two")]
    assert names(watchers["named"]) == [("ADDED", "two"), ("MODIFIED", "two"),
                                        ("DELETED", "two")]
    assert watchers["team"].events[1]["object"]["data"] == {"v": "1"}
    tables = watchers["table"].events
    assert [(e["type"], e["object"]["kind"]) for e in tables] == \
        [(t, "Table") for t, _ in every]
    assert [e["object"]["rows"][0]["cells"][0] for e in tables] == [n for _, n in every]
    partial = watchers["partial"].events
    assert [(e["type"], e["object"]["kind"], e["object"]["metadata"]["name"])
            for e in partial] == [(t, "PartialObjectMetadata", n) for t, n in every]
    assert all("data" not in e["object"] for e in partial)


async def test_an_event_is_encoded_once_per_representation(api: APIState) -> None:
    cms = api.resource("", "v1", "configmaps")
    sub = cms.cache.subscribe(cms.prefix("default"), cms.cache.revision)
    made = await cms.create("default", cm("shared", {"team": "a"}), Context(SYSTEM))
    await cms.cache.wait_until(int(made["metadata"]["resourceVersion"]))
    ev = sub.drain(10)[0]
    plain = [_Stream(None, cms, ListOptions(), Target(), "Metadata")  # type: ignore[arg-type]
             for _ in range(3)]
    lines = [s.shared(ev) for s in plain]
    assert lines[0] is lines[1] is lines[2]  # one encoding, shared
    assert json.loads(lines[0])["object"]["metadata"]["name"] == "shared"
    selected = _Stream(None, cms, ListOptions(label_selector=LabelSelector.parse("team=a")),
                       Target(), "Metadata")  # type: ignore[arg-type]
    assert selected.shared(ev) is lines[0]  # the same ADDED line: nothing to tell apart
    other = _Stream(None, cms, ListOptions(label_selector=LabelSelector.parse("team=b")),
                    Target(), "Metadata")  # type: ignore[arg-type]
    assert other.shared(ev) is None
    table = _Stream(None, cms, ListOptions(), Target("Table"), "None")  # type: ignore[arg-type]
    tline = table.shared(ev)
    assert tline is not lines[0] and json.loads(tline)["object"]["kind"] == "Table"
    assert table.shared(ev) is tline
    sub.close()


async def test_old_events_are_encoded_but_not_kept(api: APIState) -> None:
    cms = api.resource("", "v1", "configmaps")
    cms.cache.memo_window = 2
    start = cms.cache.revision
    for i in range(4):
        made = await cms.create("default", cm(f"c{i}"), Context(SYSTEM))
    await cms.cache.wait_until(int(made["metadata"]["resourceVersion"]))
    sub = cms.cache.subscribe(cms.prefix("default"), start)
    events = sub.drain(10)
    assert [e.memo is None for e in events] == [True, True, False, False]
    stream = _Stream(None, cms, ListOptions(), Target(), "Metadata")  # type: ignore[arg-type]
    lines = [stream.shared(e) for e in events]
    assert [json.loads(b)["object"]["metadata"]["name"] for b in lines] == \
        ["c0", "c1", "c2", "c3"]
    assert events[0].memo is None and len(events[3].memo) == 1
    sub.close()
