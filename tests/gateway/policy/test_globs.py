import pytest

from gateway.policy.globs import Glob


@pytest.mark.parametrize(
    ("pattern", "text", "matches"),
    [
        ("mcp.read_*", "mcp.read_file", True),
        ("mcp.read_*", "mcp.read_", True),
        ("mcp.read_*", "mcp.delete_file", False),
        ("*@competitor.example", "x@competitor.example", True),
        ("*@competitor.example", "x@competitor.example.org", False),
        ("a*b*c", "abc", True),
        ("a*b*c", "aXbYc", True),
        ("a*b*c", "acb", False),
        ("a*a", "a", False),
        ("*", "", True),
        ("exact", "exact", True),
        ("exact", "Exact", False),
        ("a?c", "abc", False),  # `?` is literal: only `*` is a wildcard
    ],
)
def test_glob(pattern: str, text: str, matches: bool) -> None:
    assert Glob(pattern).matches(text) is matches


def test_casefold_glob_ignores_case() -> None:
    assert Glob("*@Competitor.example", casefold=True).matches("X@COMPETITOR.EXAMPLE")


def test_prefix_is_the_literal_text_before_the_first_star() -> None:
    assert Glob("mcp.read_*").prefix == "mcp.read_"
    assert Glob("*.delete").prefix == ""
    assert Glob("plain").is_literal


def test_hostile_input_is_matched_in_linear_time() -> None:
    # The classic backtracking trap for regex-based globs finishes at once here.
    assert not Glob("*a*a*a*a*a*a*a*b").matches("a" * 100_000)
