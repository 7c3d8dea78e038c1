import subprocess
import sys

import pytest

from pybernetes.apiserver.config import APIServerConfig
from pybernetes.cli import main as cli_main
from pybernetes.cli.apiserver import config_from_args

ROOT = __file__.rsplit("/tests/", 1)[0]


def _help(*args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "pybernetes.cli.main", *args, "--help"],
                         capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_top_level_help_lists_only_existing_subcommands():
    text = _help()
    assert "usage: pybernetes" in text
    assert "server" in text and "run a whole cluster on this machine" in text
    assert "apiserver" in text and "run the API server only" in text
    assert "examples:" in text and "export KUBECONFIG=" in text
    assert {"server", "apiserver"} <= set(cli_main.SUBCOMMANDS)
    for name in ("controller_manager", "scheduler", "kubelet"):
        assert (name.replace("_", "-") in text) == (name in cli_main.SUBCOMMANDS)
    assert "coming" not in text


def test_server_help_shows_every_flag_and_examples():
    text = _help("server")
    for flag in ("--data-dir", "--https-listen-port", "--bind-address", "--write-kubeconfig",
                 "--storage", "--etcd-endpoints", "--disable", "--log-level"):
        assert flag in text
    assert "default: 6443" in text and "admin.kubeconfig" in text
    assert "pybernetes server --write-kubeconfig" in text
    assert "--runtime" not in text and "--fake-nodes" not in text


def test_apiserver_help_shows_every_flag():
    text = _help("apiserver")
    for flag in ("--data-dir", "--bind-address", "--secure-port", "--storage",
                 "--etcd-endpoints", "--tls-cert-file", "--tls-private-key-file",
                 "--client-ca-file", "--service-cluster-ip-range",
                 "--service-node-port-range", "--log-level"):
        assert flag in text
    assert "10.43.0.0/16" in text and "30000-32767" in text


def test_no_subcommand_prints_usage_and_fails(capsys):
    assert cli_main.main([]) == 2
    assert "usage: pybernetes" in capsys.readouterr().err


def test_bad_flag_values_are_rejected(capsys):
    for argv in (["server", "--https-listen-port", "70000"],
                 ["server", "--storage", "mysql"],
                 ["apiserver", "--service-cluster-ip-range", "10.43.0.1/16"],
                 ["apiserver", "--service-node-port-range", "300-20"]):
        with pytest.raises(SystemExit) as e:
            cli_main.main(argv)
        assert e.value.code == 2
    assert "port out of range" in capsys.readouterr().err


def test_disable_apiserver_is_refused(tmp_path, capsys):
    assert cli_main.main(["server", "--data-dir", str(tmp_path), "--disable", "apiserver"]) == 2
    err = capsys.readouterr().err
    assert "the apiserver cannot be disabled" in err
    assert cli_main.main(["server", "--data-dir", str(tmp_path), "--disable", "frobnicator"]) == 2
    assert "unknown component" in capsys.readouterr().err
    assert not (tmp_path / "pki").exists()  # refused before doing anything


def test_apiserver_flags_become_config(tmp_path):
    parser = cli_main.build_parser()
    args = parser.parse_args([
        "apiserver", "--data-dir", str(tmp_path), "--secure-port", "7443",
        "--bind-address", "0.0.0.0", "--storage", "etcd",
        "--etcd-endpoints", "http://127.0.0.1:2379, http://127.0.0.1:22379",
        "--service-cluster-ip-range", "10.96.0.0/12", "--log-level", "debug"])
    config = config_from_args(args)
    assert isinstance(config, APIServerConfig)
    assert (config.secure_port, config.bind_address, config.storage) == (7443, "0.0.0.0", "etcd")
    assert config.etcd_endpoints == ["http://127.0.0.1:2379", "http://127.0.0.1:22379"]
    assert config.service_cluster_ip_range == "10.96.0.0/12"
    assert config.log_level == "debug"
    # no TLS flags: the data dir's PKI was created and is used
    pki = tmp_path / "pki"
    assert config.tls_cert_file == str(pki / "server.crt")
    assert config.tls_private_key_file == str(pki / "server.key")
    assert config.client_ca_file == str(pki / "ca.crt")
    assert (pki / "sa.key").exists()


def test_apiserver_tls_flags_must_pair(tmp_path):
    args = cli_main.build_parser().parse_args(
        ["apiserver", "--data-dir", str(tmp_path), "--tls-cert-file", "/x.crt"])
    with pytest.raises(SystemExit, match="must be given together"):
        config_from_args(args)


def test_unusable_data_dir_is_reported(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert cli_main.main(["server", "--data-dir", str(blocker / "sub")]) == 1
    assert f"cannot use data dir {blocker / 'sub'}" in capsys.readouterr().err


def test_url_host_for_bind_addresses():
    from pybernetes.cli.flags import url_host
    assert url_host("0.0.0.0") == "127.0.0.1"
    assert url_host("::") == "[::1]"
    assert url_host("::1") == "[::1]"
    assert url_host("192.0.2.1") == "192.0.2.1"
