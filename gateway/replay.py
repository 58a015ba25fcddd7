"""`gatehouse replay`: what a candidate policy would have decided about the calls on record.

Each `call.decided` record is turned back into a call and evaluated under the candidate at the
time it was made; every call whose verdict would change is listed. The fidelity of each call is
said, because the trail does not keep every request whole:

- `exact`: a held call, rebuilt from the request the pending store kept byte for byte, or a
  call whose request was kept as evidence (`evidence.keep: always`);
- `url`: any other call, rebuilt from its method and URL, with the parameters the trail recorded
  standing in for those a candidate reads from the body or headers (`json:`, `form:`, `mcp:`,
  `header:`). A candidate that classifies by body content (an MCP tool name) cannot be judged
  this way for unheld calls; such calls keep their recorded action type.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from urllib.parse import parse_qsl, urlsplit

from gateway.approvals.model import PendingItem
from gateway.call import Action, Call
from gateway.content import UndecodableBody, decode_body
from gateway.evidence import open_envelope
from gateway.policy import Policy, classify, decide
from gateway.policy.classify import UNCLASSIFIED

MAX_BODY_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Change:
    request_id: str
    at: str
    agent: str
    action: str
    was: str  # the verdict on record
    would_be: str
    rules_were: tuple[str, ...]
    rules_would_be: tuple[str, ...]
    fidelity: str  # `exact` or `url`

    def to_json(self) -> dict[str, object]:
        return {"request_id": self.request_id, "at": self.at, "agent": self.agent,
                "action": self.action, "was": self.was, "would_be": self.would_be,
                "rules_were": list(self.rules_were), "rules_would_be": list(self.rules_would_be),
                "fidelity": self.fidelity}


@dataclass
class ReplayReport:
    replayed: int = 0
    skipped: int = 0  # records with no policy verdict (refused before deciding, CONNECTs)
    exact: int = 0

    def __post_init__(self) -> None:
        self.changes: list[Change] = []

    def format(self) -> str:
        lines = [f"{c.at} {c.request_id} {c.agent} {c.action}: {c.was} → {c.would_be} "
                 f"(rules {', '.join(c.rules_were) or '-'} → {', '.join(c.rules_would_be) or '-'}"
                 f"; {c.fidelity})" for c in self.changes]
        lines.append(f"{self.replayed} call(s) replayed ({self.exact} exact), "
                     f"{len(self.changes)} would change, {self.skipped} skipped")
        return "\n".join(lines)


Kept = Callable[[str], bytes | None]  # request id -> the request kept as evidence (envelope)


def nothing_kept(_: str) -> bytes | None:
    return None


def replay(candidate: Policy, records: Iterable[dict[str, object]],
           held: Callable[[str], PendingItem | None], kept: Kept = nothing_kept
           ) -> ReplayReport:
    report = ReplayReport()
    for record in records:
        rebuilt = rebuild(record, held, kept)
        if rebuilt is None:
            report.skipped += 1
            continue
        call, fidelity = rebuilt
        action = _action(candidate, call, record, exact=fidelity == "exact")
        at = datetime.fromisoformat(str(record["ts"]).replace("Z", "+00:00"))
        if candidate.egress_allows(call.host, call.port):
            decision = decide(candidate, action, call, at)
            verdict, rules = str(decision.verdict), tuple(decision.rule_ids)
        else:
            verdict, rules = "deny", ("egress",)
        report.replayed += 1
        report.exact += fidelity == "exact"
        was = str(record.get("verdict"))
        if verdict != was:
            report.changes.append(Change(
                request_id=str(record.get("request_id")), at=str(record["ts"]),
                agent=call.agent, action=action.type, was=was, would_be=verdict,
                rules_were=tuple(record.get("rule_ids") or ()),  # type: ignore[arg-type]
                rules_would_be=rules, fidelity=fidelity))
    return report


def rebuild(record: dict[str, object], held: Callable[[str], PendingItem | None],
            kept: Kept = nothing_kept) -> tuple[Call, str] | None:
    """The call behind a `call.decided` record, and how faithfully it could be rebuilt."""
    method, url, verdict = record.get("method"), record.get("url"), record.get("verdict")
    if not isinstance(method, str) or not isinstance(url, str) or verdict is None or (
            method == "CONNECT"):
        return None
    agent = str(record.get("agent") or "anonymous")
    entities = record.get("request_entities")
    found = frozenset(entities) if isinstance(entities, list) else None
    pending_id = record.get("pending_id")
    item = held(pending_id) if isinstance(pending_id, str) else None
    if item is not None:
        request = item.request
        try:
            body = decode_body(request.body, _header(request.headers, "content-encoding"),
                               MAX_BODY_BYTES)
        except UndecodableBody:
            body = b""
        return replace(request.to_call(agent, body), request_entities=found), "exact"
    envelope = open_envelope(kept(str(record.get("request_id"))) or b"")
    if envelope is not None:
        headers = tuple((str(k), str(v)) for k, v in envelope["headers"])  # type: ignore[union-attr]
        raw = base64.b64decode(str(envelope["body_base64"]))
        try:
            body = decode_body(raw, _header(headers, "content-encoding"), MAX_BODY_BYTES)
        except UndecodableBody:
            body = b""
        call = _from_url(method, str(envelope.get("url", url)), agent, found)
        return replace(call, headers=tuple((k.lower(), v) for k, v in headers),
                       body=body), "exact"
    return _from_url(method, url, agent, found), "url"


def _from_url(method: str, url: str, agent: str, found: frozenset[str] | None) -> Call:
    parts = urlsplit(url)
    scheme = parts.scheme or "http"
    return Call(method=method, scheme=scheme, host=(parts.hostname or "").lower(),
                port=parts.port or (443 if scheme == "https" else 80), path=parts.path or "/",
                query=tuple(parse_qsl(parts.query, keep_blank_values=True)), agent=agent,
                request_entities=found)


def _action(candidate: Policy, call: Call, record: dict[str, object], *, exact: bool) -> Action:
    action = classify(candidate, call)
    if exact:
        return action
    recorded = record.get("params")
    params = recorded if isinstance(recorded, dict) else {}
    if action.type == UNCLASSIFIED and isinstance(record.get("action"), str):
        # classified by the body on record (an MCP tool): the URL alone cannot say
        return Action(type=str(record["action"]), tags=frozenset(
            record.get("tags") or ()), params=params)  # type: ignore[arg-type]
    return replace(action, params={**params, **action.params})


def _header(headers: tuple[tuple[str, str], ...], name: str) -> str | None:
    return next((v for k, v in headers if k.lower() == name), None)


def calls_on_record(query: Callable[..., list[dict[str, object]]], since: datetime | None,
                    until: datetime | None, event: str = "call.decided", page: int = 5000
                    ) -> Iterator[dict[str, object]]:
    """Every `event` record in the window, oldest first, a page at a time."""
    after = 0
    while True:
        batch = query(event=event, since=since, until=until, after_seq=after, limit=page)
        yield from batch
        if len(batch) < page:
            return
        after = int(batch[-1]["seq"])  # type: ignore[arg-type]
