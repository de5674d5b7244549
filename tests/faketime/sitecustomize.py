"""Loaded (through PYTHONPATH) only by `./run test --at`, in every Python process of the run.

libfaketime 0.9.10 with FAKETIME_DONT_FAKE_MONOTONIC=1 makes clock_nanosleep with an
absolute monotonic deadline fail with EINVAL, and CPython 3.11's time.sleep uses exactly
that. Sleeping through select() with a relative timeout behaves the same and works under
libfaketime. Faking the monotonic clock instead breaks every lock/Event wait with a
timeout (sem_clockwait is not intercepted), so the monotonic clock stays real.
"""

import select
import time


def _sleep(seconds: float) -> None:
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    select.select([], [], [], seconds)


time.sleep = _sleep
