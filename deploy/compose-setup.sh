#!/bin/sh
# One-shot set-up for compose.yaml, run as root in the Gatehouse image before the replicas start.
# Makes what every replica must share (the CA that agents trust, the audit signing key) and the
# first tokens. Secrets go to /run/gatehouse/secrets (gateways only); the CA certificate and the
# demo agent's token go to /run/gatehouse/agent (the agent's read-only volume). Idempotent.
set -eu
secrets=/run/gatehouse/secrets
agent=/run/gatehouse/agent
if [ ! -s "$secrets/mitmproxy-ca.pem" ]; then
    cd "$secrets"
    python -c 'from pathlib import Path
from mitmproxy.certs import CertStore
from gateway.checkpoints import signing_key
CertStore.from_store(Path("."), "mitmproxy", 2048)
signing_key(Path("."))'
    # tokens live in PostgreSQL ($GATEHOUSE_STORE); the state directory here is scratch
    gatehouse token create --state /tmp/setup --agent demo-agent | tail -n 1 > "$agent/demo-agent.token"
    gatehouse token create --state /tmp/setup --reviewer admin --role admin | tail -n 1 > admin.token
fi
cp "$secrets/mitmproxy-ca-cert.pem" "$agent/ca.pem"
chown -R 10001:10001 "$secrets"
chmod 0600 "$secrets/admin.token"
chmod 0444 "$agent/ca.pem" "$agent/demo-agent.token"
