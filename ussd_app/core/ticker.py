"""One thread per process that writes out what the process counted (its
metrics, its funnel counts), once a second.

Counting is in memory, on the hot path, without a round trip; writing is
here, off it. Each writer is registered once (:func:`every_second`) and
held weakly, so an app torn down is forgotten; a forked child starts its
own thread for the writers it inherited (what they hold is reset by their
own fork hooks). A writer that fails is logged and tried again the next
second; at exit every writer runs once more.
"""
from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable

log = logging.getLogger(__name__)

SECONDS = 1.0

_writers: list[weakref.WeakMethod] = []
_lock = threading.Lock()
_thread: threading.Thread | None = None
_stopped = False


def every_second(write: Callable[[], None]) -> None:
    """Run ``write`` (a bound method: held weakly) once a second from now on."""
    global _thread
    with _lock:
        _writers.append(weakref.WeakMethod(write))
        if _thread is None and not _stopped:
            _thread = threading.Thread(target=_run, name="ussd-ticker", daemon=True)
            _thread.start()


def forget(write: Callable[[], None]) -> None:
    """Stop running ``write``."""
    with _lock:
        _writers[:] = [w for w in _writers if w() is not None and w() != write]


def write_all() -> None:
    """Every writer, now (a tick, and the process's exit)."""
    with _lock:
        writers = [w() for w in _writers]
        _writers[:] = [w for w, alive in zip(_writers, writers) if alive is not None]
    for write in writers:
        if write is None:
            continue
        try:
            write()
        except Exception:  # kept by the writer, tried again next second
            log.warning("%s failed; tried again in a second", getattr(write, "__qualname__", write),
                        exc_info=True)


def stop() -> None:
    """No more ticks in this process (the writers stay: :func:`write_all`
    still runs them, as at exit). For a measure that writes when it chooses
    (bench/hop_cost.py)."""
    global _thread, _stopped
    with _lock:
        _thread, _stopped = None, True


def _run() -> None:
    me = threading.current_thread()
    while True:
        time.sleep(SECONDS)
        if _thread is not me:
            return
        write_all()


def _forked() -> None:
    """The parent's thread is not in a forked child: the child starts its own."""
    global _lock, _thread
    _lock, _thread = threading.Lock(), None
    if _writers and not _stopped:
        _thread = threading.Thread(target=_run, name="ussd-ticker", daemon=True)
        _thread.start()


os.register_at_fork(after_in_child=_forked)
atexit.register(write_all)
