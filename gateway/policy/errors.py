"""Load errors in Cedar's style: one lowercase sentence per problem, located and fixable.

A policy that does not validate never replaces the running one, so the person editing it must be
able to fix every problem from one run: all problems are collected and reported together.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a file: where (file, line, key path) and what to do about it."""

    source: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class PolicyError(Exception):
    """A policy or cases file that cannot be used; `str()` lists every problem, one per line."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(sorted(problems, key=lambda p: (p.source, p.line or 0)))
        super().__init__("\n".join(str(p) for p in self.problems))


def describe(value: object) -> str:
    """A short, readable rendering of a user's value for an error message."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    text = str(value)
    return f"`{text[:60]}...`" if len(text) > 60 else f"`{text}`"
