"""Policy: load a YAML policy, classify a call into an action, decide what happens to it.

Pure logic, no I/O beyond reading files and no mitmproxy: the proxy addons, `gatehouse check`,
`gatehouse test` and `gatehouse replay` all call `evaluate` with a `Call` and a clock.
"""

from gateway.policy.cases import CaseResult, CasesReport, load_cases, load_cases_text, run_cases
from gateway.policy.classify import classify
from gateway.policy.decide import decide
from gateway.policy.errors import PolicyError, Problem
from gateway.policy.evaluate import evaluate
from gateway.policy.load import load_policy, load_policy_text
from gateway.policy.snapshot import Policy
from gateway.policy.verdict import Constraints, Decision, Verdict

__all__ = [
    "CaseResult",
    "CasesReport",
    "Constraints",
    "Decision",
    "Policy",
    "PolicyError",
    "Problem",
    "Verdict",
    "classify",
    "decide",
    "evaluate",
    "load_cases",
    "load_cases_text",
    "load_policy",
    "load_policy_text",
    "run_cases",
]
