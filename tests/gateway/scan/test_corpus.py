"""Recall and precision per entity type on a generated corpus (see `corpus.py`), with targets.

The table is printed to the terminal even without `-s`. Targets: structured entities (e-mail,
phone, SSN, card, IBAN) recall ≥ 0.98 in both tiers; PERSON recall ≥ 0.85 in the `ner` tier.
A target not met is marked as an expected failure with the measured figure and why (`_SHORT`):
a strict xfail, so meeting it later turns the test red until the mark goes.

Phone numbers: the corpus holds VALID numbers only (`corpus.is_valid_phone`). Faker en_US makes
up area codes (`(569)798-2887`, `+1-390-780-8139`), so about one of its numbers in six is valid
for no region; Presidio's recognizer, matching at phonenumbers' VALID leniency, found none of
those (recall 0.83 on Faker's raw output). Real traffic carries real numbers, so the corpus draws
again; on valid numbers recall is 1.000 in both tiers.
Made-up numbers are still found when written the North American way (`NANP_SHAPE` in
`gateway.scan.recognizers`: a bracketed or separated area code and exchange starting 2-9, then
four digits): in a response an agent reads, a realistic-looking number is most likely someone's
phone, and nothing measured says it costs precision. With and without it: 0 false positives on
this corpus' negatives (ids, amounts, dates, products, SSNs, cards, IBANs), and 0 phone findings
in 70,593 strings of benchmark bodies without personal data. A bare run of ten digits is not
taken by its shape (ids look like that). `test_made_up_north_american_numbers` measures both.
"""

from __future__ import annotations

from collections import Counter

import pytest
from faker import Faker

from gateway.scan.scan import Finding, scan_texts
from tests.gateway.scan.corpus import ENTITIES, STRUCTURED, Corpus, Sample, is_valid_phone

TARGETS = {**{e: 0.98 for e in STRUCTURED}, "PERSON": 0.85}


@pytest.fixture(scope="module")
def samples() -> list[Sample]:
    return Corpus().samples()


def _score(samples: list[Sample], tier: str) -> dict[str, dict[str, float]]:
    texts = list(dict.fromkeys(s.text for s in samples))
    found = dict(zip(texts, scan_texts(texts, tier, ENTITIES), strict=True))
    counts: Counter[tuple[str, str]] = Counter()
    for sample in samples:
        findings: list[Finding] = found[sample.text]
        for entity, start, end in sample.spans:
            hit = any(f.entity == entity and f.start < end and start < f.end for f in findings)
            counts[entity, "tp" if hit else "fn"] += 1
        for f in findings:
            right = any(e == f.entity and s < f.end and f.start < t for e, s, t in sample.spans)
            counts[f.entity, "found_right" if right else "fp"] += 1
    table = {}
    for entity in ENTITIES:
        gold = counts[entity, "tp"] + counts[entity, "fn"]
        reported = counts[entity, "found_right"] + counts[entity, "fp"]
        table[entity] = {
            "gold": gold,
            "recall": counts[entity, "tp"] / gold if gold else 1.0,
            "precision": counts[entity, "found_right"] / reported if reported else 1.0,
            "fp": counts[entity, "fp"],
        }
    return table


def _show(tier: str, table: dict[str, dict[str, float]], capsys: pytest.CaptureFixture) -> None:
    lines = [f"\ncorpus scores, tier {tier}",
             f"{'entity':<15}{'gold':>6}{'recall':>9}{'precision':>11}{'false +':>9}"]
    for entity, row in table.items():
        lines.append(f"{entity:<15}{row['gold']:>6}{row['recall']:>9.3f}"
                     f"{row['precision']:>11.3f}{row['fp']:>9}")
    with capsys.disabled():
        print("\n".join(lines))


_TABLES: dict[str, dict[str, dict[str, float]]] = {}


@pytest.fixture(params=["patterns", "ner"])
def table(request: pytest.FixtureRequest, samples: list[Sample],
          capsys: pytest.CaptureFixture) -> tuple[str, dict[str, dict[str, float]]]:
    tier = request.param
    if tier not in _TABLES:
        _TABLES[tier] = _score(samples, tier)
        _show(tier, _TABLES[tier], capsys)
    return tier, _TABLES[tier]


# Targets not met, entity → why. Met since: CREDIT_CARD (0.72 with Presidio's card pattern
# alone, 13 to 17 digits starting 1, 3, 4, 5[0-5] or 6; 1.000 with `recognizers.CardRecognizer`)
# and PHONE_NUMBER (see the module docstring).
_SHORT: dict[str, str] = {}


@pytest.mark.parametrize(
    "entity",
    [pytest.param(e, marks=pytest.mark.xfail(strict=True, reason=_SHORT[e])) if e in _SHORT
     else e for e in TARGETS],
)
def test_recall_meets_the_target(
    entity: str, table: tuple[str, dict[str, dict[str, float]]]
) -> None:
    tier, scores = table
    if tier == "patterns" and entity not in STRUCTURED:
        assert scores[entity]["recall"] == 0.0  # the patterns tier has no model
        return
    assert scores[entity]["recall"] >= TARGETS[entity], (tier, entity, scores[entity])


def test_precision_of_what_is_found(table: tuple[str, dict[str, dict[str, float]]]) -> None:
    tier, scores = table
    for entity in STRUCTURED:
        assert scores[entity]["precision"] >= 0.98, (tier, entity, scores[entity])


def test_made_up_north_american_numbers() -> None:
    """Faker's numbers that are valid nowhere: found when formatted, not as bare digit runs."""
    fake = Faker("en_US")
    fake.seed_instance(7)
    made_up = [n for n in (fake.phone_number() for _ in range(2000)) if not is_valid_phone(n)]
    found = dict(zip(made_up, scan_texts(made_up, "patterns", ["PHONE_NUMBER"]), strict=True))
    formatted = [n for n in made_up if not n.isdigit()]
    bare = [n for n in made_up if n.isdigit()]
    assert len(formatted) > 200 and bare
    assert [n for n in formatted if [(f.start, f.end) for f in found[n]] != [(0, len(n))]] == []
    assert [n for n in bare if found[n]] == []
