"""Reading YAML with its line numbers, so every problem can say where it is.

`yaml.compose()` keeps each node's position; walking the node tree along a key path (such as
pydantic's error `loc`) gives the line to report and a readable path like `rules[3].decision`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from gateway.policy.errors import PolicyError, Problem, describe

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True, slots=True)
class Document:
    """A parsed YAML file: its text, the node tree (for lines) and the plain data."""

    source: str
    text: str
    node: yaml.Node
    data: dict[str, object]

    def problem(self, loc: Sequence[str | int], message: str) -> Problem:
        line, path = locate(self.node, loc)
        return Problem(self.source, line, path, message)


def read(path: str | Path) -> str:
    """A file's text; PolicyError (naming the file) when it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        problem = Problem(str(path), None, "", f"cannot read the file: {reason}")
        raise PolicyError([problem]) from None


def parse(text: str, source: str, *, empty_hint: str) -> Document:
    """Parse one YAML mapping; PolicyError for syntax errors, duplicate keys, or no mapping."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = None if node is None else loader.construct_document(node)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = None if mark is None else mark.line + 1
        problem = (err.problem or err.context or "syntax error").lower()
        raise PolicyError(
            [Problem(source, line, "", f"invalid YAML: {problem}; check indentation and quoting")]
        ) from None
    except yaml.YAMLError as err:
        raise PolicyError([Problem(source, None, "", f"invalid YAML: {err}")]) from None
    finally:
        loader.dispose()
    if node is None:
        raise PolicyError([Problem(source, 1, "", f"the file is empty; {empty_hint}")])
    if not isinstance(data, dict):
        raise PolicyError(
            [
                Problem(
                    source,
                    node.start_mark.line + 1,
                    "",
                    f"the file must be a mapping of keys like `version: 1`, not {describe(data)}",
                )
            ]
        )
    duplicates = [
        Problem(source, line, path, f"duplicate key `{key}`; keep only one")
        for line, path, key in _duplicate_keys(node, "", set())
    ]
    if duplicates:
        raise PolicyError(duplicates)
    return Document(source, text, node, data)


def _duplicate_keys(node: yaml.Node, path: str, seen: set[int]) -> list[tuple[int, str, str]]:
    """YAML lets a later key silently replace an earlier one; in a policy that hides mistakes."""
    if id(node) in seen:
        return []
    seen.add(id(node))
    found: list[tuple[int, str, str]] = []
    if isinstance(node, yaml.MappingNode):
        keys: set[str] = set()
        for key, value in node.value:
            name = str(key.value)
            if name in keys and key.tag != "tag:yaml.org,2002:merge":
                found.append((key.start_mark.line + 1, path, name))
            keys.add(name)
            found += _duplicate_keys(value, f"{path}.{name}" if path else name, seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found += _duplicate_keys(item, f"{path}[{index}]", seen)
    return found


def locate(root: yaml.Node, loc: Sequence[str | int]) -> tuple[int, str]:
    """The line and readable key path of `loc`, as far as the YAML goes.

    Parts the YAML does not have (a missing key) are still named in the path; an index into a
    scalar (a single value the schema accepts in place of a list) is dropped.
    """
    node: yaml.Node | None = root
    line = root.start_mark.line + 1
    path = ""
    for part in loc:
        if part == "[key]":
            continue
        if isinstance(node, yaml.ScalarNode) and isinstance(part, int):
            continue
        if isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            path += f"[{part}]"
            node = node.value[part] if part < len(node.value) else None
            line = node.start_mark.line + 1 if node is not None else line
            continue
        path += f".{part}" if path else str(part)
        child = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if str(key.value) == str(part):
                    line, child = key.start_mark.line + 1, value
                    break
        node = child
    return line, path
