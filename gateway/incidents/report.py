"""The incident record for legal and compliance: the chain, in prose a person can sign off.

Every value comes from the chain (`gateway.incidents.chain`), which comes from the audit trail;
only the remediation items are left for people to fill in, each with an owner and a due date.
"""

from __future__ import annotations

from typing import Any

LAYERS = ("agent", "policy", "review")


def report_json(chain: dict[str, Any]) -> dict[str, object]:
    incident = chain["incident"]
    return {
        "summary": {key: incident[key] for key in (
            "id", "title", "severity", "opened_at", "opened_by", "agent", "request_id",
            "halt_id", "contained_at")},
        "bad_call": chain["bad_call"],
        "layers": chain["layers"],
        "hypotheses": chain["hypotheses"],
        "timeline": chain["timeline"],
        "rollback": chain["rollback"],
        "remediation": [{"layer": layer, "action": None, "owner": None, "due": None}
                        for layer in LAYERS],
    }


def report_markdown(chain: dict[str, Any]) -> str:
    incident = chain["incident"]
    lines = [f"# Incident {incident['id']} · {incident['severity']}", "",
             f"- **Title:** {incident['title']}",
             f"- **Opened:** {incident['opened_at']} by {incident['opened_by']}"]
    call = chain["bad_call"]
    if call:
        lines.append(f"- **Bad call:** `{call['request_id']}` {call['method']} {call['url']} "
                     f"by `{call['agent']}` at {call['ts']}")
    containment = (f"halt `{incident['halt_id']}` at {incident['contained_at']}"
                   if incident["halt_id"] else "none")
    lines += [f"- **Containment:** {containment}", ""]
    ranks = {h["layer"]: h for h in chain["hypotheses"]}
    lines += _agent(chain["layers"]["agent"], ranks.get("agent"))
    lines += _policy(chain["layers"]["policy"], ranks.get("policy"))
    lines += _review(chain["layers"]["review"], ranks.get("review"))
    lines += ["## Timeline", ""] + [
        f"- {e['at']} {e['what']} — {e['outcome']}"
        + (f" (`{e['request_id']}`)" if e["request_id"] else "") for e in chain["timeline"]]
    lines += ["", "## Rollback inventory", ""]
    lines += [f"- {r['at']} {r['action']} {r['method']} {r['url']} → "
              + (", ".join(f"{k}={v}" for k, v in r["ids"].items()) or "no ids returned")
              for r in chain["rollback"]] or ["- no side-effecting call went out in the window"]
    lines += ["", "## Remediation (to be filled by people; owner and due date required)", ""]
    lines += [f"- {layer}: …   owner: …   due: …" for layer in LAYERS]
    return "\n".join(lines) + "\n"


def _heading(layer: str, hypothesis: dict[str, Any] | None) -> list[str]:
    rank = (f" — {hypothesis['rank']} failure (hypothesis)" if hypothesis
            else " — no failure found (hypothesis)")
    lines = [f"## {layer.capitalize()} layer{rank}", ""]
    if hypothesis:
        lines += [f"*Hypothesis, to be confirmed:* {hypothesis['statement']}."]
        lines += [f"- evidence: {item}" for item in hypothesis["evidence"]]
        lines.append("")
    return lines


def _agent(layer: dict[str, Any], hypothesis: dict[str, Any] | None) -> list[str]:
    lines = _heading("agent", hypothesis)
    call = layer.get("call")
    if call:
        lines.append(f"- Call: {call['action']} with parameters {call['params']}")
    for model in layer["model_calls"]:
        calls = ", ".join(f"{c['name']}({c['arguments']})" for c in model["tool_calls"])
        lines.append(f"- Model call {model['at']}: {model['model']}, temperature "
                     f"{model['temperature']}, tools offered {model['tools']}; "
                     f"tool calls: {calls or 'none'}")
    for document in layer["documents"]:
        flags = ", ".join(f'"{f}"' for f in document["instruction_like"]) or "none"
        lines.append(f"- Document {document['at']}: {document['url']} (sha256 "
                     f"{str(document['sha256'])[:12]}…), instruction-like text: {flags}")
    return lines + [""]


def _policy(layer: dict[str, Any], hypothesis: dict[str, Any] | None) -> list[str]:
    lines = _heading("policy", hypothesis)
    if "note" in layer:
        return lines + [f"- {layer['note']}", ""]
    rules = ", ".join(f"{r.get('id')} ({r.get('decision', '?')}"
                      + (f", tier {r['tier']}" if r.get("tier") else "") + ")"
                      for r in layer["rules_fired"]) or "none (the policy default)"
    lines += [f"- Decision: {layer['decision']}; rules fired: {rules}",
              f"- Snapshot: {layer['snapshot_id']} (revision {layer['revision']}), active since "
              f"{layer['active_since']} ({layer['active_for_seconds']} s before the call)"]
    lines += [f"- Change from {layer['previous_snapshot_id']}: {change}"
              for change in layer["changes_from_previous"]]
    lines += [f"- Missing dimension: {hint}" for hint in layer["missing_dimensions"]]
    return lines + [""]


def _review(layer: dict[str, Any], hypothesis: dict[str, Any] | None) -> list[str]:
    lines = _heading("review", hypothesis)
    if "note" in layer:
        return lines + [f"- {layer['note']}", ""]
    lines += [f"- Held as `{layer['pending_id']}` (tier {layer['tier']}, route {layer['route']})",
              f"- Shown: {', '.join(layer['shown'])}; not shown: {', '.join(layer['not_shown'])}"]
    for vote in layer["votes"]:
        pattern = vote["pattern"]
        lines += [f"- {vote['reviewer']} voted {vote['verdict']} at {vote['at']}, first opened "
                  f"{vote['first_opened']} ({vote['seconds_to_vote']} s); reason: "
                  f"{vote['reason'] or '(none)'}",
                  f"  - pattern: {pattern['reviews_in_previous_hour']} reviews in the previous "
                  f"hour, approval rate {pattern['approval_rate']}, queue depth "
                  f"{pattern['queue_depth']}, hour {pattern['hour_of_day_utc']} UTC",
                  f"  - flags: {', '.join(vote['flags']) or 'none'}"]
    return lines + [""]
