"""Waiting for what other processes do (a module of its own: ``tests/browser`` has a
conftest too, so ``from conftest import`` is ambiguous)."""
import time


def wait_for(check, seconds: float = 20, every: float = 0.1):
    """``check()``'s first truthy answer within ``seconds`` (else its last)."""
    deadline = time.monotonic() + seconds
    while True:
        got = check()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(every)
