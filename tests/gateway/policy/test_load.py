"""Loading: the reference policy loads as it is; every broken file says file, line, key and fix."""

import re
from pathlib import Path

import pytest

from gateway.policy import PolicyError, Verdict, load_policy, load_policy_text
from tests.conftest import missing

from .conftest import ACME, BROKEN, ROOT


def test_the_reference_policy_loads_unchanged(acme) -> None:
    assert acme.name == "acme-agents"
    assert acme.revision == "4.2.1"
    assert acme.default is Verdict.DENY
    assert acme.source == str(ACME)
    assert acme.text == ACME.read_text()
    assert acme.warnings == []
    assert not acme.private_networks_allowed
    assert acme.agent_tenant("support-bot") == "acme"
    assert acme.agent_tenant("stranger") is None
    assert acme.model.approvals.tiers[3].approvals == 2
    assert acme.model.approvals.expire_after.total_seconds() == 4 * 3600
    assert acme.model.responses.skip_actions == ["llm.call"]


def test_the_reference_policy_is_the_shared_example() -> None:
    shared = Path(__file__).resolve().parents[4] / "shared" / "examples" / "policy.yaml"
    if not shared.exists():
        missing(f"the shared example `{shared}` is not beside the project")
    assert ACME.read_text() == shared.read_text()


def test_snapshot_id_is_revision_and_twelve_hex(acme) -> None:
    assert re.fullmatch(r"4\.2\.1:[0-9a-f]{12}", acme.snapshot_id)


def test_snapshot_id_ignores_comments_whitespace_quoting_and_key_order() -> None:
    text = ACME.read_text()
    reworded = "# a new comment\n" + text.replace("# name", "# the name").replace(
        "default: deny", "default:    'deny'"
    )
    reordered = text.replace("version: 1 ", "").replace(
        "policy: acme-agents", "policy: acme-agents\nversion: 1"
    )
    original = load_policy_text(text).snapshot_id
    assert load_policy_text(reworded).snapshot_id == original
    assert load_policy_text(reordered).snapshot_id == original


def test_snapshot_id_changes_with_meaning() -> None:
    text = ACME.read_text()
    changed = load_policy_text(text.replace("lt: 10000", "lt: 20000"))
    assert changed.snapshot_id != load_policy_text(text).snapshot_id
    assert changed.snapshot_id.startswith("4.2.1:")


def test_the_starter_policy_loads() -> None:
    starter = load_policy(ROOT / "policies" / "default.yaml")
    assert starter.default is Verdict.DENY
    assert starter.warnings == []


# Each deliberately broken file, and the exact message it must produce (file:line: key: fix).
BROKEN_FILES = [
    ("unknown-key.yaml", "8: rules[0].decison: unknown key `decison`; did you mean `decision`?"),
    (
        "bad-glob.yaml",
        "8: egress.allow[1]: `api.*.com` has a `*` that is not a leading `*.`; only patterns "
        "like `*.example.com` (any subdomain) are allowed",
    ),
    (
        "bare-star.yaml",
        "6: egress.allow[0]: bare `*` would allow every host; list the hosts, or use "
        "`*.example.com` for the subdomains of one domain",
    ),
    (
        "non-ascii-host.yaml",
        "7: egress.allow[0]: non-ASCII host `bücher.example`; write it in punycode: "
        "`xn--bcher-kva.example`",
    ),
    (
        "unknown-decision.yaml",
        "11: rules[0].decision: unknown decision `alow`; use one of allow, "
        "allow_with_constraints, require_approval, deny",
    ),
    (
        "duplicate-rule-id.yaml",
        "12: rules[1].id: duplicate rule id `reads` (also rules[0]); give each rule its own id",
    ),
    (
        "duplicate-action-type.yaml",
        "8: actions[1].type: duplicate action type `email.send` (also actions[0]); give each "
        "entry its own type",
    ),
    ("duplicate-yaml-key.yaml", "6: duplicate key `default`; keep only one"),
    ("empty.yaml", "1: the file is empty; start from policies/default.yaml"),
    ("not-a-mapping.yaml", "2: the file must be a mapping of keys like `version: 1`, not a list"),
    (
        "syntax-error.yaml",
        "8: invalid YAML: did not find expected ',' or '}'; check indentation and quoting",
    ),
    (
        "unknown-route.yaml",
        "13: rules[0].route: unknown route `ops-aprovers`; add it under approvals.groups or use "
        "one of ops-approvers",
    ),
    (
        "unknown-tier.yaml",
        "12: rules[0].tier: unknown tier `4`; add it under approvals.tiers or use one of 1, 2",
    ),
    (
        "constraints-on-allow.yaml",
        "12: rules[0].constraints: constraints only apply to allow_with_constraints, not "
        "`allow`; change the decision or remove the constraints",
    ),
    (
        "bad-duration.yaml",
        "6: approvals.expire_after: expected a duration like `30s`, `20m`, `4h` or `7d`, got "
        "`4 hours`",
    ),
    (
        "unknown-param.yaml",
        "12: rules[0].when.params.amount: action `payments.refund` has no param `amount`; use "
        "one of amount_cents",
    ),
    ("revision-number.yaml", "4: revision: expected text, got `4.2`; put it in quotes"),
]


@pytest.mark.parametrize(("name", "message"), BROKEN_FILES, ids=[n for n, _ in BROKEN_FILES])
def test_broken_file_names_file_line_key_and_fix(name: str, message: str) -> None:
    path = BROKEN / name
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    assert str(err.value) == f"{path}:{message}"


def test_every_broken_file_is_covered() -> None:
    covered = {name for name, _ in BROKEN_FILES} | {"many-problems.yaml", "on-timeout-allow.yaml"}
    assert {p.name for p in BROKEN.glob("*.yaml")} == covered


def test_all_problems_are_reported_at_once() -> None:
    path = BROKEN / "many-problems.yaml"
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    assert str(err.value).splitlines() == [
        f"{path}:7: egress.allow[0]: bare `*` would allow every host; list the hosts, or use "
        "`*.example.com` for the subdomains of one domain",
        f"{path}:7: egress.allow[1]: bad port `99999` in `api.github.com:99999`; use a number "
        "from 1 to 65535",
        f"{path}:10: actions[0].match.path: path `v1/items` must start with `/`",
        f"{path}:13: rules[0].when.params.size.lt: expected a number, got `100`; write it "
        "without quotes, like `100`",
        f"{path}:15: rules[0].mode: unknown mode `audit`; use one of enforce, shadow",
    ]
    assert len(err.value.problems) == 5


def test_on_timeout_allow_only_on_a_low_tier() -> None:
    path = BROKEN / "on-timeout-allow.yaml"
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    assert str(err.value).splitlines() == [
        f"{path}:6: approvals.on_timeout: on_timeout `allow` is only allowed on a low tier; "
        "set `on_timeout: allow` under that tier in approvals.tiers",
        f"{path}:9: approvals.tiers.2.on_timeout: on_timeout `allow` is only allowed on a low "
        "tier (one approval, no confirm_phrase); tier 2 is not one",
    ]


def test_a_file_that_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as err:
        load_policy(tmp_path / "nope.yaml")
    assert (
        str(err.value)
        == f"{tmp_path / 'nope.yaml'}: cannot read the file: No such file or directory"
    )


def test_text_source_names_the_input() -> None:
    with pytest.raises(PolicyError) as err:
        load_policy_text("version: 1\npolicy: x\n", "inline")
    assert str(err.value) == "inline:1: missing required key `revision`; add `revision:`"


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        (
            "version: 2\npolicy: x\nrevision: '1'\n",
            "<policy>:1: version: unknown version `2`; use one of 1",
        ),
        (
            "version: 1\npolicy: x\nrevision: '1'\negress: {allow: api.github.com}\n",
            "<policy>:4: egress.allow: expected a list, like `[a, b]`, got `api.github.com`",
        ),
        (
            "version: 1\npolicy: x\nrevision: '1'\napprovals: {hold_seconds: true}\n",
            "<policy>:4: approvals.hold_seconds: expected a whole number, got `true`",
        ),
        (
            "version: 1\npolicy: x\nrevision: '1'\napprovals: {tiers: {0: {}}}\n",
            "<policy>:4: approvals.tiers.0: must be at least 1, got `0`",
        ),
        (
            "version: 1\npolicy: x\nrevision: '1'\napprovals: {queue: {second_review_rate: 5}}\n",
            "<policy>:4: approvals.queue.second_review_rate: expected a share from 0 to 1, got "
            "`5`; write it like `0.05`",
        ),
        (
            "version: 1\npolicy: x\nrevision: '1'\napprovals: {queue: {cooldown: soon}}\n",
            "<policy>:4: approvals.queue.cooldown: expected a duration like `30s`, `20m`, `4h` "
            "or `7d`, got `soon`",
        ),
        (
            "version: 1\npolicy: x\nrevision: '1'\napprovals: {queue: {cooldown_after_aprovals: 3}}"
            "\n",
            "<policy>:4: approvals.queue.cooldown_after_aprovals: unknown key "
            "`cooldown_after_aprovals`; did you mean `cooldown_after_approvals`?",
        ),
        (
            "version: 1\npolicy: x\nrevision: '1'\nresponses: {detect: [email]}\n",
            "<policy>:4: responses.detect[0]: entity `email` is not valid; write it like "
            "`EMAIL_ADDRESS`",
        ),
        (
            "version: 1\npolicy: x\nrevision: '1'\negres: {}\n",
            "<policy>:4: egres: unknown key `egres`; did you mean `egress`?",
        ),
        (
            "version: 1\npolicy: x\nrevision: '1'\nrules: [{id: a, when: {}, decision: deny, "
            "expires: 2030-01-01}]\n",
            "<policy>:4: rules[0].expires: expected a date and time with a zone, like "
            "`2030-01-31T18:00:00Z`, got `2030-01-01`",
        ),
    ],
)
def test_schema_messages(yaml_text: str, message: str) -> None:
    with pytest.raises(PolicyError) as err:
        load_policy_text(yaml_text)
    assert str(err.value) == message


def test_warnings_flag_what_is_probably_a_mistake() -> None:
    loaded = load_policy_text(
        "version: 1\npolicy: x\nrevision: '1'\ndefault: allow\nmode: shadow\n"
        "rules:\n  - {id: old, when: {}, decision: deny, expires: 2001-01-01T00:00:00Z}\n",
        "w.yaml",
    )
    assert loaded.warnings == [
        "w.yaml:4: default: the default is `allow`; calls that no rule matches are not denied",
        "w.yaml:5: mode: the policy is in shadow mode; none of its decisions are enforced",
        "w.yaml:7: rules[0].expires: rule `old` has expired; remove it",
    ]


def test_unusual_yaml_values_still_give_a_stable_snapshot_id() -> None:
    text = (
        "version: 1\npolicy: x\nrevision: '1'\n"
        "egress: {allow: !!set {b.example: null, a.example: null}}\n"
        "description: !!binary aGVsbG8=\n"
    )
    first = load_policy_text(text).snapshot_id
    assert first == load_policy_text(text).snapshot_id
    assert re.fullmatch(r"1:[0-9a-f]{12}", first)
