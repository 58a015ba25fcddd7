"""`agents.*.addresses`: the client ranges that name an agent in transparent mode."""

import pytest

from gateway.policy import PolicyError

from .conftest import policy


def test_addresses_load_in_canonical_form() -> None:
    loaded = policy("agents:\n  a: {addresses: [10.200.0.2, 10.0.0.0/255.255.0.0, 'FD00::/64']}\n"
                    "  b: {tenant: acme}\n")
    assert loaded.model.agents["a"].addresses == ["10.200.0.2/32", "10.0.0.0/16", "fd00::/64"]


@pytest.mark.parametrize(("body", "message"), [
    ("agents:\n  a: {addresses: [10.200.0.0/24]}\n  b:\n    addresses: [10.1.0.0/16, 10.200.0.2]\n",
     "test.yaml:7: agents.b.addresses[1]: `10.200.0.2/32` overlaps `10.200.0.0/24` of agent `a` "
     "(agents.a.addresses[0]); an address may name only one agent, so narrow one of the ranges"),
    ("agents:\n  a: {addresses: [10.200.0.2/24]}\n",
     "test.yaml:5: agents.a.addresses[0]: `10.200.0.2/24` has host bits set; write the range as "
     "`10.200.0.0/24`"),
    ("agents:\n  a: {addresses: [agent-host]}\n",
     "test.yaml:5: agents.a.addresses[0]: `agent-host` is not an IP address or CIDR range; write "
     "it like `10.200.0.2` or `10.200.0.0/24`"),
])
def test_bad_addresses_are_pinned_to_their_line(body: str, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        policy(body)
    assert message in str(caught.value)


def test_one_agent_may_repeat_itself_and_families_never_overlap() -> None:
    policy("agents:\n  a: {addresses: [10.0.0.0/8, 10.1.0.0/16]}\n"
           "  b: {addresses: ['::/0']}\n  c: {addresses: [192.168.0.0/16]}\n")
