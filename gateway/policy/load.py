"""Loading a policy file: YAML with lines -> schema -> cross-section checks -> compiled snapshot.

Every problem found is reported at once (a PolicyError lists them all), each as
`file:line: key.path: what is wrong; how to fix it`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from gateway.policy import checks
from gateway.policy.errors import PolicyError
from gateway.policy.problems import problems_from
from gateway.policy.schema import PolicyModel
from gateway.policy.snapshot import Policy
from gateway.policy.yamldoc import parse, read


def load_policy(path: str | Path) -> Policy:
    """Load and validate a policy file; PolicyError names every problem."""
    return load_policy_text(read(path), str(path))


def load_policy_text(text: str, source: str = "<policy>") -> Policy:
    """Validate policy text (the same as `load_policy`, for text that is not in a file)."""
    doc = parse(text, source, empty_hint="start from policies/default.yaml")
    try:
        model = PolicyModel.model_validate(doc.data)
    except ValidationError as err:
        raise PolicyError(problems_from(doc, PolicyModel, err)) from None
    problems = [doc.problem(loc, message) for loc, message in checks.errors(model)]
    if problems:
        raise PolicyError(problems)
    warnings = [str(doc.problem(loc, message)) for loc, message in checks.warnings(model)]
    return Policy(model, data=doc.data, text=text, source=source, warnings=warnings)
