"""Waiting in tests for something another thread or process does: one polling helper for every test."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(condition: Callable[[], object], timeout: float = 20.0, what: str = "condition",
               step: float = 0.02) -> object:
    """Poll ``condition()`` every ``step`` s until it is truthy and return its value; fail with ``what``
    after ``timeout`` s (a deadline, not a measurement: tests never assert on how long it took)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)
