"""Evidence is kept under its hash, once, and an altered file is refused when read."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from gateway.evidence import EvidenceError, EvidenceStore, envelope, open_envelope


def test_bytes_are_kept_once_under_their_sha256(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path)
    digest = store.put(b"original response")
    assert digest == hashlib.sha256(b"original response").hexdigest()
    assert store.put(b"original response") == digest
    assert store.get(digest) == b"original response"
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [digest]


def test_an_altered_file_is_refused(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path)
    digest = store.put(b"original response")
    (tmp_path / digest[:2] / digest).write_bytes(b"edited response")
    with pytest.raises(EvidenceError, match="altered on disk"):
        store.get(digest)


@pytest.mark.parametrize("digest", ["0" * 63, "../" + "a" * 61, "A" * 64])
def test_only_digests_name_files(tmp_path: Path, digest: str) -> None:
    with pytest.raises(EvidenceError, match="not a SHA-256 digest"):
        EvidenceStore(tmp_path).get(digest)


def test_missing_evidence_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(EvidenceError, match="is missing"):
        EvidenceStore(tmp_path).get("ab" * 32)


def test_an_envelope_keeps_a_message_whole_and_opens_with_its_text() -> None:
    data = envelope({"method": "POST", "url": "https://x.example/a"},
                    [("Content-Type", "application/json"), ("X-Twice", "1"), ("X-Twice", "2")],
                    b'{"a": "\\u00e9"}')
    opened = open_envelope(data)
    assert opened is not None
    assert opened["headers"] == [["Content-Type", "application/json"], ["X-Twice", "1"],
                                 ["X-Twice", "2"]]
    assert opened["body_text"] == '{"a": "\\u00e9"}'
    binary = open_envelope(envelope({"status": 200}, [], b"\xff\xfe"))
    assert binary is not None and binary["body_text"] is None


def test_evidence_that_is_not_an_envelope_opens_as_nothing() -> None:
    assert open_envelope(b"<html>") is None
    assert open_envelope(b'{"customer": {"ssn": "x"}}') is None  # a quarantined body, say
