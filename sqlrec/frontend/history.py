"""Where the shell keeps its history: $SQLREC_HISTORY, else $XDG_STATE_HOME/sqlrec/history,
else ~/.local/state/sqlrec/history (the XDG place for state that is not configuration)."""

from __future__ import annotations

import os
from pathlib import Path

from prompt_toolkit.history import FileHistory, History, InMemoryHistory


def history_path() -> Path:
    env = os.environ.get("SQLREC_HISTORY")
    if env:
        return Path(env).expanduser()
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(state) / "sqlrec" / "history"


def make_history(path: Path | None = None) -> History:
    """The history file, created if missing; in memory where it cannot be written (read-only home)."""
    path = Path(path) if path is not None else history_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)
        return FileHistory(str(path))
    except OSError:
        return InMemoryHistory()
