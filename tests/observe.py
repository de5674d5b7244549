"""Points a test observes instead of sleeping: polls with a deadline far beyond what any
machine needs (only a wait that never ends reaches it, and the test then fails saying what
it waited for), and watchers that run beside the code under test and release it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

POLL, DEADLINE = 0.02, 90.0


def wait_until(condition: Callable[[], object], what: str, timeout: float = DEADLINE) -> None:
    """Poll `condition` until it is true: a point the test observes, not a sleep."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"after {timeout:g}s still waiting for: {what}"
        time.sleep(POLL)


@contextmanager
def watcher(watch: Callable[[], None], *, release: Callable[[], None]) -> Iterator[None]:
    """Run `watch` in a thread while the block runs, then `release` from that thread, always
    (the block is usually blocked until then). An AssertionError in `watch` fails the test
    once the block has finished and the thread is joined."""
    failures: list[AssertionError] = []

    def run() -> None:
        try:
            watch()
        except AssertionError as exc:
            failures.append(exc)
        finally:
            release()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join(DEADLINE)
    if failures:
        raise failures[0]
