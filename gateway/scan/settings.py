"""What to scan a response for, resolved from the policy for one action.

A `ScanSettings` is plain frozen data, so it travels to a scanning worker process as is and can
key a cache there; `settings_for` applies `skip_actions` and the first matching override.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.policy.globs import Glob
from gateway.policy.schema import Responses, scan_tier
from gateway.scan.entities import NER_ENTITIES


@dataclass(frozen=True, slots=True)
class RecognizerSpec:
    """A policy-defined entity type found by a regex, as Presidio's `PatternRecognizer` takes it."""

    name: str
    regex: str
    score: float
    context: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ScanSettings:
    """Everything a scan of one body needs, and nothing that cannot be pickled."""

    tier: str
    detect: tuple[str, ...]
    redact: tuple[str, ...] = ()
    quarantine: tuple[str, ...] = ()
    recognizers: tuple[RecognizerSpec, ...] = ()
    binary: str = "allow"
    max_body_bytes: int = 8 * 1024 * 1024
    timeout_seconds: float = 10.0


def _recognizers(responses: Responses,
                 only: frozenset[str] | None = None) -> tuple[RecognizerSpec, ...]:
    return tuple(RecognizerSpec(r.name, r.regex, r.score, tuple(r.context))
                 for r in responses.recognizers if only is None or r.name in only)


def settings_for(responses: Responses, action: str) -> ScanSettings | None:
    """The settings for `action`'s responses, or None when they are not scanned at all."""
    if any(Glob(g).matches(action) for g in responses.skip_actions):
        return None
    lists = {"detect": responses.detect, "redact": responses.redact,
             "quarantine": responses.quarantine, "binary": responses.binary}
    for override in responses.overrides:
        if any(Glob(g).matches(action) for g in override.actions):
            lists.update({k: v for k, v in override.model_dump(exclude={"actions"}).items()
                          if v is not None})
            break
    if not lists["detect"] and lists["binary"] == "allow":
        return None
    return ScanSettings(
        tier=scan_tier(responses),
        detect=tuple(lists["detect"]),
        redact=tuple(lists["redact"]),
        quarantine=tuple(lists["quarantine"]),
        recognizers=_recognizers(responses),
        binary=lists["binary"],
        max_body_bytes=responses.max_body_bytes,
        timeout_seconds=float(responses.scan_timeout_seconds),
    )


def request_settings(responses: Responses, entities: frozenset[str]) -> ScanSettings:
    """Settings to look for `entities` in a request (outbound DLP): detect only, no redaction;
    the NER tier only when an entity needs it; the policy's own recognizers available."""
    return ScanSettings(
        tier="ner" if entities & NER_ENTITIES else "patterns",
        detect=tuple(sorted(entities)),
        recognizers=_recognizers(responses, entities),
        binary="quarantine",  # a body that is not text cannot be shown clean
        max_body_bytes=responses.max_body_bytes,
        timeout_seconds=float(responses.scan_timeout_seconds),
    )
