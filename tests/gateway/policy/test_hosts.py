import pytest

from gateway.policy.hosts import HostSet, parse_host_pattern


@pytest.mark.parametrize(
    ("pattern", "host", "port", "allowed"),
    [
        ("api.github.com", "api.github.com", 443, True),
        ("api.github.com", "api.github.com", 8080, True),  # no port: any port
        ("api.github.com", "github.com", 443, False),
        ("api.github.com", "evil-api.github.com", 443, False),
        ("*.slack.com", "hooks.slack.com", 443, True),
        ("*.slack.com", "a.b.slack.com", 443, True),
        ("*.slack.com", "slack.com", 443, False),  # the domain itself is not a subdomain
        ("*.slack.com", "evilslack.com", 443, False),
        ("api.stripe.com:443", "api.stripe.com", 443, True),
        ("api.stripe.com:443", "api.stripe.com", 8443, False),
        ("API.Stripe.com.", "api.stripe.com", 443, True),  # case and trailing dot
        ("api.stripe.com", "API.STRIPE.COM.", 443, True),
        ("[2001:db8::1]:443", "2001:db8::1", 443, True),
        ("10.0.0.5", "10.0.0.5", 80, True),
    ],
)
def test_allowlist(pattern: str, host: str, port: int, allowed: bool) -> None:
    assert HostSet([parse_host_pattern(pattern)]).allows(host, port) is allowed


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("*", "bare `*` would allow every host"),
        ("api.*.com", "`api.*.com` has a `*` that is not a leading `*.`"),
        ("*api.github.com", "`*api.github.com` has a `*` that is not a leading `*.`"),
        ("*.com", "`*.com` would match a whole top-level domain"),
        ("bücher.example", "write it in punycode: `xn--bcher-kva.example`"),
        ("api..com", "`api..com` is not a valid host name"),
        ("api.github.com:0", "bad port `0` in `api.github.com:0`"),
        ("api.github.com:https", "bad port `https`"),
        ("[not-ip]", "`[not-ip]` is not a valid IPv6 address"),
        ("api github.com", "is not a valid host name"),
    ],
)
def test_bad_patterns_say_how_to_fix_them(pattern: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_host_pattern(pattern)
    assert message in str(err.value)


def test_knows_a_host_allowed_only_on_another_port() -> None:
    hosts = HostSet([parse_host_pattern("api.stripe.com:443")])
    assert hosts.knows("api.stripe.com")
    assert not hosts.knows("api.github.com")


def test_pattern_renders_back_to_its_normal_form() -> None:
    assert str(parse_host_pattern("*.Slack.COM")) == "*.slack.com"
    assert str(parse_host_pattern("api.stripe.com:443")) == "api.stripe.com:443"
