"""Features from SQL (sqlrec.ingest.features) and hybrid LightFM training: real DuckDB, real LightFM.

Items 100-119 are genre A and liked by even users, 120-139 genre B and liked by odd users
(conftest), so features carry the same signal as the interactions.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import sqlrec
from sqlrec.ingest import features
from sqlrec.store.session import Session
from sqlrec.errors import ColumnError, OptionError, TrainingDataError

from conftest import FAST, group

CREATE = ("CREATE OR REPLACE MODEL m FROM ratings PREDICT movieId "
          "USING user_id = 'userId', rating = 'rating', threshold = 4, " + FAST)


@pytest.fixture
def movies(con):
    con.execute("""
        CREATE TABLE movies AS
        SELECT i AS movieId,
               CASE WHEN i < 120 THEN 'A' ELSE 'B' END || CASE WHEN i % 5 = 0 THEN '|Classic' ELSE '' END AS genres,
               1980 + (i - 100) AS year,
               CASE WHEN i % 2 = 0 THEN ['even', 'x'] ELSE ['odd'] END AS tags,
               CASE WHEN i = 101 THEN NULL ELSE i % 3 = 0 END AS flag
        FROM range(100, 140) t(i)
        UNION ALL SELECT 999, 'A', 2030, NULL, NULL   -- a movie nobody rated yet
    """)
    return con


def feature_rows(con, side: str = "item") -> dict[str, tuple[str, int]]:
    rows = con.execute("SELECT side, feature, kind, n_entities FROM m.features").fetchall()
    return {f: (k, n) for s, f, k, n in rows if s == side}


def test_kinds_follow_column_types(movies):
    movies.execute(CREATE + ", item_features = movies")
    got = feature_rows(movies)
    assert got["identity"] == ("identity", 40)  # 999 has no interactions: no identity weight
    assert got["genres=A"] == ("multi", 21) and got["genres=Classic"] == ("multi", 8)
    assert got["tags=even"] == ("list", 20) and got["tags=x"] == ("list", 20) and got["tags=odd"] == ("list", 20)
    # min-max scaling maps the smallest year (1980) to weight 0: no feature for that movie
    assert got["year"] == ("numeric", 40)
    assert got["flag=true"] == ("categorical", 13) and got["flag=false"] == ("categorical", 26)  # 101 is NULL
    assert set(got) == {"identity", "genres=A", "genres=B", "genres=Classic", "year", "tags=even", "tags=odd",
                        "tags=x", "flag=false", "flag=true"}
    assert feature_rows(movies, "user") == {"identity": ("identity", 60)}


def test_ids_only_in_features_are_known_and_counted(movies):
    movies.execute(CREATE + ", item_features = 'SELECT movieId, genres FROM movies'")
    info = dict(movies.execute("SELECT * FROM m.info").fetchall())
    assert info["n_items"] == "41" and info["n_items_only_in_features"] == "1"
    assert info["n_item_features"] == "3" and info["item_features"] == "SELECT movieId, genres FROM movies"
    # recommendable: it is a candidate like any other item, scored from its genre
    rows = movies.execute("SELECT movieId FROM m WHERE userId = 2 USING n_recommendations = 41").fetchall()
    assert (999,) in rows
    sim = movies.execute("SELECT similar_movieId FROM m WHERE movieId = 999 "
                         "USING recommender_type = 'item_item', n_recommendations = 5").fetchall()
    assert len(sim) == 5


def test_matrix_values_scaling_normalisation_identity(con):
    con.execute("CREATE TABLE f AS SELECT * FROM (VALUES (1, 'a', 10.0), (2, 'b', 20.0), (3, NULL, 15.0), "
                "(4, 'a|b', NULL)) t(id, cat, x)")
    ids = pa.array([1, 2, 3], pa.int64())
    duck = con.duckdb
    fs = features.build(Session(duck), "f", side="item", id_col="id", id_type="BIGINT", ids=ids, identity=True,
                        bucket_numeric=None, where="CREATE MODEL m")
    assert fs.spec["names"] == ["cat=a", "cat=b", "x"] and fs.spec["kinds"] == ["multi", "multi", "numeric"]
    assert fs.new_ids.to_pylist() == [4]
    m = fs.matrix.toarray()
    assert m.shape == (4, 4 + 3)  # identity block (every entity) + 3 features
    # id 1: identity 1, cat=a 1, x scaled (10 - 10) / 10 = 0 -> halves after row normalisation
    np.testing.assert_allclose(m[0], [0.5, 0, 0, 0, 0.5, 0, 0])
    np.testing.assert_allclose(m[1], [0, 1 / 3, 0, 0, 0, 1 / 3, 1 / 3], rtol=1e-6)
    np.testing.assert_allclose(m[2], [0, 0, 2 / 3, 0, 0, 0, 1 / 3], rtol=1e-6)  # x = 0.5, NULL cat
    np.testing.assert_allclose(m[3], [0, 0, 0, 0, 0.5, 0.5, 0])  # no interactions: no identity weight
    np.testing.assert_allclose(m.sum(axis=1), 1.0, rtol=1e-6)

    off = features.build(Session(duck), "SELECT id, x FROM f", side="item", id_col="id", id_type="BIGINT", ids=ids,
                         identity=False, bucket_numeric=2, where="CREATE MODEL m")
    assert off.spec["names"] == ["x=[10,15)", "x=[15,20]"] and off.spec["kinds"] == ["bucket", "bucket"]
    np.testing.assert_array_equal(off.matrix.toarray(), [[1, 0], [0, 1], [0, 1], [0, 0]])
    # a later source maps through the training spec: edges, scaling and vocabulary kept
    got_ids, rows = features.rows_for(Session(duck), fs.spec, "SELECT 7 AS ID, 'b|zzz' AS CAT, 40 AS x", option="item_features",
                                      id_col="id", id_type="BIGINT", wanted=None, where="q")
    assert got_ids.to_pylist() == [7]
    np.testing.assert_allclose(rows.toarray(), [[0, 0.5, 0.5]])  # x clamped to 1, unknown zzz dropped
    _, rows = features.rows_for(Session(duck), off.spec, "SELECT 7 AS id, 12 AS x", option="item_features", id_col="id",
                                id_type="BIGINT", wanted=pa.array([8, 7]), where="q")
    np.testing.assert_array_equal(rows.toarray(), [[0, 0], [1, 0]])


def test_long_format(con):
    con.execute("CREATE TABLE lf AS SELECT * FROM (VALUES (1, 'x', 2.0), (1, 'y', 1.0), (2, 'x', NULL), "
                "(2, 'z', 3.0)) t(id, feature, value)")
    fs = features.build(Session(con.duckdb), "lf", side="user", id_col="id", id_type="INTEGER", ids=pa.array([1, 2], pa.int32()),
                        identity=False, bucket_numeric=None, where="w")
    assert fs.spec["layout"] == "long" and fs.spec["names"] == ["x", "y", "z"]
    assert fs.spec["kinds"] == ["weight"] * 3
    np.testing.assert_allclose(fs.matrix.toarray(), [[2 / 3, 1 / 3, 0], [0, 0, 1]], rtol=1e-6)
    con.execute("CREATE TABLE lt AS SELECT * FROM (VALUES (1, 'color', 'red'), (2, 'color', 'blue')) t(id, feature, value)")
    fs = features.build(Session(con.duckdb), "lt", side="user", id_col="id", id_type="INTEGER", ids=pa.array([1, 2], pa.int32()),
                        identity=False, bucket_numeric=None, where="w")
    assert fs.spec["names"] == ["color=blue", "color=red"] and fs.spec["kinds"] == ["categorical"] * 2


def test_hybrid_and_content_models_learn_the_groups(movies):
    for identity in ("true", "false"):
        movies.execute(CREATE.replace("epochs = 5", "epochs = 20")
                       + f", item_features = 'SELECT movieId, genres FROM movies', item_identity = {identity}")
        rows = movies.execute("SELECT userId, movieId FROM m WHERE userId <= 20 USING n_recommendations = 5").fetchall()
        own = np.mean([group(i) == (u - 1) % 2 for u, i in rows if i != 999])
        assert own > 0.9, (identity, own)
    assert "identity" not in feature_rows(movies)  # identity = false: a pure content model


def test_scores_are_lightfm_predictions_and_survive_reopening(tmp_path, ratings):
    path = str(tmp_path / "h.duckdb")
    con = sqlrec.connect(path)
    con.register("r", ratings)
    con.execute("CREATE TABLE ratings AS SELECT * FROM r")
    con.execute("CREATE TABLE users AS SELECT DISTINCT userId, CASE WHEN userId % 2 = 0 THEN 'even' ELSE 'odd' END "
                "AS kind, userId * 1.5 AS age FROM ratings")
    con.execute("CREATE TABLE movies AS SELECT DISTINCT movieId, CASE WHEN movieId < 120 THEN 'A' ELSE 'B' END AS g "
                "FROM ratings")
    con.execute(CREATE + ", user_features = users, item_features = movies")
    before = con.execute("SELECT userId, movieId, score FROM m WHERE userId IN (3, 4) ORDER BY ALL").fetchall()
    model = con.router.catalog().load("m", "test")
    h = model.handler
    users = np.array([3, 4])
    for u, i, score in before:
        upos = model.users.to_pylist().index(u)
        ipos = model.items.to_pylist().index(i)
        expected = h.model.predict(np.array([upos]), np.array([ipos]), user_features=h.features["user"],
                                   item_features=h.features["item"])[0]
        assert score == pytest.approx(expected, abs=1e-5)
    assert len(users) == 2
    emb = con.execute("SELECT side, count(*), min(len(vector)) FROM m.feature_embeddings GROUP BY side ORDER BY side"
                      ).fetchall()
    assert emb == [("item", 2, 8), ("user", 3, 8)]
    con.close()

    again = sqlrec.connect(path)
    assert again.execute("SELECT userId, movieId, score FROM m WHERE userId IN (3, 4) ORDER BY ALL").fetchall() == before
    assert feature_rows(again, "user")["kind=odd"] == ("categorical", 30)
    again.close()


def test_bad_feature_sources_name_the_culprit(movies):
    def fails(options: str, error: type, *words: str) -> None:
        with pytest.raises(error) as info:
            movies.execute(CREATE + ", " + options)
        for word in words:
            assert word in str(info.value), str(info.value)

    fails("item_features = 'SELECT genres, year FROM movies'", ColumnError, "'movieId'", "genres, year")
    fails("item_features = 'SELECT CAST(movieId AS VARCHAR) AS movieId, genres FROM movies'", ColumnError,
          "VARCHAR", "BIGINT", "CAST(")
    fails("item_features = 'SELECT movieId, now() AS seen_at FROM movies'", ColumnError, "'seen_at'",
          "TIMESTAMP WITH TIME ZONE")
    fails("item_features = 'SELECT movieId, {''a'': 1} AS s FROM movies'", ColumnError, "'s'", "STRUCT")
    fails("item_features = 'SELECT * FROM movies WHERE false'", TrainingDataError, "item_features", "no rows")
    fails("item_features = no_such_table", sqlrec.ProgrammingError, "item_features", "no_such_table")
    fails("item_features = 'DROP TABLE movies'", OptionError, "item_features")
    fails("item_identity = false", OptionError, "item_identity", "item_features")
    fails("bucket_numeric = 4", OptionError, "bucket_numeric")
    fails("item_features = movies, bucket_numeric = 1", OptionError, "bucket_numeric", ">= 2")
    with pytest.raises(OptionError, match="item_features"):
        movies.execute("CREATE MODEL p FROM ratings PREDICT movieId USING engine = 'popularity', user_id = 'userId', "
                       "item_features = movies")
    # nothing was created, nothing left behind
    assert movies.execute("SHOW MODELS").fetchall() == []
    assert movies.duckdb.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary").fetchone()[0] == 0


def test_several_rows_per_id_add_up(con):
    con.execute("CREATE TABLE tags AS SELECT * FROM (VALUES (100, 'space'), (100, 'robots'), (101, 'space'), "
                "(101, 'space')) t(movieId, tag)")
    con.execute(CREATE + ", item_features = tags")
    got = feature_rows(con)
    assert got["tag=space"] == ("categorical", 2) and got["tag=robots"] == ("categorical", 1)


def test_feature_sources_are_sqlrecs_options_not_model_parameters(con):
    """No SQL text reaches a handler: the feature source is in m.info, not among m.model's parameters."""
    con.execute("CREATE TABLE movies AS SELECT DISTINCT movieId, 'g' || (movieId % 4) AS genre FROM ratings")
    con.execute(f"CREATE MODEL h FROM ratings PREDICT movieId USING user_id = 'userId', {FAST}, "
                "item_features = 'SELECT movieId, genre FROM movies', bucket_numeric = NULL")
    parameters = dict(con.execute("SELECT * FROM h.model").fetchall())
    assert not {"item_features", "user_features", "item_identity", "user_identity", "bucket_numeric"} & set(parameters)
    assert not any("SELECT" in str(v) for v in parameters.values())
    assert dict(con.execute("SELECT * FROM h.info").fetchall())["item_features"] == "SELECT movieId, genre FROM movies"


def test_feature_weight_keeps_the_identity_share_fixed():
    import scipy.sparse as sp

    from sqlrec.ingest.features import weighting

    meta = sp.csr_matrix(np.array([[3.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 2.0]], np.float32))
    identity = np.array([1.0, 1.0, 0.0], np.float32)  # the third id is known from its features only
    m = weighting.combine(identity, meta, 0.2).toarray()
    assert m[0, :3].tolist() == pytest.approx([0.8, 0.0, 0.0]) and m[0, 3:].tolist() == pytest.approx([0.15, 0.05, 0.0])
    assert m[1].tolist() == pytest.approx([0, 1, 0, 0, 0, 0])  # no features: all identity
    assert m[2].tolist() == pytest.approx([0, 0, 0, 0.25, 0.25, 0.5])  # no identity: all features
    legacy = weighting.combine(identity, meta, None).toarray()  # LightFM: every feature alike
    assert legacy[0].tolist() == pytest.approx([0.2, 0, 0, 0.6, 0.2, 0])
    assert weighting.transform(meta, "binary").toarray()[2].tolist() == [1, 1, 1]
    assert weighting.transform(meta, "log").toarray()[0, 0] == pytest.approx(np.log1p(3.0))


def test_feature_weight_and_values_through_sql(con):
    con.execute("CREATE TABLE tags AS SELECT DISTINCT movieId, 'tag' || (movieId % 5) AS feature, "
                "(movieId % 7 + 1)::DOUBLE AS value FROM ratings")
    con.execute(f"CREATE MODEL w FROM ratings PREDICT movieId USING user_id = 'userId', {FAST}, item_features = tags, "
                "feature_weight = 0.25, feature_values = 'log'")
    info = dict(con.execute("SELECT * FROM w.info").fetchall())
    assert (info["item_feature_weight"], info["item_feature_values"]) == ("0.25", "log")
    con.execute(f"CREATE MODEL lf FROM ratings PREDICT movieId USING user_id = 'userId', {FAST}, item_features = tags, "
                "feature_weight = 'lightfm'")  # LightFM's own scaling, on request
    assert dict(con.execute("SELECT * FROM lf.info").fetchall())["item_feature_weight"] == "lightfm"
    assert dict(con.execute("SELECT * FROM w.info").fetchall())["item_feature_weight"] == "0.25"
    for bad, fragment in (("feature_weight = 0.25", "option feature_weight needs option item_features"),
                          ("feature_values = 'log'", "option feature_values needs option item_features"),
                          ("item_features = tags, feature_weight = 0", "option feature_weight must be > 0"),
                          ("item_features = tags, feature_values = 'sqrt'", "must be one of 'raw', 'log', 'binary'")):
        with pytest.raises(OptionError, match=fragment):
            con.execute(f"CREATE MODEL bad FROM ratings PREDICT movieId USING user_id = 'userId', {FAST}, {bad}")
