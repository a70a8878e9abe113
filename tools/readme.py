"""Keep README.md's walkthrough true: run its SQL blocks on the MovieLens sample, write the output.

Every ```sql block of the README runs in order on one in-memory database that holds the
sample's `ratings` and `movies` tables (as `sqlrec demo` loads them). A ```text block right
after a ```sql block is that block's output and is rewritten; a ```sql block without one just
runs. tests/test_readme.py runs the same blocks and fails when one errors or its columns
drift from what the README shows.

    python tools/readme.py            # rewrite README.md's outputs in place
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"```sql\n(?P<sql>.*?)```\n(?:\n?```text\n(?P<out>.*?)```\n)?", re.S)
MAX_ROWS = 12


@dataclass
class Block:
    sql: str
    shown: str | None  # the README's output text, None when the block has no output block
    start: int
    end: int


def blocks(text: str) -> list[Block]:
    return [Block(m["sql"], m["out"], m.start(), m.end()) for m in BLOCK.finditer(text)]


def run_blocks(found: list[Block]) -> list[str]:
    """The output of every block, in order, on a fresh database with the sample loaded."""
    import sqlrec
    from sqlrec.frontend.demo import load_movielens
    from sqlrec.frontend.formatting import render
    from sqlrec.frontend.scripts import is_row_count
    from sqlrec.sql import split_script

    con = sqlrec.connect()
    load_movielens(con)
    outputs = []
    try:
        for block in found:
            parts = []
            for sql, _line, _col in split_script(block.sql):
                cur = con.execute(sql)
                if cur.description is None:
                    continue
                columns = [d[0] for d in cur.description]
                rows = cur.fetchall()
                if not is_row_count(sql, columns):
                    parts.append(render(columns, rows, "table", MAX_ROWS))
            outputs.append("\n".join(parts))
    finally:
        con.close()
    return outputs


def header(output: str) -> list[list[str]]:
    """The column names of every table in a rendered output: what must not drift."""
    lines = output.splitlines()
    return [[c.strip() for c in lines[i + 1].strip("│").split("│")]
            for i, line in enumerate(lines[:-1]) if line.startswith("┌")]


def update(text: str) -> str:
    found = blocks(text)
    outputs = run_blocks(found)
    pieces, at = [], 0
    for block, out in zip(found, outputs):
        pieces.append(text[at:block.start])
        pieces.append(f"```sql\n{block.sql}```\n")
        if block.shown is not None:
            pieces.append(f"\n```text\n{out}\n```\n")
        at = block.end
    pieces.append(text[at:])
    return "".join(pieces)


def main() -> None:
    README.write_text(update(README.read_text()))
    print(f"updated {README}", file=sys.stderr)


if __name__ == "__main__":
    main()
