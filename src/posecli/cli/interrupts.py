"""Ctrl-C and SIGTERM: the main thread unwinds once, and the process ends within a second."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from typing import NoReturn

from .common import Interrupted

GRACE_SECONDS = 0.5
SIGNALS = (signal.SIGINT, signal.SIGTERM)
_state = {"stopping": False, "reported": False}


def install() -> None:
    """Raise Interrupted in the main thread on the first SIGINT or SIGTERM; ignore later ones.

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


def _on_signal(signum: int, _frame) -> None:
    """Unwind like Ctrl-C the first time; a second Ctrl-C while unwinding changes nothing."""
    if not _state["stopping"]:
        _state["stopping"] = True
        raise Interrupted(signum)


def reported() -> None:
    """Note that the interrupt has been reported, so the watchdog does not repeat it."""
    _state["reported"] = True


def _watchdog(read_end: int) -> None:
    """Wait for a signal, give the main thread GRACE_SECONDS, then end the process."""
    signum = os.read(read_end, 1)[0]
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
