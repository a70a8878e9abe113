"""MindsDB, ThanoSQL and BigQuery ML statements, pasted as their users write them.

The parser tests check that every foreign form reads into a statement object that prints back
(`.sql()`) and re-parses equal. The rest run the products' own statements verbatim on the
MovieLens sample and on a generated 1-10 book-ratings table (ThanoSQL's Goodbooks tutorial).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import sqlrec
from sqlrec.errors import ColumnError, ModelNotFoundError, OptionError, ParseError, QueryError
from sqlrec.engines import HANDLERS
from sqlrec.sql import CreateModel, Describe, DropModel, Query, parse_statement
from sqlrec.sql.compat.foreign import BigQueryCreateModel, CreateMLEngine, PredictUsing, ShowMLEngines

MINDSDB_CREATE = (
    "create model lightfm_demo from mysql_demo_db (SELECT * FROM movie_lens_ratings) predict movieId "
    "using engine='lightfm', item_id='movieId', user_id='userId', threshold=4, n_recommendations=10, "
    "evaluation=true;"
)
THANOSQL_BUILD = (
    "BUILD MODEL movie_rec USING Light_FM OPTIONS (user_col='userid', item_col='movieid', rating_col='rating', "
    "item_names='title') AS SELECT * FROM movielens_train"
)
THANOSQL_PREDICT = ("PREDICT USING movie_rec OPTIONS (predict_type='{kind}', {key}=1{nrec}) AS "
                    "SELECT * FROM movielens_train")
BIGQUERY_EXPLICIT = (
    "CREATE MODEL m OPTIONS(model_type='matrix_factorization', feedback_type='explicit', user_col='user_id', "
    "item_col='item_id', rating_col='rating', num_factors=16, l2_reg=9.83) AS SELECT user_id, item_id, rating "
    "FROM bq_ratings"
)
BIGQUERY_IMPLICIT = (
    "CREATE OR REPLACE MODEL `my-project.movies.bq_rec` OPTIONS(model_type='matrix_factorization', "
    "feedback_type='implicit', user_col='userId', item_col='movieId', rating_col='rating', num_factors=16, "
    "l2_reg=9.83, max_iterations=10, wals_alpha=2) AS SELECT userId, movieId, rating FROM ratings"
)

ROUND_TRIP = [
    ("CREATE ML_ENGINE lightfm FROM lightfm;", CreateMLEngine),
    ("SHOW ML_ENGINES", ShowMLEngines),
    (MINDSDB_CREATE, CreateModel),
    ("CREATE MODEL mindsdb.m FROM ratings PREDICT movieId USING user_id = 'userId'", CreateModel),
    ("DROP MODEL mindsdb.m", DropModel),
    ("DESCRIBE mindsdb.m", Describe),
    (THANOSQL_BUILD, CreateModel),
    (THANOSQL_PREDICT.format(kind="predict_user", key="user_id", nrec=", nrec=10"), PredictUsing),
    (THANOSQL_PREDICT.format(kind="predict_simitem", key="item_id", nrec=""), PredictUsing),
    (BIGQUERY_EXPLICIT, BigQueryCreateModel),
    (BIGQUERY_IMPLICIT, BigQueryCreateModel),
    ("CREATE MODEL IF NOT EXISTS movies.m OPTIONS() AS SELECT 1", BigQueryCreateModel),
    ("SELECT * FROM ML.RECOMMEND(MODEL `p.d.m`, (SELECT 1 AS userId)) AS r JOIN t ON r.a = t.a", Query),
    ("SELECT * FROM ML.PREDICT(MODEL d.m, TABLE pairs)", Query),
    ("WITH w AS (SELECT * FROM ML.WEIGHTS(MODEL m)) SELECT count(*) FROM w", Query),
    ("SELECT * FROM ML.EVALUATE(MODEL m), ML.TRAINING_INFO(MODEL m)", Query),
]


@pytest.mark.parametrize("text, cls", ROUND_TRIP)
def test_foreign_statements_print_back_and_reparse_equal(text, cls):
    st = parse_statement(text)
    assert type(st) is cls
    again = parse_statement(st.sql())
    assert again == st and again.sql() == st.sql()


def test_qualified_names_keep_the_model_name():
    assert parse_statement("DROP MODEL mindsdb.lightfm_demo") == DropModel("lightfm_demo")
    assert parse_statement("DESCRIBE mindsdb.lightfm_demo") == Describe("lightfm_demo")
    assert parse_statement("DESCRIBE mindsdb.lightfm_demo.metrics") == Describe("lightfm_demo", "metrics")
    assert parse_statement("CREATE MODEL `p.d.bq` OPTIONS () AS SELECT 1").name == "bq"
    assert parse_statement("CREATE MODEL d.bq OPTIONS () AS SELECT 1").name == "bq"
    assert parse_statement(THANOSQL_BUILD).engine == "Light_FM"


def test_a_settings_struct_in_an_ml_function_is_a_clear_parse_error():
    with pytest.raises(ParseError, match=r"ML.RECOMMEND: .*STRUCT"):
        parse_statement("SELECT * FROM ML.RECOMMEND(MODEL m, STRUCT(0.5 AS threshold))")


def test_functions_named_like_ml_ones_stay_duckdb_functions():
    st = parse_statement("SELECT weights(1, 2) FROM recommend(3)")
    assert isinstance(st, Query) and st.sql() == "SELECT WEIGHTS(1, 2) FROM RECOMMEND(3)"


# -- on the MovieLens sample ------------------------------------------------------------------

@pytest.fixture(scope="module")
def ml():
    from sqlrec.frontend.demo import load_movielens

    con = sqlrec.connect()
    load_movielens(con)
    con.execute("CREATE TABLE movie_lens_ratings AS SELECT * FROM ratings;"
                "CREATE TABLE movielens_train AS SELECT r.userId AS userid, r.movieId AS movieid, r.rating, "
                "m.title FROM ratings r JOIN movies m USING (movieId)")
    yield con
    con.close()


def rows(con, sql):
    cur = con.execute(sql)
    return [d[0] for d in cur.description], cur.fetchall()


def seen(con, user, table="ratings", user_col="userId", item_col="movieId"):
    return {r[0] for r in con.execute(f"SELECT {item_col} FROM {table} WHERE {user_col} = {user}").fetchall()}


@pytest.mark.slow
def test_mindsdb_lightfm_handler_example_verbatim(ml):
    assert rows(ml, "CREATE ML_ENGINE lightfm FROM lightfm;")[1] == [("lightfm", "lightfm", "ready (built in)")]
    cols, engines = rows(ml, "SHOW ML_ENGINES")
    assert cols == ["name", "handler", "connection_data"] and [e[0] for e in engines] == list(HANDLERS)
    cols, status = rows(ml, MINDSDB_CREATE)
    # threshold applied to the column named rating, as MindsDB's preprocessing does
    positives = ml.execute("SELECT count(*) FROM movie_lens_ratings WHERE rating >= 4").fetchone()[0]
    assert status[0][cols.index("n_interactions")] == positives
    assert status[0][cols.index("precision_at_k")] > 0  # evaluation=true measured
    cols, got = rows(ml, "SELECT * FROM mindsdb.lightfm_demo WHERE userId = 215")
    assert cols[:2] == ["userId", "movieId"] and len(got) == 10
    assert not {r[1] for r in got} & seen(ml, 215)
    scores = [r[2] for r in got]
    assert scores == sorted(scores, reverse=True)
    _, joined = rows(ml, "SELECT b.* FROM movie_lens_ratings AS a JOIN mindsdb.lightfm_demo AS b "
                         "WHERE a.userId = 215")
    assert joined == got
    # the handler README's other queries, verbatim
    _, similar = rows(ml, "SELECT b.* FROM lightfm_demo b where movieId = 100 USING recommender_type='item_item';")
    assert len(similar) == 10 and {r[0] for r in similar} == {100} and 100 not in {r[1] for r in similar}
    _, for_100 = rows(ml, "SELECT b.* FROM lightfm_demo b where userId = 100 USING recommender_type='user_item';")
    assert len(for_100) == 10 and not {r[1] for r in for_100} & seen(ml, 100)
    _, two = rows(ml, "SELECT b.*\nFROM mysql_demo_db.movie_lens_ratings a\njoin lightfm_demo as b\n"
                      "where a.userId in (215,216);")
    assert sorted({r[0] for r in two}) == [215, 216] and len(two) == 20
    assert {r[1] for r in two[:10]} == {r[1] for r in got}
    assert [r[2] for r in two[:10]] == pytest.approx(scores, rel=1e-5)
    _, every = rows(ml, "SELECT b.*\nFROM lightfm_demo b\nwhere recommender_type='item_item'")
    assert len(every) == 10 * ml.execute("SELECT count(DISTINCT movieId) FROM ratings").fetchone()[0]
    assert rows(ml, "DESCRIBE mindsdb.lightfm_demo")[1]
    assert rows(ml, "DESCRIBE mindsdb.lightfm_demo.metrics") == rows(ml, "DESCRIBE lightfm_demo.metrics")
    assert rows(ml, "SELECT * FROM mindsdb.lightfm_demo.metrics") == rows(ml, "SELECT * FROM lightfm_demo.metrics")
    assert rows(ml, "DROP MODEL mindsdb.lightfm_demo")[1] == [("lightfm_demo", "dropped")]
    assert "lightfm_demo" not in {r[0] for r in ml.execute("SHOW MODELS").fetchall()}


def test_create_ml_engine_refuses_a_name_it_could_not_keep(con):
    with pytest.raises(OptionError, match="CREATE ML_ENGINE my_lfm: .*CREATE ML_ENGINE lightfm FROM"):
        con.execute("CREATE ML_ENGINE my_lfm FROM lightfm")
    with pytest.raises(OptionError, match="unknown engine 'tensorflow'"):
        con.execute("CREATE ML_ENGINE tensorflow FROM tensorflow")


def test_an_attached_integration_name_is_read_and_an_unknown_one_is_this_database(con):
    con.execute("CREATE SCHEMA shop; CREATE TABLE shop.clicks AS SELECT userId AS u, movieId AS i FROM ratings "
                "WHERE userId <= 10")
    cols, got = rows(con, "CREATE MODEL mindsdb.s FROM shop (SELECT * FROM clicks) PREDICT i "
                          "USING user_id = 'u', epochs = 2")
    assert got[0][cols.index("n_users")] == 10
    cols, got = rows(con, "CREATE MODEL t FROM mysql_demo_db (SELECT * FROM ratings) PREDICT movieId "
                          "USING user_id = 'userId', epochs = 2")
    assert got[0][cols.index("n_users")] == 60


@pytest.mark.slow
def test_thanosql_movielens_tutorial_verbatim(ml):
    assert rows(ml, THANOSQL_BUILD)[1][0][:2] == ("movie_rec", "lightfm")
    titles = dict(ml.execute("SELECT movieId, title FROM movies").fetchall())
    cols, got = rows(ml, THANOSQL_PREDICT.format(kind="predict_user", key="user_id", nrec=", nrec=10"))
    assert cols == ["movieid", "title", "score"] and len(got) == 10
    assert all(titles[m] == t for m, t, _ in got)
    assert not {r[0] for r in got} & seen(ml, 1)
    assert [r[2] for r in got] == sorted((r[2] for r in got), reverse=True)
    cols, got = rows(ml, THANOSQL_PREDICT.format(kind="predict_item", key="item_id", nrec=""))
    assert cols == ["userid", "score"] and len(got) == 10  # the model's n_recommendations
    raters = {r[0] for r in ml.execute("SELECT userId FROM ratings WHERE movieId = 1").fetchall()}
    assert not {r[0] for r in got} & raters
    cols, got = rows(ml, THANOSQL_PREDICT.format(kind="predict_simitem", key="item_id", nrec=", nrec=5"))
    assert cols == ["movieid", "title", "similarity"] and len(got) == 5 and 1 not in {r[0] for r in got}
    assert all(-1 <= r[2] <= 1 for r in got) and all(titles[r[0]] == r[1] for r in got)


def test_thanosql_predict_options_are_checked(trained):
    base = "PREDICT USING movie_rec OPTIONS ({}) AS SELECT * FROM ratings"
    with pytest.raises(OptionError, match="option predict_type is required"):
        trained.execute(base.format("user_id = 1"))
    with pytest.raises(OptionError, match="'predict_item' needs option item_id"):
        trained.execute(base.format("predict_type = 'predict_item', user_id = 1"))
    with pytest.raises(OptionError, match="unknown option 'top'"):
        trained.execute(base.format("predict_type = 'predict_user', user_id = 1, top = 3"))
    with pytest.raises(OptionError, match="AS query must be a SELECT, got a DESCRIBE"):
        trained.execute("PREDICT USING movie_rec OPTIONS (predict_type = 'predict_user', user_id = 1) "
                        "AS DESCRIBE ratings")
    assert trained.execute("SELECT count(*) FROM ratings").fetchone()[0] == 720


def test_thanosql_item_names_must_be_a_column(con):
    with pytest.raises(OptionError, match="option item_names: no column 'title'"):
        con.execute("BUILD MODEL b USING LightFM OPTIONS (user_col='userId', item_col='movieId', "
                    "item_names='title') AS SELECT * FROM ratings")
    assert con.execute("SHOW MODELS").fetchall() == []


def books(n_users: int = 120, n_books: int = 80, seed: int = 3) -> pd.DataFrame:
    """Goodbooks-like: ISBN strings, titles, ratings 1-10; two reader groups with their own books."""
    rng = np.random.default_rng(seed)
    out = []
    for u in range(n_users):
        own = np.arange(40) if u % 2 == 0 else np.arange(40, 80)
        for b in rng.choice(own, 12, replace=False):
            out.append((u + 1, f"978-{b:06d}", f"Book {b}", int(rng.integers(6, 11))))
        for b in rng.choice(np.setdiff1d(np.arange(n_books), own), 2, replace=False):
            out.append((u + 1, f"978-{b:06d}", f"Book {b}", int(rng.integers(1, 4))))
    return pd.DataFrame(out, columns=["user_id", "isbn", "book_title", "book_rating"])


def test_thanosql_goodbooks_tutorial_on_ratings_1_to_10():
    con = sqlrec.connect()
    con.register("books_df", books())
    con.execute("CREATE TABLE goodbooks_train AS SELECT * FROM books_df")
    cols, status = rows(con, "BUILD MODEL book_rec USING Light_FM OPTIONS (user_col='user_id', item_col='isbn', "
                             "rating_col='book_rating', item_names='book_title', epochs=10, random_state=1) "
                             "AS SELECT * FROM goodbooks_train")
    liked = con.execute("SELECT count(*) FROM goodbooks_train WHERE book_rating >= 5.5").fetchone()[0]
    assert status[0][cols.index("n_interactions")] == liked  # the middle of the 1-10 scale
    cols, got = rows(con, "PREDICT USING book_rec OPTIONS (predict_type='predict_user', user_id=2, nrec=5) "
                          "AS SELECT * FROM goodbooks_train")
    assert cols == ["isbn", "book_title", "score"] and len(got) == 5
    assert all(t == f"Book {int(i[4:])}" for i, t, _ in got)
    assert not {r[0] for r in got} & seen(con, 2, "goodbooks_train", "user_id", "isbn")
    cols, got = rows(con, "PREDICT USING book_rec OPTIONS (predict_type='predict_simitem', item_id='978-000003',"
                          " nrec=3) AS SELECT * FROM goodbooks_train")
    assert cols == ["isbn", "book_title", "similarity"] and len(got) == 3


@pytest.mark.slow
def test_bigquery_matrix_factorization_and_its_table_functions(ml):
    cols, status = rows(ml, BIGQUERY_IMPLICIT)
    assert status[0][:2] == ("bq_rec", "als")
    cols, got = rows(ml, "SELECT * FROM ML.RECOMMEND(MODEL `my-project.movies.bq_rec`, (SELECT 1 AS userId))")
    assert cols == ["userId", "movieId", "predicted_rating_confidence"]
    n_movies = ml.execute("SELECT count(DISTINCT movieId) FROM ratings").fetchone()[0]
    assert len(got) == n_movies - len(seen(ml, 1))  # every movie user 1 has not rated, best first
    assert not {r[1] for r in got} & seen(ml, 1)
    assert [r[2] for r in got] == sorted((r[2] for r in got), reverse=True)
    top = {r[1]: r[2] for r in got[:3]}
    pairs = ", ".join(f"(1, {m})" for m in top)
    _, predicted = rows(ml, f"SELECT * FROM ML.PREDICT(MODEL bq_rec, (SELECT * FROM (VALUES {pairs}, (1, -5)) "
                            "AS p(userId, movieId)))")
    assert [r[2] for r in predicted[:3]] == pytest.approx(list(top.values()), rel=1e-5)
    assert predicted[3] == (1, -5, None)  # an unknown movie has no score
    # composable: a CTE, a join with movies, WHERE and ORDER BY over the relation
    _, titled = rows(ml, "WITH r AS (SELECT * FROM ML.RECOMMEND(MODEL bq_rec, (SELECT 1 AS userId))) "
                         "SELECT m.title, r.predicted_rating_confidence FROM r JOIN movies m USING (movieId) "
                         "WHERE r.predicted_rating_confidence > 0 ORDER BY 2 DESC LIMIT 3")
    assert len(titled) == 3 and titled[0][1] == pytest.approx(got[0][2], rel=1e-5)
    cols, weights = rows(ml, "SELECT processed_input, count(*), min(len(factor_weights)) FROM "
                             "ML.WEIGHTS(MODEL bq_rec) GROUP BY 1 ORDER BY 1")
    assert weights == [("movieId", n_movies, 16), ("userId", 671, 16)]
    cols, info = rows(ml, "SELECT * FROM ML.TRAINING_INFO(MODEL bq_rec)")
    assert cols == ["training_run", "iteration", "duration_ms"] and info[0][:2] == (0, 9)
    ml.execute(BIGQUERY_IMPLICIT.replace("`my-project.movies.bq_rec`", "bq_split")
               + " WHERE (userId + movieId) % 5 <> 0")
    test = "(SELECT userId, movieId FROM ratings WHERE (userId + movieId) % 5 = 0)"
    cols, ev = rows(ml, f"SELECT * FROM ML.EVALUATE(MODEL bq_split, {test})")
    names, values = rows(ml, f"EVALUATE MODEL bq_split FROM {test}")
    ours = dict(zip(names, values[0]))
    assert 0 < ev[0][cols.index("mean_average_precision")] == pytest.approx(ours["map_at_k"])
    assert 0 < ev[0][cols.index("normalized_discounted_cumulative_gain")] == pytest.approx(ours["ndcg_at_k"])


@pytest.mark.slow
def test_bigquery_explicit_feedback_predicts_ratings(ml):
    ml.execute("CREATE TABLE bq_ratings AS SELECT userId AS user_id, movieId AS item_id, rating FROM ratings "
               "WHERE (userId + movieId) % 5 <> 0")
    cols, status = rows(ml, BIGQUERY_EXPLICIT.replace("CREATE MODEL m", "CREATE MODEL bq_stars"))  # verbatim
    assert status[0][:2] == ("bq_stars", "explicit")
    test = "SELECT userId AS user_id, movieId AS item_id, rating FROM ratings WHERE (userId + movieId) % 5 = 0"
    cols, got = rows(ml, f"SELECT * FROM ML.PREDICT(MODEL bq_stars, ({test}))")
    assert cols == ["user_id", "item_id", "rating", "predicted_rating"]
    known = [r for r in got if r[3] is not None]
    assert len(known) > 0.9 * len(got) and all(0.5 <= r[3] <= 5 for r in known)
    mean = ml.execute("SELECT avg(rating) FROM bq_ratings").fetchone()[0]
    rmse = float(np.sqrt(np.mean([(r[3] - r[2]) ** 2 for r in known])))
    baseline = float(np.sqrt(np.mean([(mean - r[2]) ** 2 for r in known])))
    # l2_reg 9.83 is strong on the count-scaled L2 (see README), but the biases still beat the mean
    assert rmse < baseline
    cols, recs = rows(ml, "SELECT * FROM ML.RECOMMEND(MODEL bq_stars, (SELECT 1 AS user_id)) LIMIT 5")
    assert cols == ["user_id", "item_id", "predicted_rating"] and len(recs) == 5
    cols, ev = rows(ml, f"SELECT * FROM ML.EVALUATE(MODEL bq_stars, ({test}))")
    got_ev = dict(zip(cols, ev[0]))
    assert got_ev["mean_squared_error"] == pytest.approx(got_ev["rmse"] ** 2)
    assert got_ev["rmse"] == pytest.approx(rmse, rel=0.02) and 0 < got_ev["mean_absolute_error"] < got_ev["rmse"]
    with pytest.raises(OptionError, match="wals_alpha applies to feedback_type = 'implicit' only"):
        ml.execute(BIGQUERY_EXPLICIT.replace("l2_reg=9.83", "wals_alpha=40"))


def test_bigquery_options_without_an_equivalent_are_named(con):
    base = ("CREATE MODEL m OPTIONS(model_type='matrix_factorization', feedback_type='implicit', user_col='userId', "
            "item_col='movieId'{}) AS SELECT * FROM ratings")
    with pytest.raises(OptionError, match="option 'early_stop' is not supported"):
        con.execute(base.format(", early_stop=true"))
    with pytest.raises(OptionError, match="option model_type must be 'matrix_factorization'"):
        con.execute(base.replace("matrix_factorization", "kmeans").format(""))
    with pytest.raises(OptionError, match="option data_split_method must be one of"):
        con.execute(base.format(", data_split_method='seq'"))
    with pytest.raises(OptionError, match=r"option num_factors \(no_components in sqlrec\) must be >= 1, got 0"):
        con.execute(base.format(", num_factors=0"))
    with pytest.raises(ColumnError, match=r"column 'stars' \(option rating_col \(weight in sqlrec\)\) is not in"):
        con.execute(base.format(", rating_col='stars'"))
    assert con.execute("SHOW MODELS").fetchall() == []
    con.execute(base.format(", max_iterations=3, data_split_method='random', data_split_eval_fraction=0.25"))
    cols, got = rows(con, "SELECT * FROM ML.EVALUATE(MODEL m)")
    assert got[0][cols.index("evaluated_on")] == "held-out random split"
    assert rows(con, "SELECT iteration FROM ML.TRAINING_INFO(MODEL m)")[1]


def test_ml_functions_name_what_is_wrong(trained):
    with pytest.raises(ModelNotFoundError, match="nope"):
        trained.execute("SELECT * FROM ML.RECOMMEND(MODEL nope)")
    with pytest.raises(QueryError, match="ML.PREDICT\\(MODEL movie_rec\\): give the pairs"):
        trained.execute("SELECT * FROM ML.PREDICT(MODEL movie_rec)")
    with pytest.raises(QueryError, match="the input has no column 'movieId'"):
        trained.execute("SELECT * FROM ML.PREDICT(MODEL movie_rec, (SELECT 1 AS userId))")


def test_an_ml_call_in_sql_sqlrec_cannot_read_is_named(trained):
    with pytest.raises(QueryError, match="ML.RECOMMEND: sqlrec could not read the statement"):
        trained.execute("SELECT * FROM ML.RECOMMEND(MODEL movie_rec) WHERE x = = 1")


def test_ml_predict_gives_the_score_the_model_ranks_by(trained):
    top = trained.execute("SELECT movieId, score FROM movie_rec WHERE userId = 1").fetchall()
    pairs = ", ".join(f"(1, {m}, 'x')" for m, _ in top)
    cols, got = rows(trained, f"SELECT * FROM ML.PREDICT(MODEL mindsdb.movie_rec, (SELECT * FROM (VALUES {pairs}) "
                              "AS p(userId, movieId, note)))")
    assert cols == ["userId", "movieId", "note", "predicted_rating_confidence"]
    assert [r[3] for r in got] == pytest.approx([s for _, s in top], rel=1e-5)
    # the relation joins and filters like a table
    _, best = rows(trained, f"SELECT p.movieId FROM ML.PREDICT(MODEL movie_rec, (SELECT * FROM (VALUES {pairs}) "
                            "AS p(userId, movieId, note))) AS p JOIN ratings r ON r.movieId = p.movieId "
                            "WHERE p.predicted_rating_confidence IS NOT NULL GROUP BY 1 "
                            "ORDER BY max(p.predicted_rating_confidence) DESC LIMIT 1")
    assert best == [(top[0][0],)]


def test_ml_function_inputs_take_parameters(trained):
    expected = trained.execute("SELECT movieId FROM movie_rec WHERE userId = 2 LIMIT 3").fetchall()
    got = trained.execute("SELECT movieId FROM ML.RECOMMEND(MODEL movie_rec, (SELECT ? AS userId)) "
                          "WHERE predicted_rating_confidence > ? LIMIT 3", [2, -100.0]).fetchall()
    assert got == expected


def test_ml_functions_in_other_statements(trained):
    trained.execute("CREATE TABLE recs AS SELECT * FROM ML.RECOMMEND(MODEL movie_rec, (SELECT 2 AS userId))")
    n_seen = len(seen(trained, 2))
    assert trained.execute("SELECT count(*) FROM recs").fetchone()[0] == 40 - n_seen
    plan = trained.execute("EXPLAIN SELECT * FROM ML.WEIGHTS(MODEL movie_rec)").fetchall()
    assert plan
    # a view keeps the call and computes it at every read
    trained.execute("CREATE VIEW v AS SELECT * FROM ML.RECOMMEND(MODEL mindsdb.movie_rec, (SELECT 2 AS userId))")
    assert trained.execute("SELECT * FROM v").fetchall() == trained.execute("SELECT * FROM recs").fetchall()


def test_ml_recommend_without_users_covers_every_unseen_pair(trained):
    n_pairs = trained.execute("SELECT count(DISTINCT (userId, movieId)) FROM ratings").fetchone()[0]
    got = trained.execute("SELECT count(*), count(DISTINCT userId) FROM ML.RECOMMEND(MODEL movie_rec)").fetchone()
    assert got == (60 * 40 - n_pairs, 60)
    overlap = trained.execute("SELECT count(*) FROM ML.RECOMMEND(MODEL movie_rec) AS r "
                              "JOIN ratings USING (userId, movieId)").fetchone()[0]
    assert overlap == 0
    trained.execute("CREATE TABLE some_users AS SELECT 3 AS userId UNION ALL SELECT 4")
    by_table = trained.execute("SELECT DISTINCT userId FROM ML.RECOMMEND(MODEL movie_rec, TABLE some_users) "
                               "ORDER BY 1").fetchall()
    assert by_table == [(3,), (4,)]


def test_an_ml_call_may_read_another(trained):
    got = trained.execute("SELECT count(DISTINCT userId) FROM ML.RECOMMEND(MODEL movie_rec, (SELECT DISTINCT userId "
                          "FROM ML.RECOMMEND(MODEL movie_rec, (SELECT 5 AS userId UNION ALL SELECT 6))))").fetchone()
    assert got == (2,)
