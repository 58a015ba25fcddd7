"""The naive way to scan responses, as the benchmark's anchor: Presidio NER in the proxy's loop.

    mitmdump -s tests/bench/naive_presidio.py [--set naive_analyzer=stock]

A mitmproxy addon that, in the `response` hook and on the event loop, analyzes each decoded body
text in one Presidio call and replaces what it finds by `<TYPE>`; a body with a quarantine
entity is answered 502 instead. Every call waits for every other call's scan: this is what
Gatehouse's worker pool is measured against.

The analyzer is Gatehouse's `ner` tier (`gateway.scan.analyzer`: the spaCy model's NER alone,
Gatehouse's quicker phone recognizer), or with `naive_analyzer=stock` what Presidio builds by
default around the same installed model: its whole pipeline and Presidio's own recognizers,
as a deployment that only installs Presidio would run it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from mitmproxy import ctx, exceptions, http

if str(Path(__file__).resolve().parents[2]) not in sys.path:  # mitmdump adds only this folder
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from presidio_analyzer import AnalyzerEngine, RecognizerRegistry  # noqa: E402
from presidio_analyzer.nlp_engine import SpacyNlpEngine  # noqa: E402

from gateway.scan.analyzer import (  # noqa: E402
    LANGUAGE,
    NER_MODEL,
    _offline_tldextract,
    get_analyzer,
)

DETECT = ["EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN", "CREDIT_CARD", "IBAN_CODE", "PERSON"]
QUARANTINE = {"US_SSN", "CREDIT_CARD", "IBAN_CODE"}


def stock_analyzer() -> AnalyzerEngine:
    """Presidio's defaults around the installed model, never downloading anything."""
    _offline_tldextract()
    nlp_engine = SpacyNlpEngine(models=[{"lang_code": LANGUAGE, "model_name": NER_MODEL}])
    nlp_engine.load()
    registry = RecognizerRegistry(supported_languages=[LANGUAGE])
    registry.load_predefined_recognizers(languages=[LANGUAGE], nlp_engine=nlp_engine)
    return AnalyzerEngine(registry=registry, nlp_engine=nlp_engine,
                          supported_languages=[LANGUAGE])


def redact(text: str, analyzer: AnalyzerEngine) -> str | None:
    """`text` with each finding replaced by `<TYPE>`, or None when it must be held."""
    findings = analyzer.analyze(text, language=LANGUAGE, entities=DETECT)
    if any(f.entity_type in QUARANTINE for f in findings):
        return None
    out: list[str] = []
    at = 0
    for f in sorted(findings, key=lambda f: (f.start, -f.end)):
        if f.start < at:  # overlaps one already replaced
            continue
        out += [text[at:f.start], f"<{f.entity_type}>"]
        at = f.end
    return "".join(out) + text[at:]


class NaivePresidio:
    def __init__(self) -> None:
        self.analyzer: AnalyzerEngine | None = None

    def load(self, loader: Any) -> None:
        loader.add_option("naive_analyzer", str, "gatehouse",
                          "`gatehouse`: the `ner` tier's analyzer; `stock`: Presidio's defaults")

    def configure(self, updated: set[str]) -> None:
        if "naive_analyzer" in updated:  # built here, before the first response
            choice = ctx.options.naive_analyzer
            if choice not in ("gatehouse", "stock"):
                raise exceptions.OptionsError(f"naive_analyzer: `{choice}` is not gatehouse "
                                              "or stock")
            self.analyzer = get_analyzer("ner") if choice == "gatehouse" else stock_analyzer()

    def response(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        if response is None or not response.content:
            return
        text = response.get_text(strict=False)
        if text is None:
            return
        assert self.analyzer is not None
        redacted = redact(text, self.analyzer)
        if redacted is None:
            flow.response = http.Response.make(502, b"quarantined")
        elif redacted != text:
            response.text = redacted


addons = [NaivePresidio()]
