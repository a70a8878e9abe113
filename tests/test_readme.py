"""The README's walkthrough is real: every SQL block runs on the MovieLens sample and prints
the columns the README shows (scores may move by a last digit across BLAS builds; columns and
statements may not)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import readme  # noqa: E402


def test_readme_starts_with_the_two_setup_commands():
    text = readme.README.read_text()
    first = text[text.index("```bash\n") + 8:]
    commands = [line.split("#")[0].strip() for line in first[:first.index("```")].splitlines()]
    assert commands == ['pip install -e . && sqlrec demo', 'pip install -e ".[test]" && python -m pytest -q']


@pytest.mark.slow
def test_walkthrough_blocks_run_and_show_what_the_readme_says():
    found = readme.blocks(readme.README.read_text())
    assert len(found) >= 20
    outputs = readme.run_blocks(found)
    shown = [(b.sql.splitlines()[0], readme.header(b.shown.strip("\n"))) for b in found if b.shown is not None]
    got = [(b.sql.splitlines()[0], readme.header(out)) for b, out in zip(found, outputs) if b.shown is not None]
    assert got == shown
    assert all(b.shown.strip() for b in found if b.shown is not None), "an output block is empty: run tools/readme.py"
