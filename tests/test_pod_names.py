"""Pod names: valid, stable and distinct for every valid run name."""

import random
import re
import string

import pytest

from coderun_operator.pod_names import pod_name_for_run

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def random_run_name(rng: random.Random) -> str:
    """A random valid DNS-subdomain name of 1..253 characters."""
    length = rng.randint(1, 253)
    alphabet = string.ascii_lowercase + string.digits + "-."
    while True:
        body = "".join(rng.choice(alphabet) for _ in range(length))
        name = re.sub(r"[-.]*\.[-.]*", ".", body)  # no empty or dash-edged dot segments
        name = name.strip("-.")
        parts = name.split(".")
        if (
            name
            and len(name) <= 253
            and all(p and p[0].isalnum() and p[-1].isalnum() for p in parts)
        ):
            return name


def test_short_names_stay_readable():
    assert pod_name_for_run("hello") == "crun-hello"
    assert pod_name_for_run("a" * 58) == "crun-" + "a" * 58


@pytest.mark.parametrize(
    "name", ["a" * 59, "a" * 253, "x.y", "run-" + "9" * 249, "a" * 52 + "-" * 5 + "b"]
)
def test_long_or_dotted_names_are_truncated_and_hashed(name):
    pod = pod_name_for_run(name)
    assert len(pod) <= 63
    assert DNS_LABEL.match(pod), pod
    assert pod == pod_name_for_run(name)


def test_every_valid_run_name_gives_a_valid_stable_distinct_pod_name():
    rng = random.Random(20261203)
    names = {random_run_name(rng) for _ in range(3000)}
    names |= {"a" * 200 + str(i) for i in range(50)}  # same prefix, different tails
    names |= {"a.b", "a-b"}  # would collide without the hash
    pods = {}
    for name in names:
        pod = pod_name_for_run(name)
        assert len(pod) <= 63 and DNS_LABEL.match(pod), (name, pod)
        assert pod_name_for_run(name) == pod
        assert pod not in pods, (name, pods.get(pod))
        pods[pod] = name
