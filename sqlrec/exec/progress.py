"""Per-epoch training progress with tqdm (tqdm.auto: a widget in notebooks, text in terminals).

Shown when output is a terminal (or a notebook), never when `verbose = false`, and not when
TQDM_DISABLE is set (tqdm reads its TQDM_* environment overrides itself).
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any


class EpochBar:
    """One bar for one fit: epoch n/N, elapsed, ETA, and the held-out metric when measured.

    verbose: True always shows it, False never, None when output is interactive.
    """

    def __init__(self, total: int, desc: str, verbose: bool | None):
        self._bar = None
        if verbose is False or os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true", "yes"):
            return
        if verbose is None and not _interactive():
            return
        with warnings.catch_warnings():
            # In a notebook without ipywidgets tqdm.auto warns, then falls back to a text bar,
            # which does the job; the warning would sit in every notebook's output.
            warnings.filterwarnings("ignore", message=".*IProgress not found.*")
            from tqdm.auto import tqdm

        self._bar = tqdm(total=total, desc=desc, unit="epoch", leave=True, file=sys.stderr, dynamic_ncols=True)

    def update(self, done: int, total: int, **postfix: Any) -> None:
        if self._bar is not None:
            self._bar.total = total
            self._bar.n = done
            if postfix:
                self._bar.set_postfix(postfix, refresh=False)
            self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _interactive() -> bool:
    if "ipykernel" in sys.modules:
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
