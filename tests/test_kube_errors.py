"""How the operator tells API errors apart: capacity to wait for, refusals to report."""

import pytest

from coderun_operator.kube import KubeError

QUOTA = 'pods "crun-a" is forbidden: exceeded quota: coderun-runs, requested: pods=1'
LIMIT = 'pods "crun-a" is forbidden: maximum cpu usage per Container is 1, but limit is 2'
RBAC = 'pods is forbidden: User "system:serviceaccount:x:y" cannot create resource "pods"'


@pytest.mark.parametrize(
    ("status", "reason", "message", "quota", "refused"),
    [
        (403, "Forbidden", QUOTA, True, False),
        (403, "Forbidden", LIMIT, False, True),
        (403, "Forbidden", RBAC, False, True),
        (422, "Invalid", "spec.containers[0].image: Required value", False, True),
        (400, "BadRequest", "the body is not a pod", False, True),
        (409, "AlreadyExists", "exists", False, False),
        (429, "TooManyRequests", "slow down", False, False),
        (500, "InternalError", "etcd timed out", False, False),
        (0, "ConnectionError", "connection refused", False, False),
    ],
)
def test_capacity_and_refusal_are_told_apart(status, reason, message, quota, refused):
    error = KubeError("create_pod", status, reason, message)
    assert (error.quota_exceeded, error.refused) == (quota, refused)
