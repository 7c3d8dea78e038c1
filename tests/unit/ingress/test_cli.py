"""`pybernetes ingress` refuses bad setups with one clear line, before touching anything."""
from __future__ import annotations

from pybernetes.admission.default_ingress_class import default_class
from pybernetes.cli import main as cli_main


def test_missing_nginx_names_the_package(tmp_path, capsys):
    code = cli_main.main(["ingress", "--kubeconfig", str(tmp_path / "k"),
                          "--nginx", str(tmp_path / "no-nginx")])
    err = capsys.readouterr().err
    assert code == 2 and "apt-get install nginx-light" in err and "Traceback" not in err


def test_bad_ports_and_addresses(tmp_path, capsys):
    for argv, text in ((["--http-port", "8080", "--https-port", "8080"], "must differ"),
                       (["--bind-address", "localhost"], "not an IP address"),
                       (["--workers", "0"], "--workers")):
        code = cli_main.main(["ingress", "--kubeconfig", str(tmp_path / "k"),
                              "--nginx", "/bin/true", "--state-dir", str(tmp_path), *argv])
        err = capsys.readouterr().err
        assert code == 2 and text in err, err


def test_help_explains_the_component(capsys):
    try:
        cli_main.main(["ingress", "--help"])
    except SystemExit:
        pass
    out = capsys.readouterr().out
    assert "--disable ingress" in out and "IngressClass" in out and "--http-port" in out


def test_default_ingress_class_is_the_newest_annotated_one():
    def ic(name: str, ts: str, default: bool) -> dict:
        ann = {"ingressclass.kubernetes.io/is-default-class": "true"} if default else {}
        return {"metadata": {"name": name, "creationTimestamp": ts, "annotations": ann}}
    classes = [ic("a", "2026-01-01T00:00:00Z", True), ic("b", "2026-02-01T00:00:00Z", True),
               ic("c", "2026-03-01T00:00:00Z", False)]
    assert default_class(classes)["metadata"]["name"] == "b"
    assert default_class(classes[2:]) is None
