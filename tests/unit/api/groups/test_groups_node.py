"""node.k8s.io/v1 RuntimeClass: defaults, validation and table, as upstream's."""
from pybernetes.api.node import RuntimeClassStrategy


def fields(errs) -> list[tuple[str, str]]:
    return [(e.field, e.type) for e in errs]


def rc(**extra) -> dict:
    return {"metadata": {"name": "crun"}, "handler": "crun", **extra}


def test_a_valid_class_and_its_defaults() -> None:
    s = RuntimeClassStrategy()
    obj = rc(overhead={"podFixed": {"cpu": "0.5", "memory": "1024Mi"}},
             scheduling={"nodeSelector": {"runtime": "crun"},
                         "tolerations": [{"key": "k", "operator": "Exists"}]})
    s.default(obj)
    assert obj["overhead"]["podFixed"] == {"cpu": "500m", "memory": "1Gi"}
    assert s.validate(obj) == []
    assert (s.namespaced, s.short_names, s.plural) == (False, (), "runtimeclasses")
    assert [c.name for c in s.columns] == ["Name", "Handler", "Age"]


def test_handler_must_be_a_dns_label() -> None:
    s = RuntimeClassStrategy()
    for bad in ("", "Upper", "with.dot", "x" * 64):
        errs = s.validate(rc(handler=bad))
        assert errs and {e.field for e in errs} == {"handler"}, bad
    assert "must not contain dots" in s.validate(rc(handler="a.b"))[0].detail
    assert s.validate({"metadata": {"name": "x"}})[0].field == "handler"   # missing


def test_overhead_and_scheduling_checked_as_upstream() -> None:
    s = RuntimeClassStrategy()
    errs = s.validate(rc(overhead={"podFixed": {"cpu": "-1", "memory": "lots"}},
                         scheduling={"nodeSelector": {"a/b/c": "v"},
                                     "tolerations": [{"operator": "Equal", "value": "x"},
                                                     {"key": "k", "effect": "Sometimes"}]}))
    assert sorted(e.field for e in errs) == [
        "overhead.limits[cpu]", "overhead.limits[memory]", "scheduling.nodeSelector",
        "scheduling.tolerations[0].operator", "scheduling.tolerations[1].effect"]


def test_handler_is_immutable_but_the_rest_may_change() -> None:
    s = RuntimeClassStrategy()
    old = rc()
    assert s.validate_update(rc(overhead={"podFixed": {"cpu": "1"}}), old) == []
    errs = s.validate_update(rc(handler="runc"), old)
    assert fields(errs) == [("handler", "FieldValueInvalid")]
    assert errs[0].detail == "field is immutable"
