"""deploy/ and the Dockerfile, checked offline: hadolint, the Kubernetes schemas
(kubernetes-validate ships them), yamllint, and what the manifests promise (non-root,
read-only, probes that send SIP, a Service with UDP and TCP on one port, a secret
they all share) checked field by field, so that an edit that breaks it fails here."""

from __future__ import annotations

import asyncio
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from yamllint import linter
from yamllint.config import YamlLintConfig

from sipresponder.ops.cli import main
from sipresponder.ops.ping import parse_target, ping
from sipresponder.ops.serveconfig import SERVE_ENV
from sipresponder.scenario.loader import parse_scenario
from sipresponder.testing.api import Responder
from tests.conftest import require_binary

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
KNOWN_ENV = {o.env for o in SERVE_ENV} | {"SIPRESPONDER_PING_EXPECT"}
# The oldest Kubernetes with one port for UDP and TCP behind a LoadBalancer (GA in
# 1.26), and the newest schemas kubernetes-validate has.
K8S_VERSIONS = ["1.26.0", kubernetes_validate.latest_version()]


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "kubernetes" / name).read_text())


def require_tool(name: str) -> str:
    return require_binary(name, install="pip install -e '.[test]'")


def test_dockerfile_passes_hadolint(tmp_path: Path) -> None:
    hadolint = require_tool("hadolint")
    done = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    # ... and hadolint does look: an unpinned base and apt-get without a version fail.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian\nRUN apt-get install curl\n")
    done = subprocess.run([hadolint, str(bad)], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "DL3006" in done.stdout


def test_dockerfile_user_matches_the_manifests() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^USER 5060:5060$", dockerfile, re.MULTILINE)
    assert re.search(r"^HEALTHCHECK .*\n\s*CMD \[\"sipresponder\", \"ping\"", dockerfile,
                     re.MULTILINE)
    pod = load("deployment.yaml")["spec"]["template"]["spec"]["securityContext"]
    assert (pod["runAsUser"], pod["runAsGroup"]) == (5060, 5060)


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.name)
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_manifest_validates_against_the_kubernetes_schema(manifest: Path, version: str) -> None:
    docs = [d for d in yaml.safe_load_all(manifest.read_text()) if d]
    assert docs
    for doc in docs:
        # strict: a misspelt or misplaced field is an error, not silently ignored.
        kubernetes_validate.validate(doc, version, strict=True)


def test_schema_validation_catches_mistakes() -> None:
    deployment = load("deployment.yaml")
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"][
        "readOnlyRootFileSystem"] = True  # capital S: not a field
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)


def test_yaml_style() -> None:
    config = YamlLintConfig(file=str(ROOT / ".yamllint.yaml"))
    for path in [*MANIFESTS, DEPLOY / "compose.yaml"]:
        problems = list(linter.run(path.read_text(), config, str(path)))
        assert not problems, f"{path}: " + "; ".join(
            f"{p.line}:{p.column} {p.message}" for p in problems)


def test_deployment_is_locked_down_and_probed_over_sip() -> None:
    spec = load("deployment.yaml")["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    [container] = spec["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    for probe in ("readinessProbe", "livenessProbe"):
        command = container[probe]["exec"]["command"]
        assert command[:2] == ["sipresponder", "ping"]
        timeout = float(command[command.index("--timeout") + 1])
        assert timeout < container[probe]["timeoutSeconds"]  # ping reports before k8s gives up
    for kind in ("requests", "limits"):
        assert set(container["resources"][kind]) == {"cpu", "memory"}
    env = {e["name"]: e for e in container["env"]}
    assert set(env) <= KNOWN_ENV


def test_manifests_refer_to_each_other() -> None:
    deployment, service = load("deployment.yaml"), load("service.yaml")
    configmap, secret, hpa = load("configmap.yaml"), load("secret.yaml"), load("hpa.yaml")
    pod = deployment["spec"]["template"]
    [container] = pod["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}

    ref = env["SIPRESPONDER_TAG_SECRET"]["valueFrom"]["secretKeyRef"]
    assert ref["name"] == secret["metadata"]["name"]
    assert ref["key"] in secret["stringData"]

    [volume] = pod["spec"]["volumes"]
    [mount] = container["volumeMounts"]
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    assert mount["name"] == volume["name"]
    scenario = env["SIPRESPONDER_SCENARIO"]["value"]
    assert scenario.startswith(mount["mountPath"] + "/")
    assert scenario.rsplit("/", 1)[1] in configmap["data"]

    labels = pod["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1", "kind": "Deployment", "name": deployment["metadata"]["name"]}


def test_service_has_udp_and_tcp_on_one_port_and_affinity() -> None:
    spec = load("service.yaml")["spec"]
    container = load("deployment.yaml")["spec"]["template"]["spec"]["containers"][0]
    named = {p["name"]: (p["containerPort"], p["protocol"]) for p in container["ports"]}
    ports = {(p["port"], p["protocol"]): p["targetPort"] for p in spec["ports"]}
    assert set(ports) == {(5060, "UDP"), (5060, "TCP")}
    for (_, protocol), target in ports.items():
        assert named[target] == (5060, protocol)
    listen = next(e["value"] for e in container["env"] if e["name"] == "SIPRESPONDER_LISTEN")
    assert listen.split() == ["udp:0.0.0.0:5060", "tcp:0.0.0.0:5060"]
    assert spec["sessionAffinity"] == "ClientIP"


async def test_the_configmap_scenario_answers_the_probes() -> None:
    text = load("configmap.yaml")["data"]["scenario.toml"]
    async with Responder(parse_scenario(text, "configmap"),
                         ["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]) as responder:
        for transport in ("udp", "tcp"):
            port = responder.address(transport)[1]
            answer, _ = await ping(parse_target(f"{transport}:127.0.0.1:{port}"), timeout=5)
            assert answer.code == 200


# --- compose.yaml ------------------------------------------------------------------------

async def test_the_compose_client_commands_pass_against_the_mounted_scenario() -> None:
    """The sample client's pings, aimed at an in-process responder serving the
    scenario compose.yaml mounts: each must exit 0."""
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    env = compose["services"]["sipresponder"]["environment"]
    scenario = ROOT / "scenarios" / env["SIPRESPONDER_SCENARIO"].rsplit("/", 1)[1]
    [script] = compose["services"]["client"]["command"]
    commands = [shlex.split(c) for c in script.split("&&")]
    assert len(commands) >= 3
    async with Responder(scenario, ["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]) as responder:
        udp, tcp = responder.address("udp")[1], responder.address("tcp")[1]
        for argv in commands:
            assert argv[:2] == ["sipresponder", "ping"]
            port = tcp if "tcp" in argv else udp
            args = [a.replace("@sipresponder", f"@127.0.0.1:{port}")
                    .replace("sip:sipresponder", f"sip:127.0.0.1:{port}") for a in argv[2:]]
            assert await asyncio.to_thread(main, ["ping", *args]) == 0, argv


def test_compose_file_is_well_formed() -> None:
    """Checked by `docker compose config` where it exists; always by the checks below,
    which know what this file must do (no compose schema is available offline here)."""
    path = DEPLOY / "compose.yaml"
    compose = yaml.safe_load(path.read_text())
    assert set(compose) <= {"name", "services", "volumes", "networks", "configs", "secrets"}
    services = compose["services"]
    assert set(services) == {"sipresponder", "client"}
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        for item in service.get("environment", {}):
            assert item in KNOWN_ENV, f"{name}: unknown variable {item}"
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            assert (path.parent / source).resolve().is_dir(), f"{name}: no {source}"
        for port in service.get("ports", []):
            assert re.fullmatch(r"[0-9]+:[0-9]+/(udp|tcp)", port), port
    build = services["sipresponder"]["build"]
    assert (path.parent / build["context"] / "Dockerfile").is_file()
    health = services["sipresponder"]["healthcheck"]
    assert health["test"][:3] == ["CMD", "sipresponder", "ping"]
    depends = services["client"]["depends_on"]
    assert depends == {"sipresponder": {"condition": "service_healthy"}}
    env = services["sipresponder"]["environment"]
    scenario = env["SIPRESPONDER_SCENARIO"].rsplit("/", 1)[1]
    assert (ROOT / "scenarios" / scenario).is_file()

    for cli in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(cli[0]) is None:
            continue
        probe = subprocess.run([*cli, "version"], capture_output=True, timeout=30)
        if probe.returncode != 0:
            continue
        done = subprocess.run([*cli, "-f", str(path), "config", "--quiet"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        break
