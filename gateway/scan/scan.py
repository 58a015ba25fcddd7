"""Find personal data in texts, after undoing the disguises `normalise` knows.

`scan_texts` scans the distinct strings of one body together, with Presidio's recognizers but not
through `AnalyzerEngine.analyze` once per string, whose fixed cost dominates for short strings:
- each recognizer runs only on the texts its `prefilter` test admits (a necessary condition, so
  nothing is lost); a policy's own recognizers run on every text;
- Presidio's regex recognizers and the phone recognizer run once over the admitted texts joined
  by a line break (`\\b`, `^`, `$` and the look-behinds see a text edge there, as alone, and no
  phone number candidate takes a line break); a match that would cross a join sends the texts
  it touches to be scanned one by one, so joining never changes a result;
- the NER model reads only free text (`prefilter.is_free_text`), in one `nlp.pipe` batch;
- then as Presidio does: context words (the five words before a match) raise scores, scores
  under `min_score` are dropped, duplicates are removed;
- findings of short texts (keys, enum values) are kept in a bounded per-process LRU cache.
"""

from __future__ import annotations

import functools
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from presidio_analyzer import AnalyzerEngine, EntityRecognizer, PatternRecognizer
from presidio_analyzer import RecognizerResult as Result
from presidio_analyzer.predefined_recognizers import SpacyRecognizer

from gateway.scan import prefilter
from gateway.scan.analyzer import (
    LANGUAGE,
    CustomSpec,
    Tier,
    WordsNlpEngine,
    covered_entities,
    custom_specs,
    get_analyzer,
)
from gateway.scan.normalise import Normalised, normalise, regroup_digits
from gateway.scan.recognizers import PhoneNumberRecognizer

# Below this Presidio's scores are weak guesses (a bare 9-digit number as US_SSN scores 0.05).
DEFAULT_MIN_SCORE = 0.4
# Texts up to this long are cached (keys, enum values, short ids repeat across bodies).
CACHED_CHARS = 64
CACHE_ENTRIES = 16_384
_JOIN = "\n"
_NER_BATCH = 64


@dataclass(frozen=True, slots=True)
class Finding:
    """One entity: its type, its span in the ORIGINAL text (for redaction), Presidio's score."""

    entity: str
    start: int
    end: int
    score: float


@dataclass(frozen=True, slots=True)
class _Runner:
    """A recognizer, the test a text must pass for it to run, and whether texts may be joined."""

    recognizer: EntityRecognizer
    test: prefilter.Test | None
    joined: bool


@dataclass(slots=True)
class _Engine:
    """Everything one (tier, policy recognizers, entity list) needs, built once per process."""

    analyzer: AnalyzerEngine
    entities: list[str]
    runners: list[_Runner]
    ner: SpacyRecognizer | None
    recognizers: list[EntityRecognizer]
    # recognizer id → its context words, lower case, for the recognizers whose results context
    # words can raise (None: every result goes through Presidio's enhancer, see `_finish`)
    contextual: dict[str, tuple[str, ...]] | None
    cache: OrderedDict[tuple[float, str], tuple[Finding, ...]] = field(default_factory=OrderedDict)


_WORDS = WordsNlpEngine()
_WORDS.load()


def _predefined(recognizer: EntityRecognizer) -> bool:
    """Presidio's and Gatehouse's recognizers (whose patterns `prefilter` was read from), not a
    policy's."""
    module = type(recognizer).__module__
    return module in _OURS or module.startswith("presidio_analyzer.predefined_recognizers")


_OURS = ("gateway.scan.recognizers",)


def _test(recognizer: EntityRecognizer, entities: frozenset[str]) -> prefilter.Test | None:
    if not _predefined(recognizer):
        return None  # a policy's own pattern: no test is known to hold for it
    mine = frozenset(recognizer.supported_entities) & entities
    if not all(e in prefilter.TESTS for e in mine):
        return None
    if len(mine) == 1:
        return prefilter.TESTS[next(iter(mine))]
    return functools.partial(prefilter.needs, mine)


@functools.lru_cache(maxsize=64)
def _engine(tier: Tier, specs: tuple[CustomSpec, ...], wanted: tuple[str, ...] | None) -> _Engine:
    analyzer = get_analyzer(tier, specs)
    recognizers = analyzer.registry.get_recognizers(
        language=LANGUAGE, entities=list(wanted or ()), all_fields=wanted is None
    )
    entities = list(wanted) if wanted is not None else analyzer.get_supported_entities(LANGUAGE)
    runners: list[_Runner] = []
    ner = None
    for recognizer in recognizers:
        if not recognizer.is_loaded:
            recognizer.load()
            recognizer.is_loaded = True
        if isinstance(recognizer, SpacyRecognizer):
            ner = recognizer
            continue
        joined = (isinstance(recognizer, PatternRecognizer) and _predefined(recognizer)
                  or isinstance(recognizer, PhoneNumberRecognizer))
        runners.append(_Runner(recognizer, _test(recognizer, frozenset(entities)), joined))
    contextual: dict[str, tuple[str, ...]] | None = {
        r.id: tuple(w.lower() for w in r.context) for r in recognizers if r.context
    }
    if any(type(r).enhance_using_context is not EntityRecognizer.enhance_using_context
           or not all(w.isascii() for w in r.context or ()) for r in recognizers):
        contextual = None  # own context logic, or words `_finish` cannot look for: enhance all
    return _Engine(analyzer, entities, runners, ner, list(recognizers), contextual)


def _run_joined(runner: _Runner, texts: list[str], entities: list[str]) -> list[list[Result]]:
    """One call over the texts joined; texts a match would cross are scanned alone instead."""
    starts: list[int] = []
    at = 0
    for text in texts:
        starts.append(at)
        at += len(text) + len(_JOIN)
    found: list[list[Result]] = [[] for _ in texts]
    alone: set[int] = set()
    for r in runner.recognizer.analyze(_JOIN.join(texts), entities, None):
        i = bisect_right(starts, r.start) - 1
        if r.end <= starts[i] + len(texts[i]) and r.start < starts[i] + len(texts[i]):
            r.start -= starts[i]
            r.end -= starts[i]
            found[i].append(r)
        else:  # crosses a join: scan every text it touches on its own
            alone.update(range(i, bisect_right(starts, r.end - 1)))
    for i in alone:
        found[i] = runner.recognizer.analyze(texts[i], entities, None)
    return found


def _ner(engine: _Engine, texts: list[str]) -> list[list[Result]]:
    nlp_engine = engine.analyzer.nlp_engine
    nlp = nlp_engine.nlp[LANGUAGE]
    found: list[list[Result]] = []
    mapping = nlp_engine.ner_model_configuration.model_to_presidio_entity_mapping
    for doc in nlp.pipe(texts, batch_size=_NER_BATCH):
        # Labels Presidio does not map (CARDINAL, MONEY, ...) are dropped here: Presidio keeps
        # them under their own name, logging a warning each, and its recognizer then skips them.
        pairs = [(e, s) for e, s in zip(doc.ents, nlp_engine._get_scores_for_entities(doc),
                                        strict=True) if e.label_ in mapping]
        ents, scores = nlp_engine._get_updated_entities([e for e, _ in pairs],
                                                        [s for _, s in pairs])
        found.append(engine.ner.analyze(doc.text, engine.entities, _NerArtifacts(ents, scores)))
    return found


@dataclass(slots=True)
class _NerArtifacts:
    """What Presidio's `SpacyRecognizer` reads of `NlpArtifacts`."""

    entities: Sequence[Any]
    scores: Sequence[float]


def _finish(
    engine: _Engine, view: Normalised, raw: list[Result], min_score: float
) -> list[Finding]:
    """Context, threshold and duplicates as `AnalyzerEngine.analyze` does, then original spans.

    Only results context words could change go through Presidio's enhancer (which copies them
    and needs the text's words): not those at the top score, nor those none of whose
    recognizer's context words is in the text at all (the enhancer looks for them in the lower
    case words around a match: parts of the lower case text, for ASCII context words).
    """
    results = raw
    if engine.contextual is None:
        moving = raw
    else:
        lowered = view.text.lower()
        moving = [r for r in raw if r.score < EntityRecognizer.MAX_SCORE and any(
            w in lowered for w in engine.contextual.get(
                r.recognition_metadata[Result.RECOGNIZER_IDENTIFIER_KEY], ()))]
    if moving:
        artifacts = _WORDS.process_text(view.text, LANGUAGE)
        moved = engine.analyzer._enhance_using_context(
            view.text, moving, artifacts, engine.recognizers, None
        )
        if moving is not raw:
            ids = {id(r) for r in moving}
            moved = [r for r in raw if id(r) not in ids] + moved
        results = moved
    results = [r for r in results if r.score >= min_score]
    findings = []
    for r in EntityRecognizer.remove_duplicates(results):
        start, end = view.original_span(r.start, r.end)
        if end > start:
            findings.append(Finding(r.entity_type, start, end, round(float(r.score), 4)))
    return findings


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


def _scan_uncached(engine: _Engine, texts: list[str], min_score: float) -> list[list[Finding]]:
    views: list[Normalised] = []
    owner: list[int] = []
    for i, text in enumerate(texts):
        view = normalise(text)
        views.append(view)
        owner.append(i)
        # Separated digit groups are scanned a second time regrouped, only when there are any,
        # so that `536 22 8726` is found without turning an IBAN or an IP address into another.
        regrouped = regroup_digits(view) if prefilter.digit_count(view.text) > 1 else view
        if regrouped is not view:
            views.append(regrouped)
            owner.append(i)
    raw: list[list[Result]] = [[] for _ in views]
    for runner in engine.runners:
        chosen = [i for i, v in enumerate(views) if runner.test is None or runner.test(v.text)]
        if not chosen:
            continue
        if runner.joined and len(chosen) > 1:
            found = _run_joined(runner, [views[i].text for i in chosen], engine.entities)
        else:
            found = [runner.recognizer.analyze(views[i].text, engine.entities, None)
                     for i in chosen]
        for i, results in zip(chosen, found, strict=True):
            raw[i].extend(results)
    if engine.ner is not None:
        # The model reads the first view only: regrouped digits change no name or place.
        firsts = [i for i, v in enumerate(views) if i == 0 or owner[i] != owner[i - 1]]
        chosen = [i for i in firsts if prefilter.is_free_text(views[i].text)]
        for i, results in zip(chosen, _ner(engine, [views[i].text for i in chosen]), strict=True):
            raw[i].extend(results)
    per_text: list[list[Finding]] = [[] for _ in texts]
    for i, view in enumerate(views):
        if raw[i]:
            per_text[owner[i]].extend(_finish(engine, view, raw[i], min_score))
    return [_merge(f) for f in per_text]


def scan_texts(
    texts: Sequence[str],
    tier: Tier | str = Tier.PATTERNS,
    entities: Iterable[str] | None = None,
    min_score: float = DEFAULT_MIN_SCORE,
    recognizers: Iterable[object] = (),
) -> list[list[Finding]]:
    """`scan_text` for many texts at once (the distinct strings of one body), in their order."""
    tier = Tier(tier)
    specs = custom_specs(recognizers)
    wanted: tuple[str, ...] | None = None
    if entities is not None:
        # Types the tier cannot see are dropped here (start-up logs the coverage), not sent to
        # Presidio, which warns about them or fails when none is left.
        wanted = tuple(sorted(set(entities) & set(covered_entities(tier, specs))))
        if not wanted:
            return [[] for _ in texts]
    engine = _engine(tier, specs, wanted)
    out: list[list[Finding] | None] = [None] * len(texts)
    todo: dict[str, list[int]] = {}
    for i, text in enumerate(texts):
        if not text:
            out[i] = []
            continue
        hit = engine.cache.get((min_score, text)) if len(text) <= CACHED_CHARS else None
        if hit is not None:
            engine.cache.move_to_end((min_score, text))
            out[i] = list(hit)
        else:
            todo.setdefault(text, []).append(i)
    if todo:
        unique = list(todo)
        for text, findings in zip(unique, _scan_uncached(engine, unique, min_score), strict=True):
            for i in todo[text]:
                out[i] = list(findings)
            if len(text) <= CACHED_CHARS:
                engine.cache[(min_score, text)] = tuple(findings)
                if len(engine.cache) > CACHE_ENTRIES:
                    engine.cache.popitem(last=False)
    return out  # type: ignore[return-value]


def scan_text(
    text: str,
    tier: Tier | str = Tier.PATTERNS,
    entities: Iterable[str] | None = None,
    min_score: float = DEFAULT_MIN_SCORE,
    recognizers: Iterable[object] = (),
) -> list[Finding]:
    """Entities in `text` (all the tier covers when `entities` is None), scanned once normalised.

    Separated digit groups are scanned a second time regrouped, only when there are any, so that
    `536 22 8726` is found without turning an IBAN or an IP address into something else.
    `recognizers` are the policy's own (`RecognizerSpec`s): their entity types are found too.
    """
    return scan_texts([text], tier, entities, min_score, recognizers)[0]
