"""Signed checkpoints of the audit trail, the key that signs them, and the verifiable export.

A checkpoint says "record SEQ of this trail had hash H at time T", signed with Ed25519. The head
anchor says the same without a signature, so whoever can rewrite the database can rewrite the
anchor to match; nobody without the private key can make a checkpoint. The audit writer signs one
every N records and on a timer (`gateway.audit`), stored in the `checkpoint` table beside the
records (in `audit.db`, or in PostgreSQL) and logged, so log shipping keeps copies out of an
intruder's reach. The SQL here is the same for both backends.

The key pair lives in the state directory: `audit-signing.key` (PKCS #8 PEM, mode 0600), created
on first use, and `audit-signing.pub` (PEM) beside it. Auditors keep their own copy of the public
key and verify against it.

A bundle (`gatehouse audit export`) is one JSON-lines file that needs nothing else to verify:

    line 1             header: format, counts, head, exporter's public key
    next `checkpoints` lines: the checkpoints, oldest first
    next `records` lines:     the records, each exactly the canonical JSON that was hashed
    last line          {"signature": ...}: Ed25519 over the SHA-256 of every line before it

Nothing here knows the chain itself; `gateway.audit` walks it and asks `check` about the
checkpoints.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

KEY_FILE = "audit-signing.key"
PUBLIC_KEY_FILE = "audit-signing.pub"
BUNDLE_FORMAT = "gatehouse-audit-bundle/1"
_CHECKPOINT_CONTEXT = b"gatehouse audit checkpoint v1\n"  # a checkpoint's signature is never
_BUNDLE_CONTEXT = b"gatehouse audit bundle v1\n"  # a bundle's, and neither is anything else's
SCHEMA = """
CREATE TABLE IF NOT EXISTS checkpoint (
    seq       INTEGER PRIMARY KEY,  -- the record whose hash is signed
    hash      TEXT NOT NULL,
    ts        TEXT NOT NULL,
    key_id    TEXT NOT NULL,
    signature TEXT NOT NULL
);
"""
_HEX64 = re.compile(r"[0-9a-f]{64}")
_FIELDS = ("seq", "hash", "ts", "key_id", "signature")


class Conn(Protocol):
    """A connection to where the trail is kept, spoken to with `?` placeholders: an
    `sqlite3.Connection`, or a PostgreSQL one behind `gateway.postgres.audit`'s adapter."""

    def execute(self, sql: str, args: Sequence[object] = (), /) -> Any: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[object]], /) -> Any: ...

    def close(self) -> None: ...


class SigningKeyError(Exception):
    """The signing or public key cannot be read or made; the message names the file."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    seq: int
    hash: str
    ts: str
    key_id: str
    signature: str  # hex, over `signed_bytes`

    def signed_bytes(self) -> bytes:
        fields = {"seq": self.seq, "hash": self.hash, "ts": self.ts, "key_id": self.key_id}
        return _CHECKPOINT_CONTEXT + orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, data: object) -> Checkpoint:
        """From a parsed JSON object or a table row; ValueError names what is wrong."""
        if isinstance(data, tuple):
            data = dict(zip(_FIELDS, data, strict=True))
        if not isinstance(data, dict):
            raise ValueError("a checkpoint is a JSON object")
        if missing := [f for f in _FIELDS if f not in data]:
            raise ValueError(f"field `{missing[0]}` is missing")
        seq, digest, ts, kid, signature = (data[f] for f in _FIELDS)
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise ValueError(f"`seq` is not a record number: `{seq}`")
        if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
            raise ValueError(f"`hash` is not a SHA-256 in hex: `{digest}`")
        if not all(isinstance(v, str) for v in (ts, kid, signature)):
            raise ValueError("`ts`, `key_id` and `signature` must be strings")
        return cls(seq, digest, ts, kid, signature)


# -- keys ---------------------------------------------------------------------------------------


def key_id(public: Ed25519PublicKey) -> str:
    """16 hex digits of the SHA-256 of the raw public key: short enough to read out loud."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.PEM,
                               serialization.PublicFormat.SubjectPublicKeyInfo)


def signing_key(directory: Path) -> Ed25519PrivateKey:
    """The state directory's signing key, made on first use (mode 0600), its public key beside it.

    Two processes making it at once agree: each writes a private temporary file and links it into
    place, which fails if the other got there first; the loser then reads the winner's key.
    """
    path = directory / KEY_FILE
    try:
        if not path.exists():
            _create_key(path)
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise SigningKeyError(f"cannot load the audit signing key `{path}`: {e}") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"the audit signing key `{path}` is not an Ed25519 key")
    public = directory / PUBLIC_KEY_FILE
    if not public.exists():
        with contextlib.suppress(OSError):  # only a convenience: `audit key` prints it as well
            _write_new(public, public_pem(key.public_key()), 0o644, replace=True)
    return key


def _create_key(path: Path) -> None:
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
        _write_new(path, pem, 0o600, replace=False)


def _write_new(path: Path, data: bytes, mode: int, *, replace: bool) -> None:
    """Write a complete file under `path`'s name at once: never a half-written key."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            os.fchmod(fd, mode)  # whatever the umask
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if replace:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)  # fails if `path` exists: the first maker's key stays
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        return parse_public_key(path.read_bytes(), f"`{path}`")
    except OSError as e:
        raise SigningKeyError(f"cannot read the public key `{path}`: {e.strerror or e}") from e


def parse_public_key(pem: bytes, name: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as e:
        raise SigningKeyError(f"{name} is not a PEM public key: {e}") from e
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"{name} is not an Ed25519 public key")
    return key


# -- checkpoints --------------------------------------------------------------------------------


def sign(key: Ed25519PrivateKey, seq: int, digest: str, ts: str) -> Checkpoint:
    unsigned = Checkpoint(seq, digest, ts, key_id(key.public_key()), "")
    return Checkpoint(seq, digest, ts, unsigned.key_id, key.sign(unsigned.signed_bytes()).hex())


def signature_ok(public: Ed25519PublicKey, checkpoint: Checkpoint) -> bool:
    try:
        public.verify(bytes.fromhex(checkpoint.signature), checkpoint.signed_bytes())
    except (InvalidSignature, ValueError):
        return False
    return True


def store(conn: Conn, checkpoints: Iterable[Checkpoint]) -> None:
    """Inside the caller's transaction. A record already checkpointed keeps its first checkpoint:
    if the trail below it was rewritten since, that first one is the evidence."""
    conn.executemany("INSERT INTO checkpoint (seq, hash, ts, key_id, signature)"
                     " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                     [(c.seq, c.hash, c.ts, c.key_id, c.signature) for c in checkpoints])


def stored(conn: Conn, *, newest: bool = False) -> list[Checkpoint | str]:
    """The checkpoint table, oldest first (or only the newest); a row that is not a checkpoint
    comes as its problem."""
    rows = conn.execute("SELECT seq, hash, ts, key_id, signature FROM checkpoint ORDER BY seq"
                        + (" DESC LIMIT 1" if newest else ""))
    found: list[Checkpoint | str] = []
    for row in rows:
        try:
            found.append(Checkpoint.from_json(row))
        except ValueError as e:
            found.append(f"the checkpoint row for record `{row[0]}` is malformed: {e}")
    return found


def latest(conn: Conn) -> int:
    return conn.execute("SELECT coalesce(max(seq), 0) FROM checkpoint").fetchone()[0]


def read_file(path: Path) -> list[Checkpoint | str]:
    """Checkpoints kept elsewhere: one JSON object a line, as `gatehouse audit checkpoint` prints
    them; a log line that ends with one (the writer logs each) will do as well."""
    found: list[Checkpoint | str] = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                found.append(Checkpoint.from_json(orjson.loads(line[line.find("{"):])))
            except ValueError as e:
                found.append(f"`{path}` line {number} is not a checkpoint: {e}")
    return found


@dataclass(frozen=True, slots=True)
class Problem:
    intact: int  # records known good
    first_bad_seq: int | None  # None: the problem is a checkpoint's, not a record's
    message: str


def check(checkpoints: Iterable[Checkpoint | str], public: Ed25519PublicKey, key_name: str,
          count: int, hashes: dict[int, str]) -> Problem | None:
    """Every checkpoint signed by `public` and naming a record the trail still holds, unchanged.

    `count` records were walked and found chained; `hashes` holds their hashes at (at least) every
    checkpointed seq. Signatures come first (a checkpoint that is not genuine proves nothing),
    then the records, oldest first, then the tail, so the problem named is the earliest.
    """
    found = sorted(checkpoints, key=lambda c: c.seq if isinstance(c, Checkpoint) else 0)
    kid = key_id(public)
    for checkpoint in found:
        if isinstance(checkpoint, str):
            return Problem(count, None, checkpoint)
        if checkpoint.key_id != kid:
            return Problem(count, None, f"the checkpoint at record {checkpoint.seq} was signed by "
                                        f"another key ({checkpoint.key_id}) than {key_name} "
                                        f"({kid})")
        if not signature_ok(public, checkpoint):
            return Problem(count, None, f"the checkpoint at record {checkpoint.seq} has a bad "
                                        "signature: it was altered after it was signed")
    genuine = [c for c in found if isinstance(c, Checkpoint)]  # all of them, by now
    matched = 0
    for checkpoint in genuine:
        seq, ts = checkpoint.seq, checkpoint.ts
        if seq > count:
            newest = genuine[-1]
            cut = f"record {newest.seq} was" if newest.seq == count + 1 else \
                f"records {count + 1} to {newest.seq} were"
            return Problem(count, count + 1, f"{cut} removed from the tail: the checkpoint "
                                             f"signed at {newest.ts} names record {newest.seq} "
                                             f"but the log ends at record {count}")
        if hashes.get(seq) != checkpoint.hash:
            since = f"after record {matched}" if matched else "from its start"
            return Problem(matched, seq, f"record {seq} is not the one that was signed: its hash "
                                         f"differs from the checkpoint signed at {ts}, so the "
                                         f"trail was rewritten {since} up to it")
        matched = seq
    return None


# -- bundles ------------------------------------------------------------------------------------


def write_bundle(out: BinaryIO, key: Ed25519PrivateKey, header: dict[str, object],
                 checkpoints: list[Checkpoint], records: Iterable[str], count: int) -> None:
    """Write a bundle of `count` records; `header` gets the counts and the key added."""
    public = key.public_key()
    digest = hashlib.sha256()

    def line(data: bytes) -> None:
        digest.update(data + b"\n")
        out.write(data + b"\n")

    line(orjson.dumps({"format": BUNDLE_FORMAT, **header, "checkpoints": len(checkpoints),
                       "records": count, "key_id": key_id(public),
                       "public_key": public_pem(public).decode()}))
    for checkpoint in checkpoints:
        line(checkpoint.to_json())
    written = 0
    for text in records:
        line(text.encode())
        written += 1
    if written != count:
        raise ValueError(f"{count} records were announced but {written} written")
    signature = key.sign(_BUNDLE_CONTEXT + digest.digest())
    out.write(orjson.dumps({"signature": signature.hex(), "key_id": key_id(public)}) + b"\n")


class BundleReader:
    """Reads a bundle in order (header, checkpoints, records, signature), hashing as it goes, so
    a bundle of any size is verified in one pass without being held in memory."""

    def __init__(self, stream: BinaryIO, name: str) -> None:
        self._stream = stream
        self._digest = hashlib.sha256()
        self.name = name
        first = self._line()
        try:
            header = orjson.loads(first or b"")
            if not isinstance(header, dict) or header.get("format") != BUNDLE_FORMAT:
                raise ValueError(f"its first line does not say `{BUNDLE_FORMAT}`")
            self.records, self.checkpoint_count = int(header["records"]), \
                int(header["checkpoints"])
            self.head = (int(header["head"]["seq"]), str(header["head"]["hash"]))
            self.public_key_pem = str(header["public_key"]).encode()
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{name} is not a Gatehouse audit bundle: {e}") from e
        self.header: dict[str, object] = header

    def checkpoints(self) -> list[Checkpoint | str]:
        found: list[Checkpoint | str] = []
        for n in range(self.checkpoint_count):
            line = self._line()
            try:
                found.append(Checkpoint.from_json(orjson.loads(line or b"")))
            except ValueError as e:
                found.append(f"checkpoint {n + 1} of the bundle is malformed: {e}")
        return found

    def records_text(self) -> Iterator[bytes]:
        """The record lines, without their newline; stops early at the end of the file."""
        for _ in range(self.records):
            line = self._line()
            if line is None:
                return
            yield line

    def signature_problem(self, public: Ed25519PublicKey, key_name: str) -> str:
        """"" when the bundle, read to its end, carries a good signature by `public`."""
        digest = self._digest.digest()
        last = self._stream.readline()
        if not last:
            return "the bundle ends early: it does not end with its signature"
        if self._stream.read(1):
            return "the bundle was altered after export: there are lines after its signature"
        try:
            signed = orjson.loads(last)
            signature, signer = bytes.fromhex(signed["signature"]), signed["key_id"]
        except (ValueError, KeyError, TypeError):
            return "the bundle was altered after export: its last line is not its signature"
        if signer != key_id(public):
            return f"the bundle was signed by another key ({signer}) than {key_name} " \
                   f"({key_id(public)})"
        try:
            public.verify(signature, _BUNDLE_CONTEXT + digest)
        except InvalidSignature:
            return "the bundle was altered after export: its signature does not match its content"
        return ""

    def _line(self) -> bytes | None:
        line = self._stream.readline()
        if not line.endswith(b"\n"):  # the end, or a last line cut short
            return None
        self._digest.update(line)
        return line[:-1]
