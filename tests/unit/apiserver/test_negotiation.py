"""Accept negotiation: the answer for a header is the same on every request (answers are
remembered; refusals are raised every time)."""
from __future__ import annotations

import pytest

from pybernetes.apiserver.negotiation import JSON, YAML, Target, negotiate
from pybernetes.machinery.errors import StatusError

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io, application/json"


def test_the_same_header_gets_the_same_target() -> None:
    for _ in range(3):
        assert negotiate(TABLE) == Target("Table", JSON, "v1")
        assert negotiate("application/yaml") == Target("object", YAML)
        assert negotiate(None) == negotiate("") == Target()
    long = ", ".join(["text/html"] * 100) + ", application/json"
    assert negotiate(long) == Target()


def test_refusals_are_raised_every_time() -> None:
    for _ in range(3):
        with pytest.raises(StatusError) as e:
            negotiate("text/html")
        assert e.value.code == 406
        with pytest.raises(StatusError):
            negotiate("application/json;as=Bogus;v=v1;g=meta.k8s.io")
