"""Small shared helpers: unique names for test objects and polling for a condition."""

from __future__ import annotations

import secrets
import time


def unique_name(prefix: str = "t") -> str:
    """A short name unique across tests and runs: prefix + '_' + 10 hex digits."""
    return f"{prefix}_{secrets.token_hex(5)}"


def wait_until(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    """Polls predicate() until it returns a truthy value, which is returned.
    Raises AssertionError naming `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)
