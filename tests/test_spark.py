"""Spark: engine = 'spark_als' and EXPORT RECOMMENDATIONS, on a real local[2] Spark (one session
for the whole run), real DuckDB files and real Parquet read back by DuckDB.

Without pyspark the Spark tests skip, and the tests that check what a user without it sees
still run: the statements say to install sqlrec[spark] and change nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import sqlrec
from sqlrec import errors
from conftest import file_database, group

MASTER = "local[2]"
SPARK = f"spark_master = '{MASTER}'"
# A few iterations: a Spark ALS job costs about 0.3 s an iteration even on tiny data.
SPARK_ALS = f"engine = 'spark_als', no_components = 8, epochs = 4, random_state = 3, {SPARK}"
ENGINES = {"als": "engine = 'als', no_components = 8", "lightfm": "epochs = 5, no_components = 8, random_state = 3",
           "popularity": "engine = 'popularity'", "svd": "engine = 'svd', no_components = 4",
           "explicit": "engine = 'explicit', no_components = 4", "spark_als": SPARK_ALS}
REPO = Path(__file__).resolve().parent.parent


def create(con, name: str = "m", using: str = SPARK_ALS, source: str = "ratings") -> None:
    con.execute(f"CREATE OR REPLACE MODEL {name} FROM {source} PREDICT movieId USING user_id = 'userId', "
                f"rating = 'rating', threshold = 4, {using}")


def needs_spark():
    pytest.importorskip("pyspark")
    from sqlrec.spark.runtime import java_command

    if java_command() is None:
        pytest.skip("no java: Spark cannot start")


def read_back(con, path) -> list[tuple]:
    return con.execute(f"SELECT * FROM read_parquet('{path}/*.parquet') ORDER BY 1, rank").fetchall()


def assert_same_rows(exported: list[tuple], selected: list[tuple]) -> None:
    """Same users, items and ranks; scores equal to float32 rounding."""
    assert [(r[0], r[1], r[3]) for r in exported] == [(r[0], r[1], r[3]) for r in selected]
    np.testing.assert_allclose([r[2] for r in exported], [r[2] for r in selected], rtol=1e-5, atol=1e-5)


# --- without Spark ----------------------------------------------------------------------------


@pytest.mark.slow  # a subprocess (1-2 s); it needs no pyspark, so it runs on every machine
def test_without_pyspark_the_spark_statements_say_install_sqlrec_spark(tmp_path):
    """pyspark made unimportable (sys.modules['pyspark'] = None, as Python does for a missing
    package's cached failure): the error names the extra, and nothing was created or written."""
    script = textwrap.dedent(f"""
        import sys
        sys.modules["pyspark"] = None
        import sqlrec
        con = sqlrec.connect({str(tmp_path / 'db.duckdb')!r})
        con.execute("CREATE TABLE ratings AS SELECT range % 7 AS u, range % 5 AS i FROM range(50)")
        con.execute("CREATE MODEL pop FROM ratings PREDICT i USING user_id = 'u', engine = 'popularity'")
        for sql in ("CREATE MODEL s FROM ratings PREDICT i USING user_id = 'u', engine = 'spark_als'",
                    "EXPORT RECOMMENDATIONS pop TO {str(tmp_path / 'out')!r}"):
            try:
                con.execute(sql)
            except sqlrec.errors.OptionError as exc:
                print(type(exc).__name__, exc)
        print([r[0] for r in con.execute("SHOW MODELS").fetchall()])
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == ("OptionError CREATE MODEL s: option engine = 'spark_als' needs pyspark, which is not "
                        "installed; install sqlrec[spark] (pip install 'sqlrec[spark]')")
    assert lines[1].startswith("OptionError EXPORT RECOMMENDATIONS pop: EXPORT RECOMMENDATIONS needs pyspark")
    assert "install sqlrec[spark]" in lines[1]
    assert lines[2] == "['pop']"
    assert not (tmp_path / "out").exists()


def test_export_is_refused_where_files_may_not_be_written(tmp_path):
    path = tmp_path / "db.duckdb"
    con = file_database(path, "CREATE MODEL pop FROM ratings PREDICT movieId USING user_id = 'userId', "
                              "engine = 'popularity'")
    con.close()
    safe = sqlrec.connect(str(path), safe=True)
    with pytest.raises(errors.QueryError, match="EXPORT RECOMMENDATIONS pop: this connection may not write "
                                                r"files \(enable_external_access = false"):
        safe.execute(f"EXPORT RECOMMENDATIONS pop TO '{tmp_path / 'out'}'")
    safe.close()
    read_only = sqlrec.connect(str(path), read_only=True)
    with pytest.raises(errors.ProgrammingError, match="EXPORT: the database is open read-only"):
        read_only.execute(f"EXPORT RECOMMENDATIONS pop TO '{tmp_path / 'out'}'")
    read_only.close()
    assert not (tmp_path / "out").exists()


# --- checks before Spark starts ---------------------------------------------------------------


def test_without_java_the_error_says_what_to_install(con, monkeypatch, tmp_path):
    pytest.importorskip("pyspark")
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))  # a JAVA_HOME without bin/java
    with pytest.raises(errors.OptionError, match=r"CREATE MODEL m: option engine = 'spark_als' runs Spark, which "
                                                 r"needs Java 17 or later \(JAVA_HOME=.* has no bin/java\)"):
        create(con)
    assert con.execute("SHOW MODELS").fetchall() == []


def test_export_replaces_only_what_spark_wrote(con, tmp_path):
    needs_spark()
    create(con, using="engine = 'popularity'")
    target = tmp_path / "recs"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    with pytest.raises(errors.OptionError, match="recs' exists; add OVERWRITE"):
        con.execute(f"EXPORT RECOMMENDATIONS m TO '{target}' (FORMAT parquet, {SPARK})")
    with pytest.raises(errors.OptionError, match=r"OVERWRITE would delete .*recs', which holds more than "
                                                 r"Parquet output \(notes.txt\)"):
        con.execute(f"EXPORT RECOMMENDATIONS m TO '{target}' (OVERWRITE, {SPARK})")
    (tmp_path / "file").write_text("x")
    with pytest.raises(errors.OptionError, match="is not a directory"):
        con.execute(f"EXPORT RECOMMENDATIONS m TO '{tmp_path / 'file'}' (OVERWRITE)")
    assert (target / "notes.txt").read_text() == "keep me" and (tmp_path / "file").read_text() == "x"


@pytest.mark.parametrize("option, message", [
    ("spark_master = 'sc://host:15002'", "is a Spark Connect address"),
    ("spark_master = ' '", "option spark_master is empty"),
    ("implicit_prefs = false", "engine 'spark_als' learns rating values and "
                                                                "needs option rating"),
    ("rank = 0", "option no_components must be >= 1"),
    ("regParam = -1", "option regularization must be >= 0"),
])
def test_bad_spark_options_are_refused_before_spark_runs(con, option, message):
    pytest.importorskip("pyspark")
    with pytest.raises(errors.OptionError, match=message):
        con.execute(f"CREATE MODEL m FROM ratings PREDICT movieId USING engine = 'spark_als', user_id = 'userId', "
                    f"{option}")
    assert con.execute("SHOW MODELS").fetchall() == []


def test_the_executor_code_needs_numpy_and_pyarrow_not_sqlrec(tmp_path):
    """What runs on the executors is pickled by value: a Python that cannot import sqlrec
    (sys.modules['sqlrec'] = None) unpickles and runs it."""
    pytest.importorskip("pyspark")
    from functools import partial
    from types import SimpleNamespace

    import pyarrow as pa
    from pyspark import cloudpickle

    from sqlrec.numeric import rowselect, scoring
    from sqlrec.spark import batch, topk

    for module in (topk, scoring, rowselect):
        cloudpickle.register_pickle_by_value(module)
    job = batch.Job(user_ids=pa.array([7, 8], pa.int32()), user_vecs=np.array([[1, 0], [0, 1]], np.float32),
                    user_bias=np.zeros(2, np.float32), seen=None, item_ids=pa.array([10, 11, 12], pa.int32()),
                    item_vecs=np.array([[1, 0], [0, 2], [3, 0]], np.float32), item_bias=np.zeros(3, np.float32),
                    k=2, columns=["u", "i", "score", "rank"])
    shared = SimpleNamespace(value=(scoring.augment_targets(job.item_vecs, job.item_bias, True), job.item_ids))
    blob = tmp_path / "scorer.pickle"
    blob.write_bytes(cloudpickle.dumps((partial(topk.score_batches, shared=shared, k=2, names=job.columns),
                                        list(batch.user_batches(job)))))
    script = ("import pickle, sys; sys.modules['sqlrec'] = None; fn, batches = pickle.load(open(sys.argv[1], 'rb')); "
              "print([b.to_pylist() for b in fn(batches)])")
    done = subprocess.run([sys.executable, "-I", "-c", script, str(blob)], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str([[{"u": 7, "i": 12, "score": 3.0, "rank": 1}, {"u": 7, "i": 10, "score": 1.0, "rank": 2},
                         {"u": 8, "i": 11, "score": 2.0, "rank": 1}, {"u": 8, "i": 10, "score": 0.0, "rank": 2}]])


# --- on Spark ---------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_export_writes_what_select_star_gives(con, tmp_path, engine):
    """Every factor model of the catalog, scored on Spark: the Parquet files read back by DuckDB
    hold SELECT * FROM m's rows (users x k of them), columns and types."""
    needs_spark()
    create(con, using=ENGINES[engine])
    out = tmp_path / "recs"
    got = con.execute(f"EXPORT RECOMMENDATIONS m TO '{out}' (FORMAT parquet, {SPARK})").fetchall()
    n_users = con.execute("SELECT count(DISTINCT userId) FROM ratings").fetchone()[0]
    assert got[0][:7] == ("m", 1, str(out), "parquet", 10, n_users, n_users * 10)
    exported = read_back(con, out)
    assert_same_rows(exported, con.execute("SELECT * FROM m ORDER BY userId, rank").fetchall())
    types = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{out}/*.parquet')").fetchall()
    assert [(t[0], t[1]) for t in types] == [(d[0], d[1]) for d in con.execute("DESCRIBE SELECT * FROM m").fetchall()]


@pytest.mark.slow
def test_export_options_match_the_same_query_options(con, tmp_path):
    needs_spark()
    con.execute("CREATE TABLE named AS SELECT 'user ' || userId AS userId, 'item-' || movieId AS movieId, rating "
                "FROM ratings")
    create(con, using="engine = 'als', no_components = 8", source="named")
    candidates = "SELECT movieId FROM named WHERE movieId < ''item-120'' OR movieId = ''item-133''"
    cases = [("k 3", "n_recommendations = 3"),
             ("n_recommendations = 4, exclude_seen false", "n_recommendations = 4, exclude_seen = false"),
             (f"candidates '{candidates}', k = 5", f"candidates = '{candidates}', n_recommendations = 5")]
    for i, (export_options, query_options) in enumerate(cases):
        out = tmp_path / f"recs{i}"
        con.execute(f"EXPORT RECOMMENDATIONS m TO '{out}' ({export_options}, partitions 3, {SPARK})")
        assert len(list(out.glob("part-*.parquet"))) == 3
        assert_same_rows(read_back(con, out),
                         con.execute(f"SELECT * FROM m ORDER BY userId, rank USING {query_options}").fetchall())
    again = con.execute(f"EXPORT RECOMMENDATIONS m TO '{tmp_path / 'recs0'}' (OVERWRITE, k 1, {SPARK})").fetchall()
    assert again[0][6] == len(read_back(con, tmp_path / "recs0")) == 60


@pytest.mark.slow
def test_spark_als_maps_text_ids_back_and_every_model_surface_works(con, tmp_path):
    """Spark sees sqlrec's integer indices only; the factors come back in index order, so the taste
    groups of the fixture survive text ids, and DESCRIBE, EVALUATE and embeddings read them."""
    needs_spark()
    con.execute("CREATE TABLE named AS SELECT 'u' || lpad(userId::VARCHAR, 3, '0') AS userId, movieId, rating "
                "FROM ratings")
    create(con, using=SPARK_ALS + ", evaluation = true", source="named")
    got = con.execute("SELECT userId, movieId FROM m WHERE userId IN ('u001', 'u002', 'u003', 'u004')").fetchall()
    assert sum(group(item) == (int(user[1:]) - 1) % 2 for user, item in got) >= 0.8 * len(got)
    model = dict(con.execute("DESCRIBE m.model").fetchall())
    assert (model["feedback"], model["factors"], model["epochs_trained"]) == ("implicit", "8", "4")
    create(con, "pop", "engine = 'popularity', evaluation = true", source="named")
    precision = [con.execute(f"EVALUATE MODEL {m}").df()["precision_at_k"][0] for m in ("m", "pop")]
    assert precision[0] > precision[1] + 0.03  # at most 0.2: 2 of a user's 10 liked items are held out
    stored = con.router.model("m").handler.user_vecs
    vectors = con.execute("SELECT vector FROM m.user_embeddings ORDER BY id").fetchall()
    np.testing.assert_array_equal(np.array([v[0] for v in vectors], np.float32), stored)
    got = con.execute("FINETUNE m FROM (SELECT 'u999' AS userId, movieId, rating FROM named WHERE userId = 'u002')"
                      ).fetchall()
    assert (got[0][1], got[0][2], got[0][4]) == ("spark_als", 2, 61)  # refit: one more user
    twin = con.execute("SELECT movieId FROM m WHERE userId = 'u999' USING exclude_seen = false").fetchall()
    assert sum(group(r[0]) == 1 for r in twin) >= 8  # u002's taste, learnt from u002's rows


@pytest.mark.slow
def test_fold_in_is_the_half_step_spark_takes(con):
    """Each Spark iteration solves items, then users, so each stored user vector is exactly
    Spark's solve against the stored item vectors: folding that user in must give it back."""
    needs_spark()
    create(con, using=SPARK_ALS + ", alpha = 3, regularization = 0.05")
    model = con.router.model("m")
    liked = con.execute("SELECT userId, list(movieId) FROM ratings WHERE rating >= 4 GROUP BY userId").fetchall()
    user, item = model.side("user").index, model.side("item").index
    for u, items in liked[:5]:
        positives = item.get_indexer(items)
        np.testing.assert_allclose(model.handler.fold_in("user", model.handler.item_vecs, positives),
                                   model.handler.user_vecs[user.get_loc(u)], rtol=1e-3, atol=1e-4)


@pytest.mark.slow
def test_explicit_spark_als_predicts_ratings(con):
    needs_spark()
    create(con, using=SPARK_ALS.replace("epochs = 4", "epochs = 8") + ", implicit_prefs = false, evaluation = true")
    assert dict(con.execute("DESCRIBE m.model").fetchall())["feedback"] == "explicit"
    metrics = dict(con.execute("SELECT metric, value FROM m.metrics").fetchall())
    spread = con.execute("SELECT stddev_pop(rating) FROM ratings").fetchone()[0]
    assert 0 < metrics["rmse"] < 0.7 * spread, (metrics["rmse"], spread)  # better than the mean rating
    rated = con.execute("SELECT rating FROM m WHERE userId = 2 AND movieId IN (120, 121, 100) "
                        "USING recommender_type = 'rating'").fetchall()
    assert len(rated) == 3 and all(1 <= r[0] <= 5 for r in rated)


@pytest.mark.slow
def test_one_spark_session_serves_the_process_and_the_master_comes_from_the_environment(con, monkeypatch):
    needs_spark()
    from sqlrec.spark import runtime as session

    create(con)
    first = session.get_session(MASTER, "test")
    monkeypatch.setenv(session.MASTER_ENV, MASTER)
    create(con, using=SPARK_ALS.replace(f", {SPARK}", ""))
    assert session.get_session(MASTER, "test") is first
    assert first.sparkContext.master == MASTER and first.sparkContext._jsc is not None


@pytest.mark.slow
def test_a_failing_spark_job_is_a_sqlrec_error_and_changes_nothing(con, tmp_path):
    needs_spark()
    create(con, using="engine = 'popularity'")
    (tmp_path / "file").write_text("x")
    with pytest.raises(errors.SparkError) as info:
        con.execute(f"EXPORT RECOMMENDATIONS m TO '{tmp_path / 'file' / 'recs'}' ({SPARK})")
    message = str(info.value)
    assert message.startswith(f"EXPORT RECOMMENDATIONS m on '{MASTER}': ")
    assert "\tat " not in message and "Traceback" not in message and len(message) < 600
    assert (tmp_path / "file").read_text() == "x"
    assert len(con.execute("SELECT * FROM m WHERE userId = 1").fetchall()) == 10
