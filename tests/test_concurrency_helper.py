"""The concurrency helper bounds how many calls (and so database connections) run at once."""

from __future__ import annotations

import threading

from tests.concurrency import all_at_once, max_connections


def test_calls_run_at_most_max_connections_at_a_time_and_the_first_wave_together(monkeypatch):
    monkeypatch.setenv("MODELGATE_TEST_MAX_CONNECTIONS", "3")
    assert max_connections() == 3
    first_wave = threading.Barrier(3, timeout=30)  # passes only if three calls overlap
    lock, active, peak = threading.Lock(), [0], [0]

    def call(i: int) -> int:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        if i < 3:
            first_wave.wait()
        with lock:
            active[0] -= 1
        return i * i

    assert all_at_once(12, call) == [i * i for i in range(12)]
    assert peak[0] == 3


def test_the_cap_defaults_to_ten_and_never_drops_below_two(monkeypatch):
    monkeypatch.delenv("MODELGATE_TEST_MAX_CONNECTIONS", raising=False)
    assert max_connections() == 10
    monkeypatch.setenv("MODELGATE_TEST_MAX_CONNECTIONS", "1")
    assert max_connections() == 2
    assert all_at_once(1, lambda i: i + 1) == [1]
