"""The operator's and the web UI's RBAC, proven by what they did during the whole session.

Sufficient: no request of theirs was refused with 403. Minimal: every rule of their Roles
allowed at least one request. Runs last in this directory (file order), after every other
acceptance test has exercised the stack.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.acceptance.conftest import OPERATOR_USER, WEBUI_USER

ROOT = Path(__file__).resolve().parents[2]
ROLES = {
    OPERATOR_USER: ("coderun-operator", ROOT / "deploy" / "base" / "rbac-operator.yaml"),
    WEBUI_USER: ("coderun-webui", ROOT / "deploy" / "base" / "rbac-webui.yaml"),
}


def role_rules(path: Path, name: str) -> list[dict]:
    for document in yaml.safe_load_all(path.read_text()):
        if document["kind"] == "Role" and document["metadata"]["name"] == name:
            return document["rules"]
    raise AssertionError(f"no Role {name} in {path}")


# devcluster_only: the proof reads devcluster's audit log (who asked, which rule allowed it).
@pytest.mark.devcluster_only
@pytest.mark.parametrize("user", list(ROLES), ids=["operator", "webui"])
def test_rbac_is_sufficient_and_minimal(full_stack, user):
    role, path = ROLES[user]
    rules = role_rules(path, role)
    entries = [entry for entry in full_stack.audit() if entry["user"] == user]
    assert entries, f"{user} made no request at all"
    refused = [entry for entry in entries if entry["code"] == 403]
    assert refused == [], refused[:3]
    used = {
        entry["authorization"]["ruleIndex"]
        for entry in entries
        if entry["allowed"] and entry["authorization"].get("role") == f"Role/coderun-runs/{role}"
    }
    unused = [rules[index] for index in range(len(rules)) if index not in used]
    assert unused == [], f"{role} holds rules it never used: {unused}"
