"""The container image, built and run for real (marker `docker`).

No image registry may be reachable (CI's is not), so `FROM python:...` cannot be
pulled: the tests build a stand-in base once with mmdebstrap (Debian bookworm with
python3, venv and pip), `docker import` it, and keep it for the next runs. Then they
build the image on it with `--build-arg BASE`, run it on free loopback ports with a
scenario mounted from the host, and check OPTIONS -> 200 from outside (UDP, TCP,
TLS), the HEALTHCHECK, the non-root user and a fast, clean `docker stop`; and run
deploy/compose.yaml on that image.

They start `dockerd` when none runs (as root; it is left running for later runs),
and skip, saying why, only when no engine can start. An engine that runs but an
image that does not build or work is a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from sipresponder.ops.serveconfig import with_tag_secret
from sipresponder.scenario.loader import parse_scenario
from sipresponder.testing.api import Responder
from tests.sipclient import make_request, udp_exchange

ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = os.environ.get("SIPRESPONDER_TEST_BASE", "local/bookworm-python")
# The build stage's base: the same plus a C compiler and the Python headers, so that
# the compiled request path is built without apt inside the build (the runtime base
# stays without them: the image must ship no compiler).
BUILD_BASE_IMAGE = os.environ.get("SIPRESPONDER_TEST_BUILD_BASE", "local/bookworm-python-build")
IMAGE_TAG = "sipresponder-test:latest"
BASE_PACKAGES = "python3,python3-venv,python3-pip"
BUILD_PACKAGES = BASE_PACKAGES + ",gcc,libc6-dev,python3-dev"
# Time-outs for steps that fetch from package registries (slow the first time).
BASE_BUILD_TIMEOUT, IMAGE_BUILD_TIMEOUT = 900, 900
FIGURES: dict[str, float] = {}  # measured here, printed at the end of the module

pytestmark = [pytest.mark.docker, pytest.mark.timeout(2400)]


def docker(*args: str, timeout: float = 60, check: bool = True,
           **kwargs) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *args], capture_output=True, text=True,
                            timeout=timeout, **kwargs)
    if check and result.returncode != 0:
        pytest.fail(f"docker {' '.join(args)} exited {result.returncode}:\n"
                    f"{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return result


def _engine_answers() -> bool:
    try:
        return docker("info", timeout=20, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _start_dockerd() -> str | None:
    """Start dockerd in the background; None once it answers, else why not."""
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        return "docker is installed but dockerd is not (apt-get install docker.io)"
    if os.geteuid() != 0:
        return "no Docker engine runs and only root can start dockerd"
    log = Path(tempfile.gettempdir()) / "sipresponder-test-dockerd.log"
    with open(log, "ab") as out:
        # A session of its own: the daemon outlives this test run, for the next ones.
        proc = subprocess.Popen([dockerd], stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if _engine_answers():
            return None
        if proc.poll() is not None:
            break
        time.sleep(0.5)  # poll the daemon's socket: dockerd gives no readiness signal
    tail = log.read_text(errors="replace")[-1500:]
    if proc.poll() is None:
        proc.terminate()
    return f"dockerd did not come up within 60 s; its log ({log}) ends:\n{tail}"


@pytest.fixture(scope="module")
def engine() -> None:
    if shutil.which("docker") is None:
        pytest.skip("docker is not installed (apt-get install docker.io)")
    if not _engine_answers():
        why = _start_dockerd()
        if why is not None:
            pytest.skip(f"no container engine can start here: {why}")


@contextlib.contextmanager
def _lock(name: str) -> Iterator[None]:
    """One builder at a time across concurrent test runs on this machine."""
    import fcntl  # POSIX only, like dockerd; imported here so the module collects anywhere

    with open(Path(tempfile.gettempdir()) / name, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _image_exists(name: str) -> bool:
    return docker("image", "inspect", name, check=False).returncode == 0


def _strap(name: str, packages: str) -> str:
    """A Debian bookworm image with ``packages``, made once with mmdebstrap."""
    with _lock("sipresponder-test-base.lock"):
        if _image_exists(name):
            return name
        if shutil.which("mmdebstrap") is None:
            message = f"{name} is missing and mmdebstrap is not installed " \
                      "(apt-get install mmdebstrap)"
            if os.environ.get("CI") == "true":
                pytest.fail(message)
            pytest.skip(message)
        started = time.monotonic()
        with tempfile.TemporaryFile() as errors:
            strap = subprocess.Popen(
                ["mmdebstrap", "--variant=apt", f"--include={packages}", "bookworm", "-"],
                stdout=subprocess.PIPE, stderr=errors)
            assert strap.stdout is not None
            try:
                imported = subprocess.run(["docker", "import", "-", name],
                                          stdin=strap.stdout, capture_output=True,
                                          timeout=BASE_BUILD_TIMEOUT)
            finally:
                strap.stdout.close()
                strap.wait(timeout=60)
            errors.seek(0)
            log = errors.read().decode(errors="replace")[-3000:]
        if strap.returncode != 0 or imported.returncode != 0:
            pytest.fail(f"building {name} failed: mmdebstrap exited {strap.returncode}, "
                        f"docker import {imported.returncode}:\n{log}\n"
                        f"{imported.stderr.decode(errors='replace')}")
        FIGURES[f"{name} build s"] = time.monotonic() - started
        return name


@pytest.fixture(scope="module")
def base_image(engine: None) -> str:
    return _strap(BASE_IMAGE, BASE_PACKAGES)


@pytest.fixture(scope="module")
def build_base_image(engine: None) -> str:
    return _strap(BUILD_BASE_IMAGE, BUILD_PACKAGES)


def _build_context(into: Path) -> list[str]:
    """A copy of what the Dockerfile needs, plus this machine's pip settings for a build
    behind a proxy (never committed: a temporary context). Returns extra build args."""
    for name in ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, into / name)
    for name in ("scenarios", "sipresponder"):
        shutil.copytree(ROOT / name, into / name, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    # The CA bundle pip trusts here: on a machine behind a TLS-intercepting proxy it
    # holds the proxy's CA, elsewhere it is the ordinary public set.
    for candidate in (os.environ.get("PIP_CERT"), os.environ.get("SSL_CERT_FILE"),
                      "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            shutil.copy(candidate, into / "build-ca.pem")
            break
    args = []
    index = os.environ.get("PIP_INDEX_URL", "")
    if index.startswith(("http://", "https://")):  # a file:// index is not in the build
        args += ["--build-arg", f"PIP_INDEX_URL={index}"]
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy",
                 "no_proxy"):
        if os.environ.get(name):  # Docker's predefined build arguments
            args += ["--build-arg", f"{name}={os.environ[name]}"]
    return args


@pytest.fixture(scope="module")
def image(base_image: str, build_base_image: str) -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        context = Path(tmp) / "context"
        context.mkdir()
        extra = _build_context(context)
        iid = Path(tmp) / "iid"
        previous = docker("image", "inspect", "--format", "{{.Id}}", IMAGE_TAG, check=False)
        started = time.monotonic()
        # --network host: the build reaches the package index as this machine does.
        # The image is then used by its ID, so a concurrent run's build cannot swap it.
        docker("build", "--network", "host", "--build-arg", f"BASE={base_image}",
               "--build-arg", f"BUILD_BASE={build_base_image}", *extra, "--iidfile", str(iid), "-t", IMAGE_TAG, str(context),
               timeout=IMAGE_BUILD_TIMEOUT)
        FIGURES["image build s"] = time.monotonic() - started
        image_id = iid.read_text().strip()
    old = previous.stdout.strip()
    if previous.returncode == 0 and old != image_id:  # do not pile up one image per run
        docker("rmi", old, check=False)
    yield image_id
    if FIGURES:
        print("\nmeasured: " + ", ".join(f"{k} {v:.2f}" for k, v in FIGURES.items()))


def _free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (the container uses the host's)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise AssertionError("no port free for both UDP and TCP")


SCENARIO = """\
[settings]
server = "mounted-scenario"

[[rule]]
name = "busy"
match = { user = "busy" }
code = 486

[[rule]]
name = "options"
match = { method = "OPTIONS" }
code = 200
"""


TAG_SECRET = "docker-test-secret"


async def _to_from_a_local_replica(request: bytes) -> str | None:
    scenario = with_tag_secret(parse_scenario(SCENARIO, "local"), TAG_SECRET)
    async with Responder(scenario, ["udp:127.0.0.1:0"]) as local:
        [response] = await udp_exchange(local.address()[1], request)
    return response.get("To")


class HealthEvents:
    """`docker events` for one container's health, read on a thread: waiting for
    "healthy" is waiting for Docker to say so, not sleeping and hoping."""

    def __init__(self, name: str) -> None:
        self.proc = subprocess.Popen(
            ["docker", "events", "--since", f"{time.time() - 1:.3f}",  # none missed
             "--filter", f"container={name}",
             "--filter", "event=health_status", "--filter", "event=die",
             "--format", "{{.Status}}"],
            stdout=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())

    def wait_healthy(self, timeout: float) -> float:
        started = time.monotonic()
        while True:
            remaining = started + timeout - time.monotonic()
            try:
                status = self.lines.get(timeout=max(remaining, 0.01))
            except queue.Empty:
                raise AssertionError(f"not healthy within {timeout} s") from None
            assert status != "die", "the container died before it was healthy"
            if status == "health_status: healthy":
                return time.monotonic() - started

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def ping(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sipresponder", "ping", "--timeout", "5", *args],
                          capture_output=True, text=True, timeout=30)


def test_image_facts(image: str) -> None:
    [info] = json.loads(docker("image", "inspect", image).stdout)
    config = info["Config"]
    assert config["User"] == "5060:5060"
    assert set(config["ExposedPorts"]) == {"5060/udp", "5060/tcp", "5061/tcp", "8080/tcp"}
    assert config["Entrypoint"] == ["sipresponder"]
    assert config["Cmd"] == ["serve"]
    assert config["Healthcheck"]["Test"][:3] == ["CMD", "sipresponder", "ping"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["SIPRESPONDER_SCENARIO"] == "/scenarios/default.toml"
    # Only the runtime stage's layers: the build sources and the CA bundle stay behind.
    listing = docker("run", "--rm", "--network", "none", "--entrypoint", "sh", image, "-c",
                     "ls /src /opt/sipresponder/bin/pip 2>&1; ls /scenarios").stdout
    assert "No such file" in listing and "build-ca.pem" not in listing
    assert "default.toml" in listing
    # The compiled request path was built in the build stage; no compiler came along.
    version = docker("run", "--rm", "--network", "none", image, "--version").stdout
    assert "request path: compiled" in version, version
    compilers = docker("run", "--rm", "--network", "none", "--entrypoint", "sh", image, "-c",
                       "command -v cc gcc clang || echo none").stdout
    assert compilers.strip() == "none", compilers
    base_size = json.loads(docker("image", "inspect", BASE_IMAGE).stdout)[0]["Size"]
    FIGURES["image MB"] = info["Size"] / 1e6
    assert info["Size"] - base_size < 80e6, "more than the venv was added to the base"


def _options_over_tls(port: int) -> bytes:
    """One OPTIONS over TLS (the container's lab certificate: not verified) and the
    head of its response."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw) as tls:
        tls.sendall(make_request("OPTIONS", f"sip:127.0.0.1:{port}", transport="TLS"))
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = tls.recv(65536)
            assert chunk, f"connection closed after {data!r}"
            data += chunk
    return data


def test_container_answers_is_healthy_and_stops_fast(image: str) -> None:
    port, name = _free_port(), f"sipresponder-test-{uuid.uuid4().hex[:12]}"
    tls_port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        scenarios = Path(tmp) / "scenarios"
        scenarios.mkdir()
        (scenarios / "test.toml").write_text(SCENARIO)
        scenarios.chmod(0o755)  # read by the container's uid 5060
        (scenarios / "test.toml").chmod(0o644)
        events = HealthEvents(name)
        try:
            docker(
                "run", "--detach", "--name", name, "--network", "host",
                # What the Kubernetes manifests ask for: read-only root, no capabilities.
                "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
                # The one writable place: SIPRESPONDER_TLS_DIR, for the lab certificate.
                "--tmpfs", "/tmp",
                "--volume", f"{scenarios}:/scenarios:ro",
                "--env", "SIPRESPONDER_SCENARIO=/scenarios/test.toml",
                "--env", f"SIPRESPONDER_LISTEN=udp:127.0.0.1:{port},tcp:127.0.0.1:{port}"
                f",tls:127.0.0.1:{tls_port}",
                "--env", f"SIPRESPONDER_TAG_SECRET={TAG_SECRET}",
                # The image's check, run every second instead of every 10 s.
                "--health-interval", "1s",
                image)
            try:
                FIGURES["healthy after s"] = events.wait_healthy(60)
            except AssertionError as exc:
                logs = docker("logs", name, check=False)
                pytest.fail(f"{exc}\n{logs.stdout}{logs.stderr}")

            for target in (f"udp:127.0.0.1:{port}", f"tcp:127.0.0.1:{port}"):
                done = ping(target)
                assert done.returncode == 0, done.stderr
                assert done.stdout.startswith(f"SIP/2.0 200 OK  ({target}, ")
            assert _options_over_tls(tls_port).startswith(b"SIP/2.0 200 OK\r\n")
            busy = ping("--expect", "486", f"sip:busy@127.0.0.1:{port}")
            assert busy.returncode == 0, busy.stderr  # the mounted scenario answers
            request = make_request("OPTIONS", "sip:x@127.0.0.1")
            [response] = asyncio.run(udp_exchange(port, request))
            assert (response.code, response.get("Server")) == (200, "mounted-scenario")
            # The tag secret came through the environment: a responder here with the
            # same secret gives the same To tag (another replica, another interpreter).
            assert response.get("To") == asyncio.run(_to_from_a_local_replica(request))

            assert docker("exec", name, "id", "-u").stdout.strip() == "5060"
            started = time.monotonic()
            docker("stop", "--time", "10", name)
            FIGURES["docker stop s"] = time.monotonic() - started
            assert FIGURES["docker stop s"] < 3
            state = json.loads(docker("inspect", name).stdout)[0]["State"]
            assert (state["ExitCode"], state["OOMKilled"]) == (0, False)
            assert "shutting down" in docker("logs", name).stderr
        finally:
            events.close()
            docker("rm", "--force", name, check=False)


def _compose_cli() -> list[str] | None:
    for cli in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(cli[0]) is None:
            continue
        if subprocess.run([*cli, "version"], capture_output=True, timeout=30).returncode == 0:
            return cli
    return None


def test_compose_example_runs_its_client_once_the_responder_is_healthy(image: str) -> None:
    """deploy/compose.yaml as written, but on the image built here and without its
    published host ports (tests use no fixed ports): the client's pings must pass."""
    cli = _compose_cli()
    if cli is None:
        pytest.skip("neither `docker compose` nor docker-compose is installed "
                    "(apt-get install docker-compose)")
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    suffix = uuid.uuid4().hex[:12]
    tag, project = f"sipresponder-test:compose-{suffix}", f"sipresponder-test-{suffix}"
    for service in compose["services"].values():
        service["image"] = tag
        service.pop("build", None)
        service.pop("ports", None)
        service["volumes"] = [
            f"{(ROOT / 'deploy' / v.split(':', 1)[0]).resolve()}:{v.split(':', 1)[1]}"
            for v in service.get("volumes", [])]
    docker("tag", image, tag)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "compose.yaml"
        path.write_text(yaml.safe_dump(compose))
        base = [*cli, "--file", str(path), "--project-name", project]
        try:
            done = subprocess.run([*base, "up", "--no-build", "--exit-code-from", "client"],
                                  capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
            assert "SIP/2.0 503 Service Unavailable" in done.stdout
        finally:
            subprocess.run([*base, "down", "--volumes"], capture_output=True, timeout=120)
            docker("rmi", tag, check=False)
