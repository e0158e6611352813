"""Shared pytest fixtures."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

from devcluster.cgroups import CgroupError, LimitedCgroup

# ---------------------------------------------------------------------------------------------
# Confined cgroups (runner and cgroups tests)
# ---------------------------------------------------------------------------------------------

CONFINED_MEMORY_BYTES = 256 * 1024 * 1024
CONFINED_PIDS_MAX = 64
_cgroup_numbers = itertools.count()


@pytest.fixture
def confined_cgroup() -> Iterator[LimitedCgroup]:
    """A fresh cgroup with a 256 MiB memory limit and a 64-process limit, removed afterwards.

    Fails the test (never skips it) when the cgroup cannot be created: the tests that use it run
    hostile snippets that must not run unconfined.
    """
    name = f"coderun-test-{os.getpid()}-{next(_cgroup_numbers)}"
    try:
        cgroup = LimitedCgroup.create(name, CONFINED_MEMORY_BYTES, CONFINED_PIDS_MAX)
    except CgroupError as error:
        pytest.fail(f"cannot create a confined cgroup for this test: {error}")
    try:
        yield cgroup
    finally:
        cgroup.remove()
