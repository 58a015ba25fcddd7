"""The deployment files speak the CLI's language: every `gatehouse` command they run parses with
the real parser, the ports they wire together agree, and every `GATEHOUSE_*` variable they set is
one Gatehouse reads. Nothing here runs Docker, Kubernetes or systemd; the sidecar's iptables
script runs for real in a throwaway network namespace.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from gateway.cli import parser
from gateway.policy import load_policy_text
from tests.conftest import missing

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
VARIABLE = re.compile(r"GATEHOUSE_[A-Z_]+")


def gatehouse(argv: list[str]) -> argparse.Namespace:
    """Parse a command line a deployment file runs, as `gatehouse` itself would."""
    assert argv and Path(argv[0]).name == "gatehouse", argv
    try:
        return parser().parse_args(argv[1:])
    except SystemExit:
        pytest.fail(f"`gatehouse` refuses the command line {argv}")


def port(host_port: str) -> int:
    return int(host_port.rpartition(":")[2])


def variables_read() -> set[str]:
    """The GATEHOUSE_* names Gatehouse's code looks up in its environment."""
    names: set[str] = set()
    for source in [*ROOT.glob("gateway/**/*.py"), *ROOT.glob("addons/**/*.py")]:
        names |= set(re.findall(r"environ(?:\.get\(|\[)\s*\"(GATEHOUSE_[A-Z_]+)\"",
                                source.read_text()))
    return names


def dockerfile() -> dict[str, list[str]]:
    """Instruction -> its arguments, continuation lines joined, in file order."""
    text = re.sub(r"\\\n\s*", " ", (DEPLOY / "Dockerfile").read_text())
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            instruction, _, rest = line.strip().partition(" ")
            found.setdefault(instruction.upper(), []).append(rest.strip())
    return found


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def k8s(kind: str) -> list[dict[str, Any]]:
    return [doc for path in sorted((DEPLOY / "k8s").glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text()) if doc["kind"] == kind]


def pod() -> dict[str, Any]:
    [deployment] = k8s("Deployment")
    return deployment["spec"]["template"]["spec"]


def containers(spec: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [c for c in spec["initContainers"] + spec["containers"] if c["name"] == name]
    return found


def test_every_file_parses() -> None:
    for path in [DEPLOY / "compose.yaml", *(DEPLOY / "k8s").glob("*.yaml")]:
        assert list(yaml.safe_load_all(path.read_text())), path
    assert dockerfile()["FROM"] == ["python:3.11-slim"]
    assert "[Service]" in (DEPLOY / "gatehouse.service").read_text()


def test_only_variables_gatehouse_reads_are_set() -> None:
    read = variables_read()
    assert {"GATEHOUSE_STATE", "GATEHOUSE_STORE", "GATEHOUSE_POLICY"} <= read
    for path in DEPLOY.rglob("*"):
        if path.is_file():
            unknown = set(VARIABLE.findall(path.read_text())) - read
            assert not unknown, f"{path.relative_to(ROOT)} sets {unknown}, which nothing reads"


def test_the_image_runs_unprivileged_with_the_model_and_a_health_check() -> None:
    image = dockerfile()
    [user] = image["USER"]
    assert user.partition(":")[0] not in ("root", "0")
    assert any("--require-hashes -r requirements/ner-model.txt" in run for run in image["RUN"])
    for copy in image["COPY"]:
        *sources, _ = copy.split()
        assert all((ROOT / s).exists() for s in sources), copy
    [entrypoint], [cmd] = image["ENTRYPOINT"], image["CMD"]
    args = gatehouse(json.loads(entrypoint) + json.loads(cmd))
    assert args.command == "run" and args.admin[0] == "127.0.0.1"
    assert image["EXPOSE"] == [str(args.listen[1])]
    [health] = image["HEALTHCHECK"]
    assert f"http://127.0.0.1:{args.admin[1]}/healthz" in health


def test_compose_runs_two_replicas_on_postgresql_and_an_agent_behind_them() -> None:
    services = compose()["services"]
    replicas = {name: s for name, s in services.items() if s.get("command", [None])[0] == "run"}
    assert len(replicas) == 2
    store = urlsplit(replicas["gateway-a"]["environment"]["GATEHOUSE_STORE"])
    assert store.scheme == "postgresql" and store.hostname in services
    agent = services["agent"]
    proxy = re.search(r"@(\w+):(\d+)", agent["command"][0])
    assert proxy is not None
    for name, service in replicas.items():
        assert service["entrypoint"][-1] == "gatehouse"  # `$@` is the command, after `exec`
        assert 'exec gatehouse "$$@"' in service["entrypoint"][2]
        args = gatehouse(["gatehouse", *service["command"]])
        assert args.store == "sqlite"  # the flag's default: the URL comes in GATEHOUSE_STORE
        assert service["environment"]["GATEHOUSE_STORE"].startswith("postgresql://")
        assert args.admin[0] == "127.0.0.1" and "ports" not in service
        assert args.listen[1] == int(proxy.group(2))
        assert proxy.group(1) in service["networks"]["agents"]["aliases"]
        assert agent["depends_on"][name]["condition"] == "service_healthy"
    assert compose()["networks"][agent["networks"][0]]["internal"] is True


def test_the_compose_setup_runs_commands_the_cli_accepts() -> None:
    script = (DEPLOY / "compose-setup.sh").read_text()
    commands = [shlex.split(line.partition("|")[0]) for line in script.splitlines()
                if line.strip().startswith("gatehouse ")]
    assert len(commands) == 2
    for argv in commands:
        assert gatehouse(argv).command == "token"
    assert "compose-setup.sh" in str(compose()["services"]["setup"]["entrypoint"])


def test_the_sidecar_listens_where_the_redirect_sends_and_serves_admin_to_the_service() -> None:
    spec = pod()
    sidecar = containers(spec, "gatehouse")
    args = gatehouse(["gatehouse", *sidecar["args"]])
    assert args.mode == "transparent"
    script = containers(spec, "gatehouse-redirect")["args"][0]
    assert f"--to-ports {args.listen[1]}" in script
    ports = {p["name"]: p["containerPort"] for p in sidecar["ports"]}
    assert ports == {"proxy": args.listen[1], "admin": args.admin[1]}
    assert sidecar["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    [service] = k8s("Service")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [{"name": "admin", "port": 8081, "targetPort": "admin"}]
    uid = sidecar["securityContext"]["runAsUser"]
    assert f"--uid-owner {uid}" in script  # the gateway's own calls are not redirected back
    assert containers(spec, "agent")["securityContext"]["runAsUser"] != uid


def test_the_sidecar_gets_the_ca_and_the_agent_only_its_certificate() -> None:
    spec = pod()
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounted = {m["subPath"] for m in containers(spec, "gatehouse")["volumeMounts"]
               if m["name"] == "gatehouse-ca"}
    assert mounted == {"mitmproxy-ca.pem", "mitmproxy-ca-cert.pem", "audit-signing.key"}
    [agent_mount] = containers(spec, "agent")["volumeMounts"]
    agent_secret = volumes[agent_mount["name"]]["secret"]
    assert agent_secret["secretName"] == volumes["gatehouse-ca"]["secret"]["secretName"]
    assert agent_secret["items"] == [{"key": "mitmproxy-ca-cert.pem", "path": "ca.pem"}]
    env = {e["name"]: e["value"] for e in containers(spec, "agent")["env"]}
    assert set(env.values()) == {f"{agent_mount['mountPath']}/ca.pem"}


def test_the_sidecar_policy_validates_and_names_the_agent_by_address() -> None:
    [config] = [c for c in k8s("ConfigMap") if c["metadata"]["name"] == "gatehouse-policy"]
    args = gatehouse(["gatehouse", *containers(pod(), "gatehouse")["args"]])
    mounted = [m for m in containers(pod(), "gatehouse")["volumeMounts"] if m["name"] == "policy"]
    assert args.policy.parent == Path(mounted[0]["mountPath"])
    policy = load_policy_text(config["data"][args.policy.name], "k8s/policy.yaml")
    assert any(agent.addresses for agent in policy.model.agents.values())


def test_the_systemd_unit_runs_a_command_the_cli_accepts() -> None:
    unit = (DEPLOY / "gatehouse.service").read_text()
    [exec_start] = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    args = gatehouse(shlex.split(exec_start.removeprefix("ExecStart=")))
    assert args.command == "run"
    assert args.admin[0] == "127.0.0.1"  # the admin API is never exposed beyond the host
    assert str(args.state) in unit  # the state directory is the one the unit may write


def test_the_redirect_script_applies_in_a_fresh_network_namespace() -> None:
    """The init container's script, run with real iptables where it cannot touch this host."""
    for tool in ("ip", "iptables", "ip6tables"):
        if shutil.which(tool) is None:
            missing(f"`{tool}` is not installed")
    if os.geteuid() != 0:
        missing("network namespaces need root (CAP_NET_ADMIN)")
    script = containers(pod(), "gatehouse-redirect")["args"][0]
    namespace = f"gh-redirect-{uuid.uuid4().hex[:8]}"
    made = subprocess.run(["ip", "netns", "add", namespace], capture_output=True, text=True)
    if made.returncode != 0:
        missing(f"cannot create a network namespace: {made.stderr.strip()}")
    try:
        inside = ["ip", "netns", "exec", namespace]
        ran = subprocess.run([*inside, "sh", "-c", script], capture_output=True, text=True,
                             timeout=30)
        assert ran.returncode == 0, ran.stderr
        nat = subprocess.run([*inside, "iptables", "-t", "nat", "-S"], capture_output=True,
                             text=True, check=True).stdout
        assert "-A OUTPUT -p tcp -j GATEHOUSE-OUT" in nat
        assert "--dports 80,443 -j REDIRECT --to-ports 15001" in nat
        rules = subprocess.run([*inside, "iptables", "-S", "OUTPUT"], capture_output=True,
                               text=True, check=True).stdout
        assert rules.strip().splitlines()[-1] == "-A OUTPUT -j REJECT --reject-with " \
                                                 "icmp-port-unreachable"
    finally:
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
