"""Shared fixtures: small generated data with a known structure, real DuckDB, real LightFM.

Two taste groups: even users mostly rate items 0-19 highly, odd users items 20-39; so a
working model must recommend each user items of their own group.
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sqlrec

FAST = "epochs = 5, no_components = 8, random_state = 7"


def make_ratings(n_users: int = 60, n_items: int = 40, per_user: int = 12, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        own = np.arange(20) if u % 2 == 0 else np.arange(20, 40)
        other = np.arange(20, 40) if u % 2 == 0 else np.arange(20)
        liked = rng.choice(own, per_user - 2, replace=False)
        disliked = rng.choice(other, 2, replace=False)
        for i in liked:
            rows.append((u + 1, int(i) + 100, float(rng.choice([4, 4.5, 5])), 1_600_000_000 + len(rows)))
        for i in disliked:
            rows.append((u + 1, int(i) + 100, float(rng.choice([1, 2])), 1_600_000_000 + len(rows)))
    return pd.DataFrame(rows, columns=["userId", "movieId", "rating", "ts"])


def file_database(path, create: str | None = None) -> sqlrec.Connection:
    """An open file database holding the ratings table (and the model `create` makes, if given)."""
    con = sqlrec.connect(str(path))
    con.register("ratings_df", make_ratings())
    con.execute("CREATE TABLE ratings AS SELECT * FROM ratings_df")
    con.unregister("ratings_df")
    if create is not None:
        con.execute(create)
    return con


@contextlib.contextmanager
def sqlrec_serve(*args: str):
    """The installed `sqlrec serve ARGS` on a free loopback port: yields (url, its start line);
    stopped with SIGINT on exit, which must end it cleanly (exit status 0)."""
    command = [str(Path(sys.executable).with_name("sqlrec")), "serve", *args, "--port", "0"]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        found = re.search(r"on (http://127\.0\.0\.1:\d+)", line)
        assert found, line + proc.stderr.read()
        yield found.group(1), line
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
        proc.stderr.close()


@pytest.fixture
def path(tmp_path):
    """A closed database file holding the ratings table and a trained movie_rec."""
    path = tmp_path / "shop.duckdb"
    file_database(path, f"CREATE MODEL movie_rec FROM ratings PREDICT movieId USING user_id = 'userId', {FAST}").close()
    return path


@pytest.fixture
def ratings() -> pd.DataFrame:
    return make_ratings()


@pytest.fixture
def con(ratings):
    c = sqlrec.connect()
    c.register("ratings_df", ratings)
    c.execute("CREATE TABLE ratings AS SELECT * FROM ratings_df")
    yield c
    c.close()


@pytest.fixture
def trained(con):
    con.execute(
        "CREATE MODEL movie_rec FROM ratings PREDICT movieId "
        f"USING user_id = 'userId', rating = 'rating', threshold = 4, {FAST}"
    )
    return con


def group(item: int) -> int:
    return 0 if item - 100 < 20 else 1
