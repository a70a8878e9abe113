"""A database file may be crafted: what a stored model says is checked before it reaches SQL or
scoring, and a bad one is a clear CorruptModelError naming the model, never SQL run from the file."""

from __future__ import annotations

import json

import numpy as np
import pytest

import sqlrec
from sqlrec import errors
from conftest import FAST, file_database

QUERY = "SELECT * FROM movie_rec WHERE userId = 1"


def tamper(path, sql, params=None):
    """Change the file behind sqlrec's back, as a crafted file would be."""
    import duckdb

    duck = duckdb.connect(str(path))
    duck.execute(sql, params)
    duck.close()


def set_info(path, **changes):
    import duckdb

    duck = duckdb.connect(str(path))
    info = json.loads(duck.execute("SELECT info FROM sqlrec.models").fetchone()[0])
    info.update(changes)
    duck.execute("UPDATE sqlrec.models SET info = ?", [json.dumps(info)])
    duck.close()


def set_array(path, name, array):
    tamper(path, "UPDATE sqlrec.arrays SET dtype = ?, shape = ?, data = ? WHERE name = ?",
           [array.dtype.str, list(array.shape), array.tobytes(), name])


def corrupt(path, fragment, read_only=True):
    con = sqlrec.connect(str(path), read_only=read_only)
    with pytest.raises(errors.CorruptModelError) as info:
        con.execute(QUERY)
    assert "model 'movie_rec' is corrupt" in str(info.value) and fragment in str(info.value)
    assert str(info.value).startswith("SELECT: model 'movie_rec' is corrupt")  # labelled, once
    assert con.execute("SELECT count(*) FROM ratings").fetchone() == (720,)  # nothing ran, nothing lost
    con.close()


INJECTION = "INTEGER) AS id FROM sqlrec.ids; DROP TABLE ratings; SELECT CAST(1 AS INTEGER"


@pytest.mark.parametrize("read_only", [True, False])
def test_type_name_from_the_file_never_reaches_sql(path, read_only):
    set_info(path, user_type=INJECTION)
    corrupt(path, "user id type", read_only=read_only)


def test_model_answers_before_tampering(path):
    con = sqlrec.connect(str(path), read_only=True)
    assert len(con.execute(QUERY).fetchall()) == 10
    con.close()


@pytest.mark.parametrize("change, fragment", [
    (dict(engine_json=True), "unknown engine"),
    (dict(item_col=None), "item id column name missing"),
    (dict(n_users="many"), "n_users is not a count"),
])
def test_bad_metadata(path, change, fragment):
    if change.pop("engine_json", False):
        tamper(path, "UPDATE sqlrec.models SET engine = 'os.system'")
    set_info(path, **change)
    corrupt(path, fragment)


def test_absurd_n_recommendations(path):
    tamper(path, "UPDATE sqlrec.models SET options = json_merge_patch(options, '{\"n_recommendations\": 1000000000}')")
    corrupt(path, "n_recommendations 1000000000 out of range")


def test_nan_embeddings(path):
    import duckdb

    duck = duckdb.connect(str(path))
    dtype, shape, data = duck.execute(
        "SELECT dtype, shape, data FROM sqlrec.arrays WHERE name = 'h.user_embeddings'").fetchone()
    duck.close()
    emb = np.frombuffer(data, np.dtype(dtype)).reshape(shape).copy()
    emb[0, 0] = np.nan
    set_array(path, "h.user_embeddings", emb)
    corrupt(path, "user factors are not all finite")


def test_seen_indices_out_of_bounds(path):
    import duckdb

    duck = duckdb.connect(str(path))
    n = duck.execute("SELECT shape[1] FROM sqlrec.arrays WHERE name = 'seen_indices'").fetchone()[0]
    duck.close()
    set_array(path, "seen_indices", np.full(n, -5, np.int32))
    corrupt(path, "seen interactions name items the model does not have")


def test_wrong_dtype_and_truncated_data(path):
    tamper(path, "UPDATE sqlrec.arrays SET dtype = 'O' WHERE name = 'popularity'")
    corrupt(path, "array 'popularity' has dtype 'O'")


def test_truncated_array(path):
    tamper(path, "UPDATE sqlrec.arrays SET data = data[1:8] WHERE name = 'h.item_embeddings'")
    corrupt(path, "array 'h.item_embeddings' holds 8 bytes")


def test_missing_handler_array(path):
    tamper(path, "DELETE FROM sqlrec.arrays WHERE name = 'h.item_biases'")
    corrupt(path, "its lightfm state cannot be read")


# --- stored SQL runs only from a file this connection wrote, or when asked ---------------------


@pytest.fixture
def hybrid_path(tmp_path):
    path = tmp_path / "hybrid.duckdb"
    con = file_database(path)
    con.execute("CREATE TABLE movies AS SELECT i AS movieId, CASE WHEN i < 120 THEN 'A' ELSE 'B' END AS genre "
                "FROM range(100, 140) t(i)")
    con.execute(f"CREATE MODEL m FROM ratings PREDICT movieId USING user_id = 'userId', {FAST}, "
                "item_features = 'SELECT movieId, genre FROM movies'")
    con.execute("INSERT INTO movies VALUES (500, 'A')")  # a new item, known to the source only
    # The connection that trained the model runs its stored source for unknown ids.
    assert len(con.execute(SIMILAR).fetchall()) == 5
    con.close()
    return path


SIMILAR = "SELECT * FROM m WHERE movieId = 500 USING recommender_type = 'item_item', n_recommendations = 5"


def test_stored_feature_sql_does_not_run_from_a_file_unasked(hybrid_path):
    con = sqlrec.connect(str(hybrid_path), read_only=True)
    with pytest.raises(errors.QueryError, match="never runs SQL a file carries unless asked.*trust_stored_sql=True"):
        con.execute(SIMILAR)
    # The user's own SQL in the query is always used.
    got = con.execute("SELECT * FROM m WHERE movieId = 500 USING recommender_type = 'item_item', "
                      "n_recommendations = 5, item_features = 'SELECT 500 AS movieId, ''A'' AS genre'").fetchall()
    assert len(got) == 5
    con.close()
    trusted = sqlrec.connect(str(hybrid_path), read_only=True, trust_stored_sql=True)
    assert [r[1] for r in trusted.execute(SIMILAR).fetchall()] == [r[1] for r in got]
    trusted.close()


def test_what_would_run_is_what_the_file_says(hybrid_path):
    """A crafted source: refused unasked (never run); run only when trusted (here it fails, in DuckDB)."""
    import duckdb

    duck = duckdb.connect(str(hybrid_path))
    info = json.loads(duck.execute("SELECT info FROM sqlrec.models").fetchone()[0])
    info["features"]["item"]["source"] = "SELECT movieId, genre FROM planted_table"
    duck.execute("UPDATE sqlrec.models SET info = ?", [json.dumps(info)])
    duck.close()
    con = sqlrec.connect(str(hybrid_path))
    with pytest.raises(errors.QueryError, match="trust_stored_sql"):
        con.execute(SIMILAR)
    con.close()
    con = sqlrec.connect(str(hybrid_path), trust_stored_sql=True)
    with pytest.raises(sqlrec.ProgrammingError, match="planted_table"):
        con.execute(SIMILAR)
    con.close()


def test_optimizer_state_is_read_only_by_finetune(path):
    # Scoring never reads the adagrad accumulators: a file without them still answers, and
    # FINETUNE, which needs them, says so and leaves the model as it was.
    con = sqlrec.connect(str(path))
    want = con.execute(QUERY).fetchall()
    con.close()
    tamper(path, "DELETE FROM sqlrec.arrays WHERE name LIKE '%gradients' OR name LIKE '%momentum'")
    con = sqlrec.connect(str(path))
    assert con.execute(QUERY).fetchall() == want
    with pytest.raises(errors.CorruptModelError) as info:
        con.execute("FINETUNE movie_rec FROM (SELECT * FROM ratings WHERE userId < 5)")
    assert "model 'movie_rec' is corrupt" in str(info.value) and "user_embedding_gradients" in str(info.value)
    assert str(info.value).startswith("FINETUNE movie_rec: model 'movie_rec' is corrupt")  # read late, labelled too
    assert con.execute("SELECT max(version) FROM movie_rec.versions").fetchone() == (1,)
    assert con.execute(QUERY).fetchall() == want
    con.close()
