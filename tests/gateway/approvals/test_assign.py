"""Assignment as a pure rule: the least loaded member below the cap, round-robin among equals."""

from __future__ import annotations

from gateway.approvals.assign import Load, choose

OPS = ["dave", "erin", "frank"]


def test_a_quiet_group_starts_with_the_first_name() -> None:
    assert choose(OPS, {}, cap=None) == "dave"


def test_the_member_with_the_fewest_open_items_gets_the_next_one() -> None:
    loads = {"dave": Load(2, "2026-01-01T00:00:02Z"), "erin": Load(1, "2026-01-01T00:00:03Z"),
             "frank": Load(3, "2026-01-01T00:00:01Z")}
    assert choose(OPS, loads, cap=None) == "erin"


def test_among_equals_the_one_assigned_longest_ago_is_next() -> None:
    """Items decided quickly leave everyone at zero open: it still rotates."""
    loads = {"dave": Load(0, "2026-01-01T00:00:03Z"), "erin": Load(0, "2026-01-01T00:00:01Z")}
    assert choose(OPS, loads, cap=None) == "frank"  # never assigned: first
    loads["frank"] = Load(0, "2026-01-01T00:00:02Z")
    assert choose(OPS, loads, cap=None) == "erin"


def test_members_at_the_cap_are_passed_over_and_all_at_it_leaves_it_unassigned() -> None:
    loads = {"dave": Load(2), "erin": Load(1), "frank": Load(2)}
    assert choose(OPS, loads, cap=2) == "erin"
    loads["erin"] = Load(2)
    assert choose(OPS, loads, cap=2) is None


def test_an_empty_group_assigns_nobody() -> None:
    assert choose([], {}, cap=None) is None
