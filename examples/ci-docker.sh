#!/usr/bin/env bash
# Example CI job for a non-Python project: sipresponder in Docker as the callee,
# then `sipresponder verify` asks its admin API what the system under test sent.
set -euo pipefail

docker build -t sipresponder .
docker run -d --rm --name sip-callee --network host sipresponder \
    serve --scenario /scenarios/default.toml --listen udp:127.0.0.1:5060 \
          --admin 127.0.0.1:8080
trap 'docker stop sip-callee >/dev/null' EXIT

# Wait until the admin API answers (bounded).
for _ in $(seq 50); do
    curl -fsS http://127.0.0.1:8080/healthz >/dev/null 2>&1 && break
    sleep 0.2
done

# Your system under test calls sip:486@127.0.0.1:5060 here, e.g.:
./run-my-sip-client --call sip:486@127.0.0.1:5060

# Exit 0 if it sent the INVITE, 1 (with the journal printed) if not; JUnit for the CI UI.
docker exec sip-callee sipresponder verify --admin http://127.0.0.1:8080 \
    --method INVITE --uri 'sip:486@*' --count 1 --timeout 5 --junit /tmp/sip-report.xml
