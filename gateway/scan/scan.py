"""Find personal data in a piece of text, after undoing the disguises `normalise` knows."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gateway.scan.analyzer import LANGUAGE, Tier, covered_entities, get_analyzer
from gateway.scan.normalise import Normalised, normalise, regroup_digits

# Below this Presidio's scores are weak guesses (a bare 9-digit number as US_SSN scores 0.05).
DEFAULT_MIN_SCORE = 0.4


@dataclass(frozen=True, slots=True)
class Finding:
    """One entity: its type, its span in the ORIGINAL text (for redaction), Presidio's score."""

    entity: str
    start: int
    end: int
    score: float


def _analyze(view: Normalised, tier: Tier, entities: list[str] | None, min_score: float):
    results = get_analyzer(tier).analyze(
        text=view.text, language=LANGUAGE, entities=entities, score_threshold=min_score
    )
    for r in results:
        start, end = view.original_span(r.start, r.end)
        if end > start:
            yield Finding(r.entity_type, start, end, round(float(r.score), 4))


def _merge(findings: Iterable[Finding]) -> list[Finding]:
    """Overlapping findings of one type become one, with the widest span and the best score."""
    merged: list[Finding] = []
    for f in sorted(findings, key=lambda f: (f.entity, f.start, -f.end)):
        last = merged[-1] if merged else None
        if last and last.entity == f.entity and f.start < last.end:
            merged[-1] = Finding(
                f.entity, last.start, max(last.end, f.end), max(last.score, f.score)
            )
        else:
            merged.append(f)
    return sorted(merged, key=lambda f: (f.start, f.end, f.entity))


def scan_text(
    text: str,
    tier: Tier | str = Tier.PATTERNS,
    entities: Iterable[str] | None = None,
    min_score: float = DEFAULT_MIN_SCORE,
) -> list[Finding]:
    """Entities in `text` (all the tier covers when `entities` is None), scanned once normalised.

    Separated digit groups are scanned a second time regrouped, only when there are any, so that
    `536 22 8726` is found without turning an IBAN or an IP address into something else.
    """
    tier = Tier(tier)
    wanted: list[str] | None = None
    if entities is not None:
        # Types the tier cannot see are dropped here (start-up logs the coverage), not sent to
        # Presidio, which warns about them or fails when none is left.
        wanted = sorted(set(entities) & set(covered_entities(tier)))
        if not wanted:
            return []
    view = normalise(text)
    findings = list(_analyze(view, tier, wanted, min_score))
    regrouped = regroup_digits(view)
    if regrouped is not view:
        findings.extend(_analyze(regrouped, tier, wanted, min_score))
    return _merge(findings)
