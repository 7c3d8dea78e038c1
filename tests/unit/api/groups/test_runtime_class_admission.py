"""The RuntimeClass admission plugin's pieces: overheads compared as quantities, the
class' nodeSelector merged (a conflict refused with upstream's words), its tolerations
appended once. (tests/integration/test_runtime_class_api.py drives the plugin through
a real API server.)"""
import pytest

from pybernetes.admission.chain import Attributes
from pybernetes.admission.runtime_class import (_merge_node_selector, _merge_tolerations,
                                                same_resources)
from pybernetes.api.core.pods import PodStrategy
from pybernetes.machinery.errors import StatusError


def attrs(name: str = "p") -> Attributes:
    return Attributes("CREATE", PodStrategy(), "default", name, {"spec": {}}, None, None)


def test_overheads_compare_as_quantities() -> None:
    assert same_resources({"cpu": "250m", "memory": "1Gi"}, {"cpu": "0.25", "memory": "1024Mi"})
    assert not same_resources({"cpu": "250m"}, {"cpu": "250m", "memory": "1Gi"})
    assert not same_resources({"cpu": "250m"}, {"cpu": "1"})
    assert same_resources(None, {})


def test_node_selector_merged_and_conflicts_refused() -> None:
    spec: dict = {"nodeSelector": {"zone": "a"}}
    _merge_node_selector(attrs(), spec, {"runtime": "crun", "zone": "a"})
    assert spec["nodeSelector"] == {"zone": "a", "runtime": "crun"}
    with pytest.raises(StatusError) as e:
        _merge_node_selector(attrs("web"), {"nodeSelector": {"runtime": "runc"}},
                             {"runtime": "crun"})
    assert e.value.code == 403
    assert e.value.message == ('pods "web" is forbidden: conflict: runtimeClass.scheduling.'
                               'nodeSelector[runtime] = crun; pod.spec.nodeSelector[runtime] '
                               '= runc')
    empty: dict = {}
    _merge_node_selector(attrs(), empty, {})
    assert empty == {}   # nothing to add: no empty nodeSelector appears


def test_tolerations_appended_once() -> None:
    t = {"key": "sandbox", "operator": "Exists", "effect": "NoSchedule"}
    spec = {"tolerations": [dict(t)]}
    _merge_tolerations(spec, [t, {"key": "other", "operator": "Exists"}])
    assert spec["tolerations"] == [t, {"key": "other", "operator": "Exists"}]
