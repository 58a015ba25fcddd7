import pytest

from gateway.policy.paths import parse_path_pattern, path_segments


@pytest.mark.parametrize(
    ("path", "normal"),
    [
        ("/v1/refunds", "/v1/refunds"),
        ("//v1//refunds", "/v1/refunds"),
        ("/v1/./refunds", "/v1/refunds"),
        ("/v1/x/../refunds", "/v1/refunds"),
        ("/../../v1/refunds", "/v1/refunds"),
        ("/v1/refunds/", "/v1/refunds"),
        ("/v1/%72efunds", "/v1/refunds"),  # an escaped unreserved letter
        ("/v1/x/%2e%2e/refunds", "/v1/refunds"),  # escaped dots are dots
        ("/v1%2frefunds", "/v1%2Frefunds"),  # an escaped slash stays a different path
        ("", "/"),
        ("/", "/"),
    ],
)
def test_normalise(path: str, normal: str) -> None:
    assert "/" + "/".join(path_segments(path)) == normal


@pytest.mark.parametrize(
    ("pattern", "path", "captures"),
    [
        ("/v1/refunds", "/v1/refunds", {}),
        ("/v1/refunds", "/v1/refunds/x", None),
        ("/repos/{owner}/{repo}", "/repos/acme/app", {"owner": "acme", "repo": "app"}),
        ("/repos/{owner}/{repo}", "/repos/acme", None),
        ("/repos/{owner}/{repo}", "/repos/acme/my%20app", {"owner": "acme", "repo": "my app"}),
        ("/v*/refunds", "/v2/refunds", {}),
        ("/v*/refunds", "/x2/refunds", None),
        ("/files/**", "/files", {}),
        ("/files/**", "/files/a/b/c", {}),
        ("/files/**", "/other/a", None),
    ],
)
def test_pattern_match(pattern: str, path: str, captures: dict[str, str] | None) -> None:
    assert parse_path_pattern(pattern).match(path_segments(path)) == captures


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("v1/refunds", "must start with `/`"),
        ("/v1/refunds?x=1", "must not contain a query"),
        ("/items/id-{id}", "a placeholder must be a whole segment"),
        ("/a/{x}/{x}", "uses `{x}` twice"),
        ("/a/**/b", "`**` is only allowed as the last segment"),
    ],
)
def test_bad_patterns(pattern: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_path_pattern(pattern)
    assert message in str(err.value)
