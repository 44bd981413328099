"""Ctrl-C and SIGTERM: a live source being read ends as a stream that stops; otherwise the
main thread unwinds once, and the process ends within a second."""

from __future__ import annotations

import _thread
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import NoReturn

GRACE_SECONDS = 0.5
SIGNALS = (signal.SIGINT, signal.SIGTERM)
_state = {"stopping": False, "reported": False}
_counts = {"handled": 0, "seen": 0}  # signals run by the handler, and read by the watchdog
_ended_live: dict[int, bool] = {}  # the nth signal: True when it only ended a live source
_decide = threading.RLock()
_live_stops: list[Callable[[], bool]] = []


class Interrupted(BaseException):
    """Ctrl-C or SIGTERM: stop, keep what is done, exit 128 + signal."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.exit_code = 128 + signum


def install() -> None:
    """Raise Interrupted in the main thread on the first SIGINT or SIGTERM that does not end a
    live source (see `ending_live_sources`); ignore later ones.

    Whatever the main thread is doing (waiting for a worker, or blocked in native code that
    does not return to Python), a watchdog thread woken by the signal ends the process
    GRACE_SECONDS later if the orderly exit has not done so by then.
    """
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    threading.Thread(
        target=_watchdog, args=(read_end,), name="posecli-watchdog", daemon=True
    ).start()
    for signum in SIGNALS:
        signal.signal(signum, _on_signal)


@contextlib.contextmanager
def ending_live_sources(request: Callable[[], bool]) -> Iterator[None]:
    """Meanwhile a signal first calls `request` (which must only set flags) to end the live
    source being read, and is an interrupt only when it returns False (none is being read, or
    it is already ending: a second Ctrl-C)."""
    _live_stops.append(request)
    try:
        yield
    finally:
        _live_stops.remove(request)


def _only_ends_live(count: int) -> bool:
    """Whether the `count`th signal only ended a live source: decided once, by the first of the
    handler and the watchdog to see it."""
    with _decide:
        if count not in _ended_live:
            stop = _live_stops[-1] if _live_stops else None
            _ended_live[count] = not _state["stopping"] and stop is not None and stop()
        return _ended_live[count]


def _on_signal(signum: int, _frame) -> None:
    """Unwind like Ctrl-C the first time, unless the signal ended a live source; a second
    Ctrl-C while unwinding changes nothing. Signals that came together are handled once: the
    watchdog's count then tells the last one."""
    _counts["handled"] += 1
    if _only_ends_live(max(_counts["handled"], _counts["seen"])):
        return
    if not _state["stopping"]:
        _state["stopping"] = True
        raise Interrupted(signum)


def reported() -> None:
    """Note that the interrupt has been reported, so the watchdog does not repeat it."""
    _state["reported"] = True


def _watchdog(read_end: int) -> None:
    """Wait for a signal that does more than end a live source, make sure the main thread
    unwinds (the handler runs once for signals that came together, and may have taken them
    for one that ended a live source), give it GRACE_SECONDS, then end the process."""
    while True:
        signum = os.read(read_end, 1)[0]
        _counts["seen"] += 1
        if not _only_ends_live(_counts["seen"]):
            break
    if not _state["stopping"]:
        _thread.interrupt_main(signal.Signals(signum))
    time.sleep(GRACE_SECONDS)
    if not _state["reported"]:
        with contextlib.suppress(OSError, ValueError):
            os.write(sys.stderr.fileno(), b"posecli: error: interrupted\n")
    os._exit(128 + signum)


def finish(code: int) -> NoReturn:
    """Flush standard output and error and end the process at once.

    Worker threads still busy (a slow read, a long decode) are not waited for, and no signal
    can arrive in the interpreter's shutdown to print a traceback there.
    """
    _state["stopping"] = True
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        code = code or 128 + signal.SIGPIPE
    except (OSError, ValueError):
        pass
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
    os._exit(code)
