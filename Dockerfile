# sipresponder container image: SIP on 5060/udp and 5060/tcp, configured through
# SIPRESPONDER_* variables (docs/deploy.md); mount your scenarios on /scenarios.
#
#   docker build -t sipresponder .
#   docker run --rm -p 5060:5060/udp -p 5060:5060/tcp sipresponder
#
# BASE: any Debian-like image with python3 (3.11 or newer), venv and pip. Pinned to
# a patch release so that a rebuild gets the interpreter the last one got.
ARG BASE=python:3.12.8-slim-bookworm
# BUILD_BASE: the build stage's image, the same as BASE unless a build needs a base
# with a C compiler and the Python headers already in it (the tests use one).
ARG BUILD_BASE=python:3.12.8-slim-bookworm

FROM ${BUILD_BASE} AS build
WORKDIR /src
# Only for builds behind a proxy, and never in the final image: PIP_INDEX_URL as a
# build argument, and a TLS-intercepting proxy's CA bundle dropped into the build
# context as build-ca.pem (the [m] glob lets the COPY go on without it).
ARG PIP_INDEX_URL=https://pypi.org/simple
COPY pyproject.toml README.md build-ca.pe[m] ./
COPY scenarios ./scenarios
COPY sipresponder ./sipresponder
# The compiled request path (sipresponder._speedups) is built here, in the build
# stage only: a C compiler and the Python headers, from the base's apt when it lacks
# them. The final stage copies the built virtualenv and ships no compiler. Without
# network or apt, pip still installs (the extension is optional) and the image runs
# the pure-Python engine: `docker run IMAGE --version` says which.
# hadolint ignore=DL3008
RUN include="$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')" \
 && if ! command -v cc >/dev/null 2>&1 || [ ! -f "$include/Python.h" ]; then \
      { apt-get update \
        && apt-get install -y --no-install-recommends gcc libc6-dev \
        && { [ -f "$include/Python.h" ] \
             || apt-get install -y --no-install-recommends python3-dev; } ; } \
      || echo "no C compiler: sipresponder runs on its pure-Python engine"; \
    fi
# fast: uvloop; tls: cryptography, so that tls:/wss: listeners work without a
# certificate of their own (a lab certificate is made at start). pip is only needed
# to build the virtualenv: it is removed from it afterwards.
RUN if [ -f build-ca.pem ]; then export PIP_CERT=/src/build-ca.pem; fi \
 && python3 -m venv /opt/sipresponder \
 && /opt/sipresponder/bin/pip install --no-cache-dir --disable-pip-version-check '.[fast,tls]' \
 && /opt/sipresponder/bin/pip uninstall --yes --disable-pip-version-check pip

FROM ${BASE}
# PYTHONUNBUFFERED: log lines reach `docker logs` when they happen.
# PYTHONDONTWRITEBYTECODE: the root filesystem may be read-only (the venv's .pyc
# files were compiled at install time).
# SIPRESPONDER_TLS_DIR: where a lab certificate is made when no --tls-cert is given
# (uid 5060 has no home directory); mount a certificate for a read-only root.
ENV PATH=/opt/sipresponder/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SIPRESPONDER_SCENARIO=/scenarios/default.toml \
    SIPRESPONDER_LISTEN="udp:0.0.0.0:5060 tcp:0.0.0.0:5060" \
    SIPRESPONDER_TLS_DIR=/tmp/sipresponder-tls
COPY --from=build /opt/sipresponder /opt/sipresponder
COPY scenarios /scenarios
# A numeric user needs no /etc/passwd entry (a minimal base has no useradd), and
# lets Kubernetes' runAsNonRoot verify that it is not root.
USER 5060:5060
# SIP over UDP and TCP, SIP over TLS, and the admin API (off unless
# SIPRESPONDER_ADMIN=0.0.0.0:8080 is set; a non-loopback address also needs a token,
# SIPRESPONDER_ADMIN_TOKEN_FILE=/run/secrets/... or SIPRESPONDER_ADMIN_TOKEN, or
# SIPRESPONDER_ADMIN_INSECURE=1 to run it open knowingly: it refuses to start else).
EXPOSE 5060/udp 5060/tcp 5061/tcp 8080/tcp
# A real SIP OPTIONS to the first SIPRESPONDER_LISTEN address, expecting a 2xx
# (SIPRESPONDER_PING_EXPECT=486 for a scenario that answers OPTIONS otherwise).
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
    CMD ["sipresponder", "ping", "--timeout", "3"]
# sipresponder runs as PID 1 (exec form below) and stops at once on SIGTERM.
STOPSIGNAL SIGTERM
ENTRYPOINT ["sipresponder"]
CMD ["serve"]
