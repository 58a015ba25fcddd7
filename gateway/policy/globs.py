"""`*` globs matched in linear time, without regular expressions.

Globs are applied to values an agent controls (recipients, tool names), so matching must not
backtrack: with `*` as the only wildcard, greedy leftmost search of each literal piece is exact.
"""

from __future__ import annotations


class Glob:
    """A pattern where `*` matches any run of characters, even none; nothing else is special."""

    __slots__ = ("pattern", "_fold", "_first", "_middle", "_last", "_exact")

    def __init__(self, pattern: str, *, casefold: bool = False) -> None:
        self.pattern = pattern
        self._fold = casefold
        text = pattern.casefold() if casefold else pattern
        parts = text.split("*")
        self._exact = text if len(parts) == 1 else None
        self._first, self._last = parts[0], parts[-1]
        self._middle = tuple(p for p in parts[1:-1] if p)

    @property
    def is_literal(self) -> bool:
        return self._exact is not None

    @property
    def prefix(self) -> str:
        """The literal text before the first `*`: the key under which rule lookups bucket it."""
        return self._first

    def matches(self, text: str) -> bool:
        if self._fold:
            text = text.casefold()
        if self._exact is not None:
            return text == self._exact
        first, last = self._first, self._last
        if len(text) < len(first) + len(last):
            return False
        if not (text.startswith(first) and text.endswith(last)):
            return False
        pos, end = len(first), len(text) - len(last)
        for piece in self._middle:
            found = text.find(piece, pos, end)
            if found < 0:
                return False
            pos = found + len(piece)
        return True

    def __repr__(self) -> str:
        return f"Glob({self.pattern!r})"
