"""The handler contract: every registered engine passes the same tests, through SQL.

A new engine joins sqlrec by registering a handler; this file then checks, for it too, that it
trains, answers every recommender type it declares (and refuses the others clearly), describes
itself, survives a save and a reopen bit for bit, and handles users it has never seen.

The contract is CONTRACT: another test module runs it on its own engine by importing these
functions and overriding the `engine` fixture (tests/test_engine_registration.py does, for an
engine defined in the test).
"""

from __future__ import annotations

import numpy as np
import pytest

import sqlrec
from sqlrec import errors
from sqlrec.engines import HANDLERS
from sqlrec.models.model import RECOMMENDER_TYPES
from conftest import file_database, group

def _spark_missing() -> bool:
    from sqlrec.spark.runtime import java_command, pyspark_installed

    return not pyspark_installed() or java_command() is None


# spark_als trains on a local[2] Spark (a job per test): slow, and skipped without pyspark or java.
ENGINES = [pytest.param(e, marks=[pytest.mark.slow, pytest.mark.skipif(_spark_missing(), reason="no pyspark or java")])
           if e == "spark_als" else e for e in sorted(HANDLERS)]
OPTIONS = {"als": "no_components = 8", "explicit": "no_components = 8", "lightfm": "epochs = 10, no_components = 8",
           "svd": "no_components = 4", "popularity": "",
           "spark_als": "no_components = 8, epochs = 5, spark_master = 'local[2]'"}


def create_sql(engine: str, name: str = "m", extra: str = "") -> str:
    params = ", ".join(p for p in (OPTIONS.get(engine, ""), extra) if p)
    return (f"CREATE OR REPLACE MODEL {name} FROM ratings PREDICT movieId USING engine = '{engine}', "
            f"user_id = 'userId', rating = 'rating', threshold = 4, random_state = 3{', ' + params if params else ''}")


@pytest.fixture(params=ENGINES)
def engine(request):
    return request.param


@pytest.fixture
def model(con, engine):
    con.execute(create_sql(engine))
    return con


def test_every_engine_has_a_complete_handler(engine):
    cls = HANDLERS[engine]
    assert cls.engine == engine
    assert set(cls.recommender_types) <= set(RECOMMENDER_TYPES) and "user_item" in cls.recommender_types
    assert all(o.name not in ("item_features", "user_features") for o in cls.params_spec), \
        "feature sources are sqlrec's options: no SQL text reaches a handler"


def test_declared_kinds_answer_ranked_unique_rows(model, engine, ratings):
    for kind in HANDLERS[engine].recommender_types:
        key = "userId" if RECOMMENDER_TYPES[kind].key == "user" else "movieId"
        value = 2 if key == "userId" else 105
        got = model.execute(f"SELECT * FROM m WHERE {key} = {value} USING recommender_type = '{kind}', "
                            "n_recommendations = 5").fetchall()
        assert [r[3] for r in got] == [1, 2, 3, 4, 5], kind
        assert all(r[0] == value for r in got), kind
        scores = [r[2] for r in got]
        assert scores == sorted(scores, reverse=True), kind
        assert len({r[1] for r in got}) == 5, kind
        if RECOMMENDER_TYPES[kind].similarity:
            assert value not in {r[1] for r in got}, f"{kind}: an id is not its own neighbour"
        if kind == "user_item":
            seen = set(ratings.loc[ratings.userId == 2, "movieId"])
            assert not seen & {r[1] for r in got}, "user_item excludes what the user has"


def test_undeclared_kinds_are_refused_by_name(model, engine):
    for kind in sorted(set(RECOMMENDER_TYPES) - set(HANDLERS[engine].recommender_types)):
        with pytest.raises(errors.QueryError, match=f"engine '{engine}' does not support recommender_type '{kind}'"):
            model.execute(f"SELECT * FROM m WHERE movieId = 105 USING recommender_type = '{kind}'")


def test_learning_engines_learn_the_taste_groups(model, engine):
    if not HANDLERS[engine].personalised:
        pytest.skip(f"{engine} recommends the same items to everyone by design")
    got = model.execute("SELECT userId, movieId FROM m WHERE userId IN (1, 2, 3, 4)").fetchall()
    own = sum(group(item) == (user - 1) % 2 for user, item in got)
    assert own >= 0.8 * len(got)


def test_describe_shows_engine_facts(model, engine):
    described = dict(model.execute("DESCRIBE m.model").fetchall())
    handler = model.router.model("m").handler
    for key, value in handler.describe().items():
        assert key in described
    assert model.execute("SELECT value FROM m.info WHERE property = 'engine'").fetchall() == [(engine,)]


def test_save_and_reopen_round_trip(tmp_path, engine):
    path = str(tmp_path / "contract.duckdb")
    con = file_database(path, create_sql(engine))
    query = "SELECT * FROM m WHERE userId IN (1, 2) ORDER BY userId, rank"
    before = con.execute(query).fetchall()
    arrays_before = con.router.model("m").handler.arrays()
    con.close()
    con = sqlrec.connect(path, read_only=True)
    assert con.execute(query).fetchall() == before
    arrays_after = con.router.model("m").handler.arrays()
    assert sorted(arrays_after) == sorted(arrays_before)
    for name, array in arrays_before.items():
        np.testing.assert_array_equal(arrays_after[name], array, err_msg=name)
    con.close()


def test_unknown_users_fall_back_or_fail_as_asked(model, engine):
    popular = model.execute("SELECT movieId FROM m WHERE userId = 99999 ORDER BY rank").fetchall()
    assert len(popular) == 10
    expected = model.execute(
        "SELECT movieId FROM ratings WHERE rating >= 4 GROUP BY movieId ORDER BY count(*) DESC, movieId LIMIT 10"
    ).fetchall()
    assert popular == expected
    model.execute(create_sql(engine, extra="cold_start = 'error'"))
    with pytest.raises(errors.UnknownIdError, match="unknown userId 99999"):
        model.execute("SELECT * FROM m WHERE userId = 99999")


def test_fold_in_a_new_user(model, engine):
    liked = "SELECT 777 AS userId, movieId FROM (VALUES (100), (101), (102), (103)) v(movieId)"
    got = model.execute(f"SELECT movieId FROM m WHERE userId = 777 USING interactions = '{liked}'").fetchall()
    assert len(got) == 10
    assert not {100, 101, 102, 103} & {r[0] for r in got}, "the given interactions count as seen"
    if HANDLERS[engine].personalised:
        assert sum(group(r[0]) == 0 for r in got) >= 8, "folded in near the even taste group"


def test_pair_scores_equal_the_ranking(model, engine):
    """Model.score_pairs and an item filter give every pair the score its ranking gives it."""
    full = model.execute("SELECT movieId, score FROM m WHERE userId = 2 USING n_recommendations = 40, "
                         "exclude_seen = false").fetchall()
    m = model.router.model("m")
    items = m.side("item").index.get_indexer([r[0] for r in full])
    pairs = m.score_pairs(np.full(len(items), m.side("user").index.get_loc(2)), items)
    np.testing.assert_allclose(pairs, [r[1] for r in full], rtol=1e-5, atol=1e-5)
    asked = [full[-1][0], full[0][0]]
    got = model.execute(f"SELECT movieId, rank FROM m WHERE userId = 2 AND movieId IN ({asked[0]}, {asked[1]}) "
                        "USING exclude_seen = false").fetchall()
    assert got == [(asked[1], 1), (asked[0], 2)]


# Every test above, for a module that runs the contract on another engine (see the docstring).
CONTRACT = (test_every_engine_has_a_complete_handler, test_declared_kinds_answer_ranked_unique_rows,
            test_undeclared_kinds_are_refused_by_name, test_learning_engines_learn_the_taste_groups,
            test_describe_shows_engine_facts, test_save_and_reopen_round_trip, test_unknown_users_fall_back_or_fail_as_asked,
            test_fold_in_a_new_user, test_pair_scores_equal_the_ranking)
