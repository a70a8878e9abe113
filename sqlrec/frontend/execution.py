"""Running one statement for a front-end: fetching a bounded result, and Ctrl-C that cancels.

The shell, the CLI and the magics all run statements in a worker thread so that an interrupt
goes through the router (training stops at an epoch boundary and saves nothing) instead of
landing at a random point of the statement.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Result:
    columns: list[str] | None  # None: the statement returned no result set
    rows: list[tuple] = field(default_factory=list)
    total: int = 0  # rows in the whole result, which may be more than `rows` holds
    seconds: float = 0.0


def fetch(cur: Any, max_rows: int | None) -> Result:
    """The rows of a cursor's result: at most `max_rows` kept, all of them counted."""
    if cur.description is None:
        return Result(None)
    columns = [d[0] for d in cur.description]
    if max_rows:
        rows = cur.fetchmany(max_rows)
        total = len(rows)
        if len(rows) == max_rows:
            # Counting the rest through Arrow is cheap; turning it into Python tuples is not.
            total += cur.arrow().num_rows
    else:
        rows = cur.fetchall()
        total = len(rows)
    return Result(columns, rows, total)


def run_cancellable(work: Callable[[], Any], interrupt: Callable[[], None]) -> tuple[Any, bool]:
    """Run `work()` in a worker thread; Ctrl-C (KeyboardInterrupt here) calls `interrupt()`.

    Returns (value, interrupted); re-raises what `work` raised. The statement is always let to
    finish (or fail with sqlrec.errors.Cancelled), so nothing is left half-done.
    """
    box: dict[str, Any] = {}
    # An Event, not Thread.join: a KeyboardInterrupt landing inside join() can leave the
    # thread looking finished (is_alive() False) while it still runs, and its result is lost.
    done = threading.Event()

    def target() -> None:
        try:
            box["value"] = work()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            box["error"] = exc
        finally:
            done.set()

    worker = threading.Thread(target=target, name="sqlrec-statement", daemon=True)
    worker.start()
    interrupted = False
    while True:
        try:
            while not done.wait(0.05):
                if interrupted:
                    # Again until it ends: DuckDB forgets an interrupt that lands before its query
                    # starts (the statement may still be parsing), and the query would then run on.
                    interrupt()
            break
        except KeyboardInterrupt:
            interrupted = True
            interrupt()
    if "error" in box:
        raise box["error"]
    return box.get("value"), interrupted
