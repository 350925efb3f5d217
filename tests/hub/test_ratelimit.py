"""Login throttling with a fake clock: backoff per (user, address), slowdown per user, bounded memory."""

from __future__ import annotations

from hub.ratelimit import LoginThrottle, SlidingWindow, ThrottlePolicy


class FakeClock:
    """Time that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_full_table_forgets_its_oldest_keys_not_all_of_them() -> None:
    clock = FakeClock()
    window = SlidingWindow(limit=3, window_s=60, max_keys=100, clock=clock)
    for _ in range(3):
        assert window.allow("guesser")
    assert not window.allow("guesser")
    for i in range(500):  # a spray of fresh keys, the guesser still trying in between
        window.allow(f"spray{i}")
        assert not window.allow("guesser")
    assert len(window) == 100
    clock.now += 61
    assert window.allow("guesser")


def test_backoff_doubles_per_user_and_address_and_a_success_clears_it() -> None:
    clock = FakeClock()
    policy = ThrottlePolicy(free_failures=3, base_delay_s=1, max_delay_s=8)
    throttle = LoginThrottle(policy, clock)
    waits = []
    for _ in range(8):
        throttle.failed("ana", "10.0.0.1")
        waits.append(throttle.retry_after("ana", "10.0.0.1"))
    assert waits == [None, None, 1, 2, 4, 8, 8, 8]
    assert throttle.retry_after("ana", "10.0.0.2") is None  # the same user elsewhere is not held
    assert throttle.retry_after("bob", "10.0.0.1") is None  # nor another user from here
    clock.now += 8
    assert throttle.retry_after("ana", "10.0.0.1") is None
    throttle.succeeded("ana", "10.0.0.1")
    throttle.failed("ana", "10.0.0.1")
    assert throttle.retry_after("ana", "10.0.0.1") is None


def test_a_user_under_attack_from_many_addresses_is_slowed_never_refused() -> None:
    clock = FakeClock()
    policy = ThrottlePolicy(slow_after=10, slow_step_s=0.5, slow_max_s=2.0)
    throttle = LoginThrottle(policy, clock)
    for i in range(10):
        throttle.failed("ana", f"10.0.1.{i}")
    assert throttle.slowdown("ana") == 0
    for i in range(100):
        throttle.failed("ana", f"10.0.2.{i}")
    assert throttle.slowdown("ana") == 2.0
    assert throttle.retry_after("ana", "192.0.2.1") is None  # the real user's own address
    assert throttle.slowdown("bob") == 0
    clock.now += policy.forget_after_s + 1
    assert throttle.slowdown("ana") == 0


def test_per_address_cap_whatever_the_usernames() -> None:
    throttle = LoginThrottle(ThrottlePolicy(per_address_per_minute=5), FakeClock())
    assert [throttle.retry_after(f"u{i}", "10.0.0.9") for i in range(6)] == [None] * 5 + [60.0]
    assert throttle.retry_after("u0", "10.0.0.8") is None
