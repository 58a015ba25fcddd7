import pytest

from gateway.policy import Constraints, Verdict


def test_strictness_order() -> None:
    assert Verdict.DENY > Verdict.REQUIRE_APPROVAL > Verdict.ALLOW_WITH_CONSTRAINTS > Verdict.ALLOW
    assert max([Verdict.ALLOW, Verdict.DENY, Verdict.REQUIRE_APPROVAL]) is Verdict.DENY
    assert sorted(Verdict) == [
        Verdict.ALLOW,
        Verdict.ALLOW_WITH_CONSTRAINTS,
        Verdict.REQUIRE_APPROVAL,
        Verdict.DENY,
    ]


def test_verdicts_are_their_yaml_words() -> None:
    assert Verdict("require_approval") is Verdict.REQUIRE_APPROVAL
    assert f"{Verdict.DENY}" == "deny"


def test_comparing_with_plain_text_is_refused() -> None:
    # Plain str comparison would order verdicts alphabetically ("allow" < "deny" by accident).
    with pytest.raises(TypeError):
        assert Verdict.DENY > "allow"


def test_constraints_merge_to_the_strictest() -> None:
    a = Constraints(timeout_seconds=30, max_request_body_bytes=None)
    b = Constraints(timeout_seconds=10, max_request_body_bytes=1024)
    assert a.merge(b) == Constraints(timeout_seconds=10, max_request_body_bytes=1024)
    assert Constraints().merge(a) == a
