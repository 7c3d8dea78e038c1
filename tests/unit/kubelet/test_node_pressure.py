"""A real node's pressure conditions, worded as upstream's kubelet reports them."""
from __future__ import annotations

from pybernetes.kubelet import machine
from pybernetes.kubelet.node_status import healthy_conditions


def by_type(conds: list[dict]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in conds}


def test_no_pressure_reads_healthy():
    assert by_type(healthy_conditions()) == {
        "MemoryPressure": ("False", "KubeletHasSufficientMemory"),
        "DiskPressure": ("False", "KubeletHasNoDiskPressure"),
        "PIDPressure": ("False", "KubeletHasSufficientPID"),
        "Ready": ("True", "KubeletReady")}


def test_memory_pressure_flips_only_its_condition_and_keeps_other_transition_times():
    before = healthy_conditions()
    for c in before:
        c["lastTransitionTime"] = "2020-01-01T00:00:00Z"
    after = healthy_conditions(before, {"MemoryPressure"})
    got = {c["type"]: c for c in after}
    assert (got["MemoryPressure"]["status"], got["MemoryPressure"]["reason"],
            got["MemoryPressure"]["message"]) == (
        "True", "KubeletHasInsufficientMemory", "kubelet has insufficient memory available")
    assert got["MemoryPressure"]["lastTransitionTime"] != "2020-01-01T00:00:00Z"
    assert got["DiskPressure"]["lastTransitionTime"] == "2020-01-01T00:00:00Z"
    assert got["Ready"]["status"] == "True"


def test_machine_readings(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 1000000 kB\nMemAvailable: 51200 kB\n")
    assert machine.available_memory(str(meminfo)) == 50 * 1024 * 1024  # under 100Mi
    proc = tmp_path / "proc"
    (proc / "sys" / "kernel").mkdir(parents=True)
    (proc / "sys" / "kernel" / "pid_max").write_text("20\n")
    for pid in range(19):
        (proc / str(pid + 1)).mkdir()
    assert machine.pid_free_fraction(str(proc)) < 0.10
    assert 0.0 <= machine.disk_free_fraction(str(tmp_path)) <= 1.0


def test_this_machine_is_not_under_pressure_or_says_why(tmp_path):
    cfg = machine.machine_node_config("n", str(tmp_path), "runc://test")
    assert cfg.pressure() <= {"MemoryPressure", "DiskPressure", "PIDPressure"}
