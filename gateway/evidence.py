"""Content-addressed evidence: bytes kept under their SHA-256 in the state directory.

A body is named by its hash, so the same body stored twice is one file, a record that cites
`sha256:...` cannot be pointed at different bytes later, and a file altered on disk is detected
when read. Writes are durable before `put` returns (written aside, fsynced, renamed).
"""

from __future__ import annotations

import base64
import hashlib
import os
import tempfile
from pathlib import Path

import orjson


class EvidenceError(Exception):
    """Evidence is missing or no longer matches its hash."""


class EvidenceStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, digest: str) -> Path:
        if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            raise EvidenceError(f"not a SHA-256 digest: {digest[:80]!r}")
        return self.root / digest[:2] / digest

    def put(self, data: bytes) -> str:
        """Keep `data`; its hex SHA-256, by which it is read back."""
        digest = hashlib.sha256(data).hexdigest()
        path = self._path(digest)
        if path.exists():
            return digest
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return digest

    def has(self, digest: str) -> bool:
        return self._path(digest).is_file()

    def delete(self, digest: str) -> bool:
        """Remove the file (retention); whether there was one."""
        try:
            self._path(digest).unlink()
        except FileNotFoundError:
            return False
        return True

    def get(self, digest: str) -> bytes:
        """The bytes stored under `digest`, checked against it."""
        try:
            data = self._path(digest).read_bytes()
        except FileNotFoundError:
            raise EvidenceError(f"evidence {digest} is missing") from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise EvidenceError(f"evidence {digest} was altered on disk")
        return data


def envelope(head: dict[str, object], headers: list[tuple[str, str]], body: bytes) -> bytes:
    """A request or response as one evidence file: its first line's facts, its headers in
    order, and its body byte for byte (base64), as JSON a person can read back."""
    return orjson.dumps({**head, "headers": [[k, v] for k, v in headers],
                         "body_base64": base64.b64encode(body).decode()},
                        option=orjson.OPT_SORT_KEYS)


def open_envelope(data: bytes) -> dict[str, object] | None:
    """An `envelope` as JSON, with `body_text` beside the base64 when the body is UTF-8; None
    for evidence that is not one (a body kept whole)."""
    try:
        opened = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(opened, dict) or not isinstance(opened.get("body_base64"), str):
        return None
    try:
        opened["body_text"] = base64.b64decode(opened["body_base64"]).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        opened["body_text"] = None
    return opened
