"""frontend.execution.run_cancellable: Ctrl-C cancels the statement even when it lands early."""

from __future__ import annotations

import signal
import threading

import pytest

from sqlrec.frontend.execution import run_cancellable


def test_an_interrupt_that_lands_before_the_query_is_repeated():
    # The first interrupt() finds nothing running (the statement still parsing, say); the work
    # only stops at a later one, as a DuckDB query started after the first interrupt would.
    calls = []
    stopped = threading.Event()

    def interrupt() -> None:
        calls.append(1)
        if len(calls) >= 2:
            stopped.set()

    def work() -> str:
        if not stopped.wait(10):
            raise AssertionError("never interrupted again")
        return "cancelled"

    threading.Timer(0.1, signal.raise_signal, (signal.SIGINT,)).start()
    value, interrupted = run_cancellable(work, interrupt)
    assert (value, interrupted) == ("cancelled", True) and len(calls) >= 2


def test_work_errors_reach_the_caller_and_no_interrupt_without_ctrl_c():
    calls = []

    def work() -> None:
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        run_cancellable(work, lambda: calls.append(1))
    assert calls == []
