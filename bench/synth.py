"""Synthetic implicit-feedback data generated inside DuckDB (fast, reproducible, no download).

Item popularity is Zipf-like, as in real catalogues, so top-N selection and WARP sampling see
realistic skew.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from _common import machine  # noqa: E402,F401 - one banner for every benchmark


def create_interactions(con, table: str, users: int, items: int, per_user: int, seed: int = 42) -> int:
    """CREATE TABLE table(user_id BIGINT, item_id BIGINT) with ~users*per_user distinct pairs."""
    con.execute(f"SELECT setseed({seed / 1000})")
    con.execute(
        f"CREATE OR REPLACE TABLE {table} AS "
        f"SELECT DISTINCT u AS user_id, "
        f"  CAST(floor({items} * pow(random(), 2.5)) AS BIGINT) AS item_id "
        f"FROM range({users}) r(u), range({int(per_user * 1.15)}) k(j)"
    )
    return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]

