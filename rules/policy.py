"""The operator's own promise: policy profiles over the defaults of ``rules/policy.yaml``.

A profile file (``examples/policies/operator-a.yaml``) sets only what its operator
promised differently; everything else keeps the default. ``window_days: null`` is a
deliberate value: the policy promises no number of days (then ``window_term`` says what it
promises, e.g. "promptly").
"""

from __future__ import annotations

from pathlib import Path

from breachflow.rules.loader import RuleFileError, read_yaml, validate_file
from breachflow.rules.schema import PolicyProfile
from breachflow.rules.vocab import RULES_DIR

POLICY_FILE = RULES_DIR / "policy.yaml"


def default_policy(policy_file: Path = POLICY_FILE) -> PolicyProfile:
    """The default promise: the ``promise`` block of ``rules/policy.yaml``."""
    data = read_yaml(policy_file)
    if not isinstance(data.get("promise"), dict):
        raise RuleFileError(policy_file, "promise", "missing: the default policy promise")
    return validate_file(PolicyProfile, policy_file, data["promise"])


def load_policy(path: Path | str, defaults: PolicyProfile | None = None) -> PolicyProfile:
    """A policy profile file merged over ``defaults`` (the ``rules/policy.yaml`` promise).

    Raises RuleFileError naming the file and field for unreadable YAML, unknown keys (a
    misspelt ``window_dayz`` must not silently keep the default) and invalid values.
    """
    path = Path(path)
    data = read_yaml(path)
    base = (defaults or default_policy()).model_dump(mode="json")
    return validate_file(PolicyProfile, path, base | data)
