import pytest

from gateway.policy import PolicyError
from gateway.policy.yamldoc import locate, parse

TEXT = """\
rules:
  - id: a
    when: { action: x }
  - id: b
    when:
      action: [x, y]
approvals:
  tiers:
    1: { approvals: 1 }
"""


@pytest.mark.parametrize(
    ("loc", "line", "path"),
    [
        (("rules", 1, "id"), 4, "rules[1].id"),
        (("rules", 1, "when", "action", 1), 6, "rules[1].when.action[1]"),
        (("rules", 0, "when", "action", 0), 3, "rules[0].when.action"),  # a scalar for a list
        (("rules", 0, "decision"), 2, "rules[0].decision"),  # missing: the parent's line
        (("approvals", "tiers", 1, "approvals"), 9, "approvals.tiers.1.approvals"),
        (("approvals", "tiers", "x", "[key]"), 8, "approvals.tiers.x"),
    ],
)
def test_locate(loc: tuple, line: int, path: str) -> None:
    assert locate(parse(TEXT, "f.yaml", empty_hint="").node, loc) == (line, path)


def test_duplicate_keys_are_errors_at_every_depth() -> None:
    with pytest.raises(PolicyError) as err:
        parse("a: 1\nb:\n  c: 1\n  c: 2\na: 3\n", "f.yaml", empty_hint="")
    assert str(err.value).splitlines() == [
        "f.yaml:4: b: duplicate key `c`; keep only one",
        "f.yaml:5: duplicate key `a`; keep only one",
    ]


def test_yaml_tags_that_build_objects_are_refused() -> None:
    with pytest.raises(PolicyError) as err:
        parse("a: !!python/object:os.system {}\n", "f.yaml", empty_hint="")
    assert str(err.value).startswith("f.yaml:1: invalid YAML: could not determine a constructor")
