"""The CEL subset: the rules CRDs commonly use evaluate as on a real API server."""

import pytest

from devcluster.cel import CelEvaluationError, CelSyntaxError, compile_rule


@pytest.mark.parametrize(
    ("rule", "new", "old", "expected"),
    [
        ("self == oldSelf", "a", "a", True),
        ("self == oldSelf", "a", "b", False),
        ("self == oldSelf", {"cpu": "1"}, {"cpu": "1"}, True),
        ("self || !oldSelf", True, False, True),
        ("self || !oldSelf", False, True, False),
        ("self || !oldSelf", False, False, True),
        ("has(self.stdin) == has(oldSelf.stdin)", {"code": "x"}, {"code": "x"}, True),
        ("has(self.stdin) == has(oldSelf.stdin)", {"stdin": ""}, {"code": "x"}, False),
        ("self.replicas >= 0 && self.replicas <= 5", {"replicas": 3}, None, True),
        ("self.replicas >= 0 && self.replicas <= 5", {"replicas": 6}, None, False),
        ("size(self.name) < 10", {"name": "short"}, None, True),
        ("self.mode == 'fast' || self.mode == \"slow\"", {"mode": "slow"}, None, True),
        ("!(self.a != 1)", {"a": 1}, None, True),
        ("-self.a < 0", {"a": 2}, None, True),
        ("self.flag == true", {"flag": True}, None, True),
        ("self.missing == 1 || true", {}, None, True),  # an error is absorbed by a true ||
        ("false && self.missing == 1", {}, None, False),  # and by a false &&
        ("has(self.a.b)", {"a": {"b": 1}}, None, True),
    ],
)
def test_rules_evaluate(rule, new, old, expected):
    assert compile_rule(rule).evaluate(new, old) is expected


def test_transition_rules_are_recognised():
    assert compile_rule("self == oldSelf").uses_old_self
    assert not compile_rule("self.a == 1").uses_old_self


@pytest.mark.parametrize(
    "rule",
    [
        "self.all(x, x > 0)",
        "self.matches('^a')",
        "self in [1, 2]",
        "self ? 1 : 2",
        "",
        "self ==",
        "has(self)",
        "self.a +",
    ],
)
def test_unsupported_rules_are_refused_when_compiled(rule):
    with pytest.raises(CelSyntaxError):
        compile_rule(rule)


def test_missing_fields_are_evaluation_errors():
    with pytest.raises(CelEvaluationError):
        compile_rule("self.missing == 1").evaluate({}, None)
    with pytest.raises(CelEvaluationError):
        compile_rule("self.a").evaluate({"a": 1}, None)
