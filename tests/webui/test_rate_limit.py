"""Each client may start a limited number of runs per minute, refilled evenly."""

import pytest

from webui.rate_limit import RateLimiter, client_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_up_to_the_limit_then_a_retry_after():
    clock = Clock()
    limiter = RateLimiter(3, clock)
    assert [limiter.try_acquire("a") for _ in range(3)] == [0, 0, 0]
    assert limiter.try_acquire("a") == 20  # one run per 20 s at 3 per minute


def test_clients_are_counted_separately():
    limiter = RateLimiter(1, Clock())
    assert limiter.try_acquire("a") == 0
    assert limiter.try_acquire("b") == 0
    assert limiter.try_acquire("a") > 0


def test_runs_come_back_over_time():
    clock = Clock()
    limiter = RateLimiter(60, clock)
    for _ in range(60):
        assert limiter.try_acquire("a") == 0
    assert limiter.try_acquire("a") == 1
    clock.now += 1.0
    assert limiter.try_acquire("a") == 0
    assert limiter.try_acquire("a") == 1


def test_memory_stays_bounded_with_many_clients():
    clock = Clock()
    limiter = RateLimiter(5, clock)
    for number in range(25_000):
        limiter.try_acquire(f"client-{number}")
    assert len(limiter._buckets) <= 10_000


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::ffff", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("unknown", "unknown"),
    ],
)
def test_ipv6_clients_are_counted_by_their_64_network(address, key):
    assert client_key(address) == key
