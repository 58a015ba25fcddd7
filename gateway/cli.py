"""`gatehouse`: the one command operators script against (DESIGN.md, "Command line")."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import sys
import urllib.parse
from datetime import datetime
from pathlib import Path

from gateway.approvals.notify import check_url
from gateway.audit import AuditError, verify
from gateway.client import ClientError, call, call_text
from gateway.egress import parse_ip_literal
from gateway.policy import PolicyError, load_cases, load_policy, run_cases
from gateway.postgres.backends import Backend, check_store
from gateway.services import Settings
from gateway.store import StateStore, StoreError
from gateway.tokens import Role, new_token

DEFAULT_POLICY = "policies/default.yaml"
# Agent and reviewer names: compared as exact strings (self-approval, one vote each, groups),
# so only one spelling of a name may exist.
NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
DEFAULT_PROXY = "127.0.0.1:8080"
DEFAULT_ADMIN = "127.0.0.1:8081"
MODES = ("regular", "transparent")  # mitmproxy mode specs Gatehouse runs; reverse:URL is not yet


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (ClientError, PolicyError, UsageError, StoreError, AuditError) as e:
        print(f"gatehouse: {e}", file=sys.stderr)
        return 1


class UsageError(ValueError):
    """Flags that do not fit together; the message says how to call instead."""


def host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"`{value}` is not HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


def connect_to(value: str) -> tuple[tuple[str, int | None], tuple[str, int]]:
    """curl's HOST[:PORT]=ADDR:PORT (curl writes HOST:PORT:ADDR:PORT; both are accepted)."""
    if "=" in value:
        source, _, target = value.partition("=")
    else:
        parts = value.split(":")
        if len(parts) != 4:
            raise argparse.ArgumentTypeError(f"`{value}` is not HOST[:PORT]=ADDR:PORT")
        source, target = ":".join(parts[:2]), ":".join(parts[2:])
    host, _, port = source.partition(":")
    if not host or (port and not port.isdigit()):
        raise argparse.ArgumentTypeError(f"`{source}` is not HOST[:PORT]")
    address = host_port(target)
    if parse_ip_literal(address[0]) is None:
        raise argparse.ArgumentTypeError(
            f"`{target}` must be an IP address and port, e.g. 10.0.3.7:8443")
    return (host.lower(), int(port) if port else None), address


def store_value(value: str) -> str:
    try:
        return check_store(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def webhook(value: str) -> str:
    try:
        return check_url(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def scan_workers(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 64:
        raise argparse.ArgumentTypeError(f"`{value}` is not a number of processes from 1 to 64")
    return int(value)


def webhooks(flags: list[str], environ: str) -> tuple[str, ...]:
    """--webhook flags when given, else $GATEHOUSE_WEBHOOK (URLs separated by spaces)."""
    try:
        return tuple(flags) or tuple(check_url(url) for url in environ.split())
    except ValueError as e:
        raise UsageError(f"$GATEHOUSE_WEBHOOK: {e}") from e


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gatehouse", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    state = argparse.ArgumentParser(add_help=False)
    state.add_argument("--state", type=Path,
                       default=Path(os.environ.get("GATEHOUSE_STATE", ".gatehouse")),
                       help="state directory (default .gatehouse or $GATEHOUSE_STATE)")
    stored = argparse.ArgumentParser(add_help=False)
    stored.add_argument("--store", type=store_value, metavar="sqlite|postgresql://...",
                        default=os.environ.get("GATEHOUSE_STORE", "sqlite"),
                        help="where the stores and the audit trail are kept: `sqlite` (in the "
                             "state directory; the default, or $GATEHOUSE_STORE) or a PostgreSQL "
                             "URL shared by every replica")
    client = argparse.ArgumentParser(add_help=False)
    client.add_argument("--admin", default=os.environ.get("GATEHOUSE_ADMIN",
                                                          f"http://{DEFAULT_ADMIN}"))
    client.add_argument("--token", default=os.environ.get("GATEHOUSE_TOKEN"))

    run = sub.add_parser("run", parents=[state, stored], help="start the gateway")
    run.add_argument("--policy", type=Path,
                     default=Path(os.environ.get("GATEHOUSE_POLICY", DEFAULT_POLICY)))
    run.add_argument("--listen", type=host_port, default=host_port(DEFAULT_PROXY))
    run.add_argument("--admin", type=host_port, default=host_port(DEFAULT_ADMIN))
    run.add_argument("--mode", default="regular", choices=MODES,
                     help="regular: agents use the gateway as their HTTP(S) proxy; transparent: "
                          "their traffic is redirected here by iptables and the policy's "
                          "`agents.*.addresses` name them")
    run.add_argument("--connect-to", type=connect_to, action="append", default=[],
                     metavar="HOST[:PORT]=ADDR:PORT",
                     help="send calls for HOST[:PORT] to ADDR:PORT; the address is trusted")
    run.add_argument("--upstream-ca", type=Path,
                     help="CA bundle to verify upstream servers with (default: system roots)")
    run.add_argument("--webhook", type=webhook, action="append", default=[], metavar="URL",
                     help="POST Slack-compatible notifications of held calls here (repeatable; "
                          "default $GATEHOUSE_WEBHOOK, URLs separated by spaces)")
    run.add_argument("--scan-workers", type=scan_workers, default=min(2, os.cpu_count() or 1),
                     metavar="N", help="processes that scan bodies for personal data "
                     "(default: 2, or 1 on a one-core machine)")
    run.set_defaults(handler=cmd_run)

    env = sub.add_parser("env", parents=[state], help="print the variables an agent needs")
    env.add_argument("--proxy", default=os.environ.get("GATEHOUSE_PROXY", DEFAULT_PROXY),
                     help="HOST:PORT of the proxy")
    env.add_argument("--agent", help="agent name; with --token, put credentials in the URL")
    env.add_argument("--agent-token", dest="agent_token")
    env.set_defaults(handler=cmd_env)

    token = sub.add_parser("token", help="create tokens").add_subparsers(dest="action",
                                                                          required=True)
    create = token.add_parser("create", parents=[state, stored], help="print a new token once")
    who = create.add_mutually_exclusive_group(required=True)
    who.add_argument("--agent")
    who.add_argument("--reviewer", help="a person: reviewer, responder, auditor or admin")
    create.add_argument("--role", choices=[r.value for r in Role])
    create.set_defaults(handler=cmd_token_create)

    check = sub.add_parser("check", help="validate a policy file")
    check.add_argument("policy", type=Path)
    check.set_defaults(handler=cmd_check)
    test = sub.add_parser("test", help="run expectation cases against a policy")
    test.add_argument("policy", type=Path)
    test.add_argument("cases", type=Path)
    test.set_defaults(handler=cmd_test)
    replaying = sub.add_parser("replay", parents=[state, stored],
                               help="what a candidate policy would decide about the calls on "
                                    "record: every call whose verdict would change")
    replaying.add_argument("policy", type=Path)
    replaying.add_argument("--since", type=moment, help="first call to replay (ISO time with "
                                                         "zone; default: the start of the trail)")
    replaying.add_argument("--until", type=moment, help="replay calls before this time")
    replaying.add_argument("--json", action="store_true", help="the changes as JSON")
    replaying.set_defaults(handler=cmd_replay)

    halt = sub.add_parser("halt", parents=[client], help="halt calls (kill switch)")
    scope = halt.add_mutually_exclusive_group(required=True)
    scope.add_argument("--all", action="store_true")
    for name in ("agent", "tenant", "host", "action"):
        scope.add_argument(f"--{name}", metavar="GLOB" if name == "action" else name.upper())
    halt.add_argument("--reason", required=True)
    halt.set_defaults(handler=cmd_halt)
    resume = sub.add_parser("resume", parents=[client], help="lift a halt")
    resume.add_argument("id")
    resume.add_argument("--as", dest="resume_as", default="full", metavar="full|shadow|level N",
                        nargs="+", help="shadow: writes stay withheld (and recorded) until a "
                        "responder lifts the shadow too; level N: an agent's halt is lifted "
                        "with the agent at autonomy level N")
    resume.set_defaults(handler=cmd_resume)
    halts = sub.add_parser("halts", parents=[client], help="list active halts")
    halts.set_defaults(handler=lambda a: show(call(a.admin, a.token, "GET", "/v1/halts")))

    pending = sub.add_parser("pending", parents=[client], help="held calls awaiting review")
    pending.add_argument("--state", dest="item_state", default="pending",
                         help="pending (default), approved, consumed, denied, expired or all")
    for name in ("route", "agent", "action"):
        pending.add_argument(f"--{name}")
    pending.add_argument("--mine", action="store_true", help="only items assigned to you")
    pending.set_defaults(handler=cmd_pending)
    sub.add_parser("queue", parents=[client], help="queue health: waits, targets, reviewers"
                   ).set_defaults(handler=lambda a: show(call(a.admin, a.token, "GET",
                                                              "/v1/queue/stats")))
    show_item = sub.add_parser("show", parents=[client], help="one held call in full")
    show_item.add_argument("id")
    show_item.set_defaults(
        handler=lambda a: show(call(a.admin, a.token, "GET", f"/v1/pending/{a.id}")))
    for verdict in ("approve", "deny"):
        vote = sub.add_parser(verdict, parents=[client], help=f"{verdict} a held call")
        vote.add_argument("id")
        vote.add_argument("--reason", required=verdict == "deny", default="")
        if verdict == "approve":
            vote.add_argument("--confirm", help="the confirmation phrase the item shows")
        vote.set_defaults(handler=cmd_vote, verdict=verdict)

    quarantine = sub.add_parser("quarantine", help="responses held for review").add_subparsers(
        dest="action", required=True)
    listing = quarantine.add_parser("list", parents=[client], help="quarantined responses")
    listing.add_argument("--state", dest="item_state", default="held",
                         choices=["held", "released", "delivered", "discarded"])
    listing.add_argument("--agent")
    listing.set_defaults(handler=cmd_quarantine_list)
    look = quarantine.add_parser("show", parents=[client],
                                 help="one item with its redacted view")
    look.add_argument("id")
    look.add_argument("--original", action="store_true",
                      help="also the response as received (auditor, admin; the read is audited)")
    look.set_defaults(handler=lambda a: show(call(
        a.admin, a.token, "GET",
        f"/v1/quarantine/{a.id}" + ("?original=true" if a.original else ""))))
    release = quarantine.add_parser("release", parents=[client],
                                    help="deliver it to the agent's next retry, once")
    release.add_argument("id")
    release.add_argument("--as", dest="release_as", choices=["redacted", "original"],
                         default="redacted")
    release.add_argument("--reason", required=True)
    release.set_defaults(handler=lambda a: show(call(
        a.admin, a.token, "POST", f"/v1/quarantine/{a.id}/release",
        {"as": a.release_as, "reason": a.reason})))
    discard = quarantine.add_parser("discard", parents=[client], help="never deliver it")
    discard.add_argument("id")
    discard.add_argument("--reason", required=True)
    discard.set_defaults(handler=lambda a: show(call(
        a.admin, a.token, "POST", f"/v1/quarantine/{a.id}/discard", {"reason": a.reason})))

    incident = sub.add_parser("incident", help="open and read incidents").add_subparsers(
        dest="action", required=True)
    opening = incident.add_parser("open", parents=[client],
                                  help="open an incident on the bad call or a window; contained "
                                       "as the policy's severity response says")
    opening.add_argument("--title", required=True, help="the harm done, in a line")
    opening.add_argument("--severity", required=True, choices=["SEV-1", "SEV-2", "SEV-3",
                                                               "SEV-4"])
    about = opening.add_mutually_exclusive_group(required=True)
    about.add_argument("--request-id", help="the bad call's X-Gatehouse-Request-Id")
    about.add_argument("--since", help="or the start of a window (ISO time with zone)")
    opening.add_argument("--until", help="the end of the window (default: now)")
    opening.add_argument("--agent")
    opening.add_argument("--contain", action="store_true",
                         help="halt the agent whatever the severity says")
    opening.set_defaults(handler=cmd_incident_open)
    incident.add_parser("list", parents=[client], help="incidents, newest first").set_defaults(
        handler=lambda a: show(call(a.admin, a.token, "GET", "/v1/incidents")))
    incident_show = incident.add_parser("show", parents=[client], help="one incident")
    incident_show.add_argument("id")
    incident_show.set_defaults(
        handler=lambda a: show(call(a.admin, a.token, "GET", f"/v1/incidents/{a.id}")))
    chain = incident.add_parser("chain", parents=[client],
                                help="the agent, policy and review layers of the bad call")
    chain.add_argument("id")
    chain.set_defaults(
        handler=lambda a: show(call(a.admin, a.token, "GET", f"/v1/incidents/{a.id}/chain")))
    report = incident.add_parser("report", parents=[client], help="the incident record")
    report.add_argument("id")
    report.add_argument("--format", choices=["md", "json"], default="md")
    report.set_defaults(handler=cmd_incident_report)

    agent = sub.add_parser("agent", help="agents' autonomy levels").add_subparsers(
        dest="action", required=True)
    agent_show = agent.add_parser("show", parents=[client],
                                  help="level, promotion criteria and history")
    agent_show.add_argument("name")
    agent_show.set_defaults(
        handler=lambda a: show(call(a.admin, a.token, "GET", f"/v1/agents/{a.name}")))
    for change in ("promote", "demote"):
        changing = agent.add_parser(change, parents=[client], help=f"{change} one level")
        changing.add_argument("name")
        changing.add_argument("--reason", required=True)
        changing.set_defaults(handler=lambda a, change=change: show(call(
            a.admin, a.token, "POST", f"/v1/agents/{a.name}/{change}", {"reason": a.reason})))
    drawn = sub.add_parser("samples", parents=[client],
                           help="calls drawn for a post-execution review")
    drawn.add_argument("--all", action="store_true", help="reviewed ones too")
    drawn.set_defaults(handler=lambda a: show(call(
        a.admin, a.token, "GET", f"/v1/samples?state={'all' if a.all else 'open'}")))
    judging = sub.add_parser("sample", parents=[client], help="record the review of a drawn call")
    judging.add_argument("request_id")
    judging.add_argument("--verdict", required=True, choices=["fine", "problem"])
    judging.add_argument("--note", default="")
    judging.set_defaults(handler=lambda a: show(call(
        a.admin, a.token, "POST", f"/v1/samples/{a.request_id}/verdict",
        {"verdict": a.verdict, "note": a.note})))
    hold = sub.add_parser("hold", help="legal holds: evidence exempt from retention"
                          ).add_subparsers(dest="action", required=True)
    placing = hold.add_parser("place", parents=[client], help="place a legal hold")
    covers = placing.add_mutually_exclusive_group(required=True)
    covers.add_argument("--agent")
    covers.add_argument("--incident", metavar="ID")
    covers.add_argument("--since", help="a time range from (ISO time with zone)")
    placing.add_argument("--until", help="the end of the time range")
    placing.add_argument("--reason", required=True)
    placing.set_defaults(handler=lambda a: show(call(a.admin, a.token, "POST", "/v1/holds/legal", {
        k: v for k, v in (("agent", a.agent), ("incident", a.incident), ("since", a.since),
                          ("until", a.until), ("reason", a.reason)) if v})))
    hold.add_parser("list", parents=[client], help="legal holds").set_defaults(
        handler=lambda a: show(call(a.admin, a.token, "GET", "/v1/holds/legal")))
    releasing = hold.add_parser("release", parents=[client], help="release a legal hold")
    releasing.add_argument("id")
    releasing.set_defaults(
        handler=lambda a: show(call(a.admin, a.token, "DELETE", f"/v1/holds/legal/{a.id}")))
    retention = sub.add_parser("retention", help="evidence retention").add_subparsers(
        dest="action", required=True)
    sweeping = retention.add_parser(
        "sweep", parents=[state, stored],
        help="delete evidence files past the policy's retention, except what legal holds cover")
    sweeping.add_argument("--policy", type=Path,
                          help="take `retention:` from this file (default: the newest policy "
                               "snapshot the gateway ran)")
    sweeping.add_argument("--dry-run", action="store_true", help="say what would go; delete "
                                                                 "nothing")
    sweeping.set_defaults(handler=cmd_retention_sweep)

    policy = sub.add_parser("policy", help="the running policy").add_subparsers(
        dest="action", required=True)
    reload = policy.add_parser("reload", parents=[client], help="reload the policy file")
    reload.set_defaults(
        handler=lambda a: show(call(a.admin, a.token, "POST", "/v1/policy/reload", {})))

    audit = sub.add_parser("audit", help="the audit trail").add_subparsers(
        dest="action", required=True)
    verify_cmd = audit.add_parser("verify", parents=[state, stored],
                                  help="check the hash chain and the signed checkpoints")
    verify_cmd.add_argument("--public-key", type=Path, metavar="FILE",
                            help="check signatures with this public key (default: "
                                 "audit-signing.pub in the state directory, or for --bundle the "
                                 "key inside it); auditors pass their own copy")
    verify_cmd.add_argument("--bundle", type=Path, metavar="FILE",
                            help="verify a bundle from `audit export` instead of the state "
                                 "directory")
    verify_cmd.add_argument("--checkpoint", type=Path, action="append", default=[],
                            metavar="FILE", help="also check checkpoints kept elsewhere, one "
                            "JSON object a line as `audit checkpoint` prints them (repeatable)")
    verify_cmd.set_defaults(handler=cmd_audit_verify)
    export_cmd = audit.add_parser("export", parents=[state, stored],
                                  help="write the trail, its checkpoints and the public key as "
                                       "one signed bundle")
    export_cmd.add_argument("--out", type=Path, required=True, metavar="FILE")
    export_cmd.set_defaults(handler=cmd_audit_export)
    audit.add_parser("key", parents=[state], help="print the public key checkpoints are signed "
                     "with (PEM; the key pair is made on first use)"
                     ).set_defaults(handler=cmd_audit_key)
    audit.add_parser("checkpoint", parents=[state, stored], help="sign the head now unless it "
                     "is signed already, and print the newest checkpoint (JSON) to keep "
                     "elsewhere"
                     ).set_defaults(handler=cmd_audit_checkpoint)

    migrating = sub.add_parser("migrate", help="move state between backends").add_subparsers(
        dest="action", required=True)
    to_postgres = migrating.add_parser(
        "sqlite-to-postgres", parents=[state],
        help="copy an embedded deployment's state and audit trail into an empty PostgreSQL "
             "database; stop the gateway first (a running one is refused)")
    to_postgres.add_argument("--to", required=True, metavar="postgresql://...",
                             help="the empty database (made with `createdb`)")
    to_postgres.set_defaults(handler=cmd_migrate)
    return p


def show(data: object) -> int:
    print(json.dumps(data, indent=2))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from addons.runtime import serve  # the composition root: the one place mitmproxy is loaded

    load_policy(args.policy)  # a bad policy stops start-up with its errors, before anything else
    settings = Settings(
        policy_path=args.policy, state_dir=args.state, store=args.store, listen=args.listen,
        admin=args.admin, mode=args.mode,
        connect_to=pinned_targets(args.connect_to), upstream_ca=args.upstream_ca,
        webhooks=webhooks(args.webhook, os.environ.get("GATEHOUSE_WEBHOOK", "")),
        scan_workers=args.scan_workers)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    bootstrap(settings)
    asyncio.run(serve(settings))
    return 0


def pinned_targets(
    entries: list[tuple[tuple[str, int | None], tuple[str, int]]],
) -> dict[tuple[str, int], tuple[str, int]]:
    """--connect-to without a port pins every port of that host (port 0)."""
    pinned: dict[tuple[str, int], tuple[str, int]] = {}
    for (host, port), target in entries:
        if (host, port or 0) in pinned:
            raise UsageError(f"--connect-to names `{host}{f':{port}' if port else ''}` twice; "
                             "give one target per host and port")
        pinned[(host, port or 0)] = target
    return pinned


def bootstrap(settings: Settings) -> None:
    """On a fresh state directory, create an admin token and a first agent, shown once."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    backend = Backend(settings.store, settings.state_dir)
    store = backend.state()
    try:
        lines = []
        if not store.has_person_tokens():
            token = issue_token(store, backend, "person", "admin", Role.ADMIN)
            lines += ["Admin token (role admin), shown once:", f"  export GATEHOUSE_TOKEN={token}"]
        if not store.has_agent_tokens():
            token = issue_token(store, backend, "agent", "dev-agent", None)
            lines += ["", "Point an agent at the gateway (agent `dev-agent`), shown once:",
                      *agent_env(settings.state_dir, f"{settings.listen[0]}:{settings.listen[1]}",
                                 "dev-agent", token, ca_ready=False)]
        if not lines:
            lines = [f"Tokens were shown once, when {settings.state_dir} was new; only their "
                     "hashes are kept. New ones, and the variables for an agent:",
                     f"  gatehouse token create --state {settings.state_dir} --agent NAME",
                     f"  gatehouse token create --state {settings.state_dir} --reviewer NAME "
                     "--role admin",
                     f"  gatehouse env --state {settings.state_dir} --proxy "
                     f"{settings.listen[0]}:{settings.listen[1]} --agent NAME "
                     "--agent-token TOKEN"]
        print("\n".join(lines), flush=True)
    finally:
        store.close()


def issue_token(store: StateStore, backend: Backend, kind: str, name: str,
                role: Role | None) -> str:
    token = new_token(kind)
    store.add_token(kind, name, role, token)
    audit = backend.audit()
    try:
        audit.append_sync("token.created", {"actor": "cli", "kind": kind, "name": name,
                                            "role": role.value if role else None})
    finally:
        audit.close()
    return token


def agent_env(state_dir: Path, proxy: str, agent: str | None, token: str | None,
              ca_ready: bool = True) -> list[str]:
    from addons.runtime import CA_BUNDLE, CA_CERT

    host = "127.0.0.1" if proxy.startswith("0.0.0.0:") else proxy.rpartition(":")[0]
    port = proxy.rpartition(":")[2]
    credentials = f"{agent}:{token}@" if agent and token else "AGENT:TOKEN@"
    url = f"http://{credentials}{host}:{port}"
    state = state_dir.resolve()
    lines = [
        f"export HTTP_PROXY={url} HTTPS_PROXY={url}",
        f"export http_proxy={url} https_proxy={url}",
        "export NO_PROXY= no_proxy=",
        f"export SSL_CERT_FILE={state / CA_BUNDLE}",
        f"export REQUESTS_CA_BUNDLE={state / CA_BUNDLE}",
        f"export CURL_CA_BUNDLE={state / CA_BUNDLE}",
        f"export NODE_EXTRA_CA_CERTS={state / CA_CERT}",
        "export NODE_USE_ENV_PROXY=1",
    ]
    if not ca_ready:
        lines.append("# (the CA files appear in the state directory when the gateway starts)")
    return lines


def cmd_env(args: argparse.Namespace) -> int:
    if bool(args.agent) != bool(args.agent_token):
        raise UsageError("give both --agent and --agent-token, or neither")
    print("\n".join(agent_env(args.state, args.proxy, args.agent, args.agent_token)))
    return 0


def cmd_token_create(args: argparse.Namespace) -> int:
    if args.agent and args.role:
        raise UsageError("agents have no role; drop --role, or use --reviewer NAME --role ROLE")
    if args.reviewer and not args.role:
        raise UsageError("--reviewer needs --role (reviewer, responder, auditor or admin)")
    name = args.agent or args.reviewer
    if not NAME.fullmatch(name):
        raise UsageError(f"`{name}` is not a usable name: use lower-case letters, digits, `.`, "
                         "`_` and `-` (so no two names can look alike)")
    backend = Backend(args.store, args.state)
    store = backend.state()
    try:
        if args.agent:
            token = issue_token(store, backend, "agent", args.agent, None)
            print(f"Agent token for `{args.agent}` (stored hashed, shown once):")
        else:
            token = issue_token(store, backend, "person", args.reviewer, Role(args.role))
            print(f"Admin API token for `{args.reviewer}` (role {args.role}; shown once):")
    finally:
        store.close()
    print(token)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    policy = load_policy(args.policy)
    for warning in policy.warnings:
        print(f"warning: {warning}")
    print(f"{args.policy}: ok, snapshot {policy.snapshot_id}")
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    report = run_cases(load_policy(args.policy), load_cases(args.cases))
    print(report.format())
    return 1 if report.failed else 0


def moment(value: str) -> datetime:
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise argparse.ArgumentTypeError(f"`{value}` is not a time with its zone; write it "
                                         "like 2026-06-25T09:00:00Z")
    return when


def cmd_replay(args: argparse.Namespace) -> int:
    """Exit 1 when some decision would change, like `diff`, so CI can gate a policy change."""
    from gateway.evidence import EvidenceError, EvidenceStore
    from gateway.replay import calls_on_record, replay

    candidate = load_policy(args.policy)
    backend = Backend(args.store, args.state)
    pending = backend.pending()
    evidence = EvidenceStore(args.state / "evidence")
    with backend.audit() as trail:
        requests = {str(r.get("request_id")): r["evidence"]["request"]  # type: ignore[index]
                    for r in calls_on_record(trail.query, args.since, args.until,
                                             event="call.evidence")}

        def kept(request_id: str) -> bytes | None:
            digest = requests.get(request_id)
            try:
                return evidence.get(str(digest)) if digest else None
            except EvidenceError as e:  # replaying on doctored evidence would mislead
                raise UsageError(f"the request of {request_id} cannot be replayed: {e}") from e

        report = replay(candidate, calls_on_record(trail.query, args.since, args.until),
                        pending.get, kept)
    if args.json:
        show({"replayed": report.replayed, "exact": report.exact, "skipped": report.skipped,
              "changes": [c.to_json() for c in report.changes]})
    else:
        print(report.format())
    return 1 if report.changes else 0


def cmd_retention_sweep(args: argparse.Namespace) -> int:
    """Run from cron or a systemd timer; deletions are audited as `evidence.deleted`."""
    from gateway.clock import utc_now
    from gateway.evidence import EvidenceStore
    from gateway.policy import load_policy_text
    from gateway.replay import calls_on_record
    from gateway.retention import Cover, holds_on_record, sweep

    backend = Backend(args.store, args.state)
    if args.policy is not None:
        policy = load_policy(args.policy)
    else:
        snapshots = backend.state().snapshots()
        if not snapshots:
            raise UsageError("no policy has run on this state yet; pass --policy")
        newest = backend.state().snapshot(str(snapshots[-1]["snapshot_id"]))
        assert newest is not None
        policy = load_policy_text(str(newest["text"]), str(newest["source"]))
    evidence = EvidenceStore(args.state / "evidence")
    incidents = backend.incidents()
    with backend.audit() as trail:
        def bad_call_at(request_id: str) -> str | None:
            found = trail.query(event="call.decided", request_id=request_id, limit=1)
            return str(found[0]["ts"]) if found else None

        records = [r for event in ("call.evidence", "call.document")
                   for r in calls_on_record(trail.query, None, None, event=event)]
        cover = Cover(holds_on_record(trail.query), incidents.get, bad_call_at)
        report = sweep(records, policy.model.retention, cover, utc_now(), evidence.has)
        if report.deleted and not args.dry_run:  # recorded first: no deletion goes unrecorded
            trail.append_sync("evidence.deleted", {**report.to_json(),
                                                   "actor": "retention sweep"})
            for digest in report.deleted:
                evidence.delete(digest)
    return show({**report.to_json(), "dry_run": args.dry_run})


def cmd_halt(args: argparse.Namespace) -> int:
    if args.all:
        scope, target = "all", None
    else:
        scope = next(s for s in ("agent", "tenant", "host", "action") if getattr(args, s))
        target = getattr(args, scope)
    return show(call(args.admin, args.token, "POST", "/v1/halts",
                     {"scope": scope, "target": target, "reason": args.reason}))


def cmd_incident_open(args: argparse.Namespace) -> int:
    body = {key: value for key, value in (
        ("title", args.title), ("severity", args.severity), ("request_id", args.request_id),
        ("since", args.since), ("until", args.until), ("agent", args.agent)) if value}
    return show(call(args.admin, args.token, "POST", "/v1/incidents",
                     {**body, "contain": args.contain}))


def cmd_incident_report(args: argparse.Namespace) -> int:
    path = f"/v1/incidents/{args.id}/report?format={args.format}"
    if args.format == "json":
        return show(call(args.admin, args.token, "GET", path))
    print(call_text(args.admin, args.token, path), end="")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    how = [args.resume_as] if isinstance(args.resume_as, str) else args.resume_as
    if how[0] == "level" and len(how) == 2 and how[1].isdigit():
        query = f"as=level&level={how[1]}"
    elif how in (["full"], ["shadow"]):
        query = f"as={how[0]}"
    else:
        raise UsageError("--as is `full`, `shadow`, or `level N`")
    return show(call(args.admin, args.token, "DELETE", f"/v1/halts/{args.id}?{query}"))


def cmd_pending(args: argparse.Namespace) -> int:
    query = urllib.parse.urlencode({k: v for k, v in (
        ("state", args.item_state), ("route", args.route), ("agent", args.agent),
        ("action", args.action), ("assigned_to", "me" if args.mine else None)) if v})
    return show(call(args.admin, args.token, "GET", f"/v1/pending?{query}"))


def cmd_quarantine_list(args: argparse.Namespace) -> int:
    query = urllib.parse.urlencode({k: v for k, v in (
        ("state", args.item_state), ("agent", args.agent)) if v})
    return show(call(args.admin, args.token, "GET", f"/v1/quarantine?{query}"))


def cmd_vote(args: argparse.Namespace) -> int:
    body: dict[str, object] = {"reason": args.reason}
    if getattr(args, "confirm", None):
        body["confirm"] = args.confirm
    return show(call(args.admin, args.token, "POST", f"/v1/pending/{args.id}/{args.verdict}",
                     body))


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from gateway.audit import verify_bundle
    from gateway.checkpoints import Checkpoint, read_file

    kept: list[Checkpoint | str] = []
    for path in args.checkpoint:
        try:
            kept += read_file(path)
        except (OSError, UnicodeDecodeError) as e:
            print(f"gatehouse: cannot read `{path}`: {getattr(e, 'strerror', None) or e}",
                  file=sys.stderr)
            return 1
    if args.bundle is not None:
        what = "audit bundle"
        report = verify_bundle(args.bundle, public_key=args.public_key, kept=kept)
    else:
        what = "audit trail"
        with Backend(args.store, args.state).trail() as trail:
            report = verify(trail, public_key=args.public_key, kept=kept)
    if not report.ok:
        where = f" at record {report.first_bad_seq}" if report.first_bad_seq is not None else ""
        print(f"{what} BROKEN{where}: {report.problem}", file=sys.stderr)
        return 1
    signed = "no signed checkpoints yet" if not report.checkpoints else \
        f"{report.checkpoints} signed checkpoints good, the newest at record " \
        f"{report.latest_checkpoint}"
    if args.bundle is not None:
        signed += ", bundle signature good"
    print(f"{what} ok: {report.records} records, chain intact; {signed}"
          + (f" (key {report.key_id})" if report.key_id else ""))
    if args.bundle is not None and args.public_key is None:
        print("note: checked with the key inside the bundle, which shows the bundle is whole "
              "but not who made it; compare its key id with the gateway's (`gatehouse audit "
              "key`) or pass --public-key")
    return 0


def cmd_audit_export(args: argparse.Namespace) -> int:
    from gateway.audit import export

    with Backend(args.store, args.state).trail() as trail:
        summary = export(trail, args.out)
    print(f"exported {summary.records} records (to record {summary.head_seq}) and "
          f"{summary.checkpoints} checkpoints to {args.out}, signed with key {summary.key_id}")
    if summary.left_out:
        print(f"warning: {summary.left_out} malformed checkpoint rows were left out; "
              "`gatehouse audit verify` names them", file=sys.stderr)
    return 0


def cmd_audit_key(args: argparse.Namespace) -> int:
    from gateway.checkpoints import SigningKeyError, key_id, public_pem, signing_key

    if not args.state.is_dir():
        print(f"gatehouse: there is no state directory `{args.state}`", file=sys.stderr)
        return 1
    try:
        public = signing_key(args.state).public_key()
    except SigningKeyError as e:
        print(f"gatehouse: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(public_pem(public).decode())
    print(f"key id {key_id(public)}: give auditors a copy of this key to verify the trail "
          "with", file=sys.stderr)
    return 0


def cmd_audit_checkpoint(args: argparse.Namespace) -> int:
    backend = Backend(args.store, args.state)
    if not backend.url and not backend.audit_db.is_file():
        print(f"gatehouse: there is no audit log at `{backend.audit_db}`", file=sys.stderr)
        return 1
    with backend.audit() as log:
        newest = log.sign_head()
    if newest is None:
        print("gatehouse: the audit trail has no records yet: nothing to sign", file=sys.stderr)
        return 1
    print(newest.to_json().decode())
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from gateway.postgres.database import safe_url
    from gateway.postgres.migrate import sqlite_to_postgres

    moved = sqlite_to_postgres(args.state, args.to)
    print(f"moved {args.state} to {safe_url(args.to)}: "
          + ", ".join(f"{count} {table}" for table, count in moved.rows.items()))
    print(f"audit trail ok in PostgreSQL: {moved.trail.records} records, chain intact; "
          f"{moved.trail.checkpoints} signed checkpoints good")
    print(f"start the gateway with --store {safe_url(args.to)} --state {args.state} (the "
          "state directory keeps the CA, the signing key and the evidence); the SQLite files "
          "were left as they were, and a gateway started without --store would use them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
