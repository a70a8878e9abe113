"""A fuzz of the engine: the README's statements, mutated, against small models.

Whatever a mutation makes of a statement, running it either works or raises one of sqlrec's
error classes (sqlrec.Error); any other exception is a defect. Cases are derandomised so CI
runs the same ones every time; SQLREC_FUZZ_EXAMPLES=20000 runs more.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

import sqlrec  # noqa: E402
from sqlrec.sql import split_script  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import readme  # noqa: E402

pytestmark = pytest.mark.slow

# Tuning runs many fits: out of a fuzz that runs thousands of statements.
STATEMENTS = [s for b in readme.blocks(readme.README.read_text()) for s, _, _ in split_script(b.sql)
              if "tune" not in s.lower()]
TOKEN = re.compile(r"'(?:[^']|'')*'|\"[^\"]*\"|\w+|\S")
POOL = ["NULL", "0", "-1", "1", "2", "0.5", "1e400", "4294967296", "1180591620717411303424", "''", "'x'",
        "'user_item'", "'item_item'", "'SELECT 1'", "'DROP TABLE movies'", "TRUE", "FALSE", "(", ")", ",", ";",
        "=", "*", ".", "USING", "FROM", "WHERE", "SELECT", "MODEL", "PREDICT", "OPTIONS", "AS", "JOIN", "IN",
        "userId", "movieId", "rating", "movie_rec", "ratings", "movies", "sqlrec", "metrics", "history",
        "epochs", "engine", "'svd'", "'popularity'", "user_id", "item_id", "n_recommendations", "candidates"]
# Values in place of values keep a statement's shape, so the case reaches the engine, not the parser.
LITERALS = ["NULL", "0", "-1", "1", "2", "0.5", "1e400", "-1e300", "4294967296", "1180591620717411303424", "''",
            "'x'", "'user_item'", "'item_item'", "'user_user'", "'item_user'", "'SELECT 1'", "'SELECT 1; SELECT 2'",
            "'DROP TABLE movies'", "'movies'", "'svd'", "'popularity'", "'warp'", "'nan'", "TRUE", "FALSE",
            "'userId'", "'movieId'", "'rating'", "[1, 2]", "'SELECT 100 AS userId, 2571 AS movieId'"]
LITERAL = re.compile(r"'(?:[^']|'')*'|\d+(?:\.\d+)?|TRUE|FALSE|NULL", re.I)
EXAMPLES = int(os.environ.get("SQLREC_FUZZ_EXAMPLES", "1500"))


def small_movielens(con: sqlrec.Connection) -> None:
    rng = np.random.default_rng(0)
    movie_ids = np.array([1, 2, 50, 260, 296, 318, 356, 593, 2571, 2959, 4993, 7153, 9, 10, 11, 12, 13, 14, 15, 16])
    users = np.repeat(np.arange(1, 31), 8)
    users[users == 30] = 100
    users[users == 29] = 215
    frame = pd.DataFrame({
        "userId": users, "movieId": rng.choice(movie_ids, len(users)),
        "rating": rng.choice([1.0, 2.5, 3.0, 4.0, 4.5, 5.0], len(users)),
        "rated_at": pd.Timestamp("2004-01-01") + pd.to_timedelta(rng.integers(0, 730, len(users)), unit="D")})
    con.register("fuzz_ratings", frame)
    con.execute("CREATE OR REPLACE TABLE ratings AS SELECT * FROM fuzz_ratings")
    con.unregister("fuzz_ratings")
    con.execute("CREATE OR REPLACE TABLE movies AS SELECT movieId, 'Movie ' || movieId AS title, "
                "1990 + movieId % 20 AS year, CASE WHEN movieId % 2 = 0 THEN 'Drama|Comedy' ELSE 'Action' END "
                "AS genres FROM (SELECT DISTINCT movieId FROM ratings)")


def setup_models(con: sqlrec.Connection) -> None:
    """The README's statements once as written (so the models they read exist)."""
    for sql in STATEMENTS:
        try:
            con.execute(sql)
        except sqlrec.Error:
            pass  # e.g. ATTACH twice; what matters is that the models exist


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    # A mutated `ATTACH ':memory:'` attaches a file named by whatever literal replaced it, in the
    # working directory: keep those out of the checkout.
    here = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("fuzz_cwd"))
    c = sqlrec.connect()
    try:
        small_movielens(c)
        setup_models(c)
        assert "movie_rec" in {m.name for m in c.models()}
        yield c
    finally:
        c.close()
        os.chdir(here)


def mutate(statement: str, edits: list[tuple[int, int, int]]) -> str:
    tokens = TOKEN.findall(statement)
    for op, where, pick in edits:
        if not tokens:
            break
        i = where % len(tokens)
        literals = [j for j, t in enumerate(tokens) if LITERAL.fullmatch(t)]
        if op >= 4 and literals:
            tokens[literals[where % len(literals)]] = LITERALS[pick % len(LITERALS)]
        elif op in (0, 4, 5):
            tokens[i] = POOL[pick % len(POOL)]
        elif op == 1:
            del tokens[i]
        elif op == 2:
            tokens.insert(i, POOL[pick % len(POOL)])
        else:
            tokens.insert(i, tokens[(i + pick) % len(tokens)])
    return " ".join(tokens)


# Ops: 0 replace a token, 1 delete one, 2 insert one, 3 repeat one, 4-5 replace a value by a value.
EDITS = st.lists(st.tuples(st.integers(0, 5), st.integers(0, 10_000), st.integers(0, 10_000)), min_size=1, max_size=3)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(index=st.integers(0, len(STATEMENTS) - 1), edits=EDITS)
def test_mutated_statements_raise_only_sqlrec_errors(con, index, edits):
    sql = mutate(STATEMENTS[index], edits)
    # Keep every case cheap: no mutation may ask for a long fit.
    sql = re.sub(r"epochs?\s*=\s*\d{3,}", "epochs = 3", sql, flags=re.I)
    try:
        cur = con.execute(sql)
        if cur.description is not None:
            cur.fetchall()
    except sqlrec.Error:
        pass
    except Exception as exc:  # noqa: BLE001 - the defect this test exists to find
        pytest.fail(f"{type(exc).__module__}.{type(exc).__name__}: {exc}\n  statement: {sql}")
    finally:
        # Only the default database's own tables count: a mutated statement may attach or create
        # another `movies` elsewhere, which a reset does not remove (every later case then reset).
        if "movie_rec" not in {m.name for m in con.models()} or \
                not con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = 'memory' AND "
                                "schema_name = 'main' AND table_name IN ('ratings', 'movies')").fetchone()[0] == 2:
            con.execute("USE memory.main")
            small_movielens(con)
            setup_models(con)
