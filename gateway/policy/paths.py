"""URL path normalisation and `match.path` patterns.

Paths are normalised before matching (RFC 3986: decode percent-escaped unreserved characters,
collapse empty segments, resolve `.` and `..`, ignore a trailing slash) so that `//v1/./refunds/`
or `/v1/%72efunds` cannot slip past a rule written for `/v1/refunds`. Escapes of reserved
characters (`%2F`) stay escaped: they mean something else to the upstream.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from gateway.policy.globs import Glob

_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _unescape_unreserved(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return char if char in _UNRESERVED else "%" + match.group(1).upper()


def path_segments(path: str) -> tuple[str, ...]:
    """The normalised segments of a path: `/a//b/./c/../d/` -> ("a", "b", "d")."""
    if "%" in path:
        path = _ESCAPE.sub(_unescape_unreserved, path)
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment and segment != ".":
            segments.append(segment)
    return tuple(segments)


@dataclass(frozen=True, slots=True)
class PathPattern:
    """A path to match: literal segments, `{name}` (one segment, captured), `*` globs within a
    segment, and a final `**` (the rest of the path, possibly nothing)."""

    text: str
    segments: tuple[str | Glob, ...]  # str: literal, or a `{name}` placeholder
    names: tuple[str | None, ...]  # the placeholder name of each segment, or None
    rest: bool

    def match(self, segments: tuple[str, ...]) -> dict[str, str] | None:
        """The captured `{name}` values when the normalised path matches, else None."""
        if self.rest:
            if len(segments) < len(self.segments):
                return None
        elif len(segments) != len(self.segments):
            return None
        captures: dict[str, str] = {}
        for want, name, got in zip(self.segments, self.names, segments, strict=False):
            if name is not None:
                captures[name] = unquote(got)
            elif isinstance(want, Glob):
                if not want.matches(got):
                    return None
            elif want != got:
                return None
        return captures


def parse_path_pattern(text: str) -> PathPattern:
    """Parse and check a `match.path`; ValueError says how to fix it."""
    if not text.startswith("/"):
        raise ValueError(f"path `{text}` must start with `/`")
    if "?" in text or "#" in text:
        raise ValueError(
            f"path `{text}` must not contain a query or fragment; match query values with "
            "a `query:` param instead"
        )
    raw = path_segments(text)
    rest = bool(raw) and raw[-1] == "**"
    if rest:
        raw = raw[:-1]
    segments: list[str | Glob] = []
    names: list[str | None] = []
    for segment in raw:
        placeholder = _PLACEHOLDER.fullmatch(segment)
        if placeholder:
            if placeholder.group(1) in names:
                raise ValueError(f"path `{text}` uses `{segment}` twice; name each segment once")
            names.append(placeholder.group(1))
            segments.append(segment)
            continue
        if "{" in segment or "}" in segment:
            raise ValueError(
                f"path `{text}`: a placeholder must be a whole segment named with letters, "
                "digits and `_`, like `/repos/{owner}/{repo}`"
            )
        if "**" in segment:
            raise ValueError(f"path `{text}`: `**` is only allowed as the last segment")
        names.append(None)
        segments.append(Glob(segment) if "*" in segment else segment)
    return PathPattern(text, tuple(segments), tuple(names), rest)
