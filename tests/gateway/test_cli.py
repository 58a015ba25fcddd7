"""The `gatehouse` command as operators script it: exit codes, messages, printed tokens."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import UsageError, webhooks
from gateway.store import SQLiteStore

ROOT = Path(__file__).resolve().parents[2]
GATEHOUSE = str(Path(sys.executable).with_name("gatehouse"))
BROKEN = ROOT / "tests" / "testdata" / "policies"


def gatehouse(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([GATEHOUSE, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=60)


@pytest.mark.parametrize("policy", ["policies/default.yaml", "policies/examples/acme.yaml"])
def test_check_accepts_the_shipped_policies(policy: str) -> None:
    result = gatehouse("check", policy)
    assert result.returncode == 0
    assert "ok, snapshot" in result.stdout


@pytest.mark.parametrize(("name", "message"), [
    ("unknown-key", "unknown-key.yaml:8: rules[0].decison: unknown key `decison`; "
                    "did you mean `decision`?"),
    ("bad-glob", "bad-glob.yaml:8: egress.allow[1]: `api.*.com` has a `*`"),
    ("unknown-decision", "unknown-decision.yaml:11: rules[0].decision: unknown decision `alow`"),
    ("duplicate-rule-id", "duplicate-rule-id.yaml:12: rules[1].id: duplicate rule id `reads`"),
])
def test_check_refuses_a_broken_policy_naming_file_line_key_and_fix(name: str,
                                                                    message: str) -> None:
    result = gatehouse("check", str(BROKEN / f"{name}.yaml"))
    assert result.returncode == 1
    assert message in result.stderr


def test_test_passes_the_reference_cases() -> None:
    result = gatehouse("test", "policies/examples/acme.yaml", "policies/examples/acme.cases.yaml")
    assert result.returncode == 0, result.stdout
    assert " 0 failed" in result.stdout


def test_test_fails_on_a_wrong_expectation(tmp_path: Path) -> None:
    cases = tmp_path / "cases.yaml"
    cases.write_text("cases:\n  - name: refunds are free\n"
                     "    request: { method: POST, url: https://api.stripe.com/v1/refunds,"
                     " form: { amount: '50000' } }\n"
                     "    expect: { decision: allow }\n")
    result = gatehouse("test", "policies/examples/acme.yaml", str(cases))
    assert result.returncode == 1
    assert "refunds are free" in result.stdout and "1 failed" in result.stdout


def test_token_create_prints_the_token_alone_on_the_last_line_and_stores_its_hash(
        tmp_path: Path) -> None:
    result = gatehouse("token", "create", "--state", str(tmp_path), "--agent", "support-bot")
    assert result.returncode == 0
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith("gha_") and " " not in token
    store = SQLiteStore(tmp_path / "state.db")
    principal = store.find_token(token)
    assert principal is not None and principal.name == "support-bot"
    person = gatehouse("token", "create", "--state", str(tmp_path), "--reviewer", "alice",
                       "--role", "reviewer").stdout.strip().splitlines()[-1]
    found = store.find_token(person)
    assert found is not None and found.role == "reviewer"


@pytest.mark.parametrize(("args", "message"), [
    (["--agent", "bot", "--role", "admin"], "agents have no role"),
    (["--reviewer", "alice"], "--reviewer needs --role"),
    (["--reviewer", "Dave", "--role", "admin"], "not a usable name"),  # vs agent `dave`
    (["--agent", "ops-bot "], "not a usable name"),
    (["--agent", "оps-bot"], "not a usable name"),  # a Cyrillic о
])
def test_token_create_refuses_flags_that_do_not_fit(tmp_path: Path, args: list[str],
                                                    message: str) -> None:
    result = gatehouse("token", "create", "--state", str(tmp_path), *args)
    assert result.returncode == 1 and message in result.stderr


def test_env_prints_what_python_node_and_curl_agents_need(tmp_path: Path) -> None:
    result = gatehouse("env", "--state", str(tmp_path), "--proxy", "127.0.0.1:9999",
                       "--agent", "bot", "--agent-token", "gha_x")
    exported = result.stdout
    for name in ("HTTPS_PROXY=http://bot:gha_x@127.0.0.1:9999", "https_proxy=",
                 "SSL_CERT_FILE=", "REQUESTS_CA_BUNDLE=", "CURL_CA_BUNDLE=",
                 "NODE_EXTRA_CA_CERTS=", "NODE_USE_ENV_PROXY=1"):
        assert name in exported


def test_run_refuses_to_start_on_a_broken_policy(tmp_path: Path) -> None:
    result = gatehouse("run", "--policy", str(BROKEN / "unknown-decision.yaml"),
                       "--state", str(tmp_path))
    assert result.returncode == 1
    assert "unknown decision `alow`" in result.stderr


@pytest.mark.parametrize("pin", ["example.com=127.0.0.1", "example.com=nowhere:80",
                                 "a:b:c"])
def test_run_refuses_a_malformed_connect_to(tmp_path: Path, pin: str) -> None:
    result = gatehouse("run", "--policy", "policies/default.yaml", "--state", str(tmp_path),
                       "--connect-to", pin)
    assert result.returncode == 2
    assert "--connect-to" in result.stderr


def test_run_refuses_the_same_host_pinned_twice(tmp_path: Path) -> None:
    result = gatehouse("run", "--policy", "policies/default.yaml", "--state", str(tmp_path),
                       "--connect-to", "api.github.com:443=127.0.0.1:1",
                       "--connect-to", "api.github.com:443=127.0.0.1:2")
    assert result.returncode == 1 and "names `api.github.com:443` twice" in result.stderr


def test_run_refuses_a_webhook_that_is_not_an_http_url(tmp_path: Path) -> None:
    result = gatehouse("run", "--policy", "policies/default.yaml", "--state", str(tmp_path),
                       "--webhook", "hooks.slack.com/services/x")
    assert result.returncode == 2 and "not an http(s) URL" in result.stderr


def test_webhooks_come_from_the_flags_else_from_the_environment() -> None:
    flags = ["https://a.example/hook", "http://127.0.0.1:9000/x"]
    assert webhooks(flags, "https://ignored.example/") == tuple(flags)
    assert webhooks([], " https://a.example/1\thttps://b.example/2 ") == (
        "https://a.example/1", "https://b.example/2")
    assert webhooks([], "") == ()
    with pytest.raises(UsageError, match="GATEHOUSE_WEBHOOK.*not an http"):
        webhooks([], "https://a.example/1 ftp://b.example/")


def test_audit_verify_on_a_fresh_state_is_ok(tmp_path: Path) -> None:
    gatehouse("token", "create", "--state", str(tmp_path), "--agent", "bot")
    result = gatehouse("audit", "verify", "--state", str(tmp_path))
    assert result.returncode == 0 and "1 records" in result.stdout
