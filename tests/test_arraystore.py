"""A stored model's arrays are read with as few copies as possible (views of Arrow's buffer),
and reading them never changes a setting another cursor can see (memory_limit above all)."""

from __future__ import annotations

import threading

import duckdb
import numpy as np
import scipy.sparse as sp

import sqlrec
from sqlrec.store import arraystore
from sqlrec.store.session import Session
from conftest import FAST, file_database

QUERY = "SELECT * FROM movie_rec WHERE userId = 1"


def test_reopened_model_equals_the_trained_one(tmp_path):
    path = tmp_path / "fresh.duckdb"
    trained = file_database(path, f"CREATE MODEL movie_rec FROM ratings PREDICT movieId USING user_id = 'userId', {FAST}")
    want = trained.execute(QUERY).fetchall()  # the model as trained, never read back
    similar = trained.execute("SELECT * FROM movie_rec WHERE movieId = 3").fetchall()
    trained.close()
    for read_only in (True, False):
        con = sqlrec.connect(str(path), read_only=read_only)
        assert con.execute(QUERY).fetchall() == want
        assert con.execute("SELECT * FROM movie_rec WHERE movieId = 3").fetchall() == similar
        con.close()


def test_loaded_arrays_are_views_and_the_seen_matrix_is_exact(path):
    con = sqlrec.connect(str(path))
    rows = arraystore.read(con.session, "SELECT name, dtype, shape, data FROM sqlrec.arrays WHERE key = ?",
                           ["movie_rec"], where="test")
    arrays = sqlrec.models.stored.arrays(rows, "movie_rec")
    raw = dict(con.duckdb.execute("SELECT name, data FROM sqlrec.arrays WHERE key = 'movie_rec'").fetchall())
    assert set(arrays) == set(raw)
    for name, a in arrays.items():
        assert a.tobytes() == raw[name], name
        assert a.flags.aligned and not a.flags.owndata, name  # a view of Arrow's buffer, not a copy
    indptr, indices = arrays["seen_indptr"], arrays["seen_indices"]
    seen = sqlrec.models.stored._seen(arrays, len(indptr) - 1, int(indices.max()) + 1, "movie_rec")
    want = sp.csr_matrix((np.ones(len(indices)), indices, indptr), shape=seen.shape)
    assert (seen != want.astype(bool)).nnz == 0 and seen.sum() == len(indices)
    assert np.shares_memory(seen.indices, indices)  # int32 as stored: not copied
    con.close()


def test_a_misaligned_slice_is_copied_aligned():
    body = np.arange(33, dtype=np.uint8)
    got = arraystore.view(body[1:33], np.dtype("<f4"), [8])
    assert got.flags.aligned and got.tobytes() == body[1:33].tobytes()
    assert arraystore.view(b"\x00" * 8, np.dtype("<i8"), [1]).tolist() == [0]


def _blob_table(tmp_path, megabytes: int = 24):
    duck = duckdb.connect(str(tmp_path / "blobs.duckdb"))
    duck.execute("CREATE TABLE t (name VARCHAR, dtype VARCHAR, shape BIGINT[], data BLOB)")
    n = megabytes << 18
    duck.execute("INSERT INTO t VALUES ('a', '<f4', ?, ?)", [[n], np.random.default_rng(0).random(n, np.float32).tobytes()])
    duck.execute("CHECKPOINT")
    duck.close()
    return duckdb.connect(str(tmp_path / "blobs.duckdb"))


def _limit(duck) -> str:
    return duck.execute("SELECT current_setting('memory_limit')").fetchone()[0]


def _pool_bytes(duck) -> int:
    return duck.execute("SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory()").fetchall()[0][0]


def test_arrays_read_keep_the_limit_and_outlive_the_result(tmp_path):
    duck = _blob_table(tmp_path)
    limit = _limit(duck)
    rows = arraystore.read(Session(duck), "SELECT * FROM t", None, where="test")
    assert _limit(duck) == limit
    a = arraystore.view(rows[0][3], np.dtype("<f4"), rows[0][2])  # a view of the Arrow result's buffer
    assert a[:3].tolist() == np.random.default_rng(0).random(3, np.float32).tolist()
    duck.close()


BIG = ("CREATE MODEL big FROM (SELECT u AS userId, (u * 7 + j) % 4000 AS movieId FROM range(2000) t(u), "
       "range(3) s(j)) PREDICT movieId USING user_id = 'userId', epochs = 1, no_components = 512, random_state = 7")


def test_a_concurrent_cursor_never_sees_memory_limit_change_while_a_model_loads(tmp_path):
    path = str(tmp_path / "big.duckdb")
    sqlrec.connect(path).execute(BIG).connection.close()
    # Connections to one file in one process share DuckDB's instance, and with it memory_limit.
    watching = sqlrec.connect(path)
    watching.duckdb.execute("CALL enable_logging('QueryLog')")  # DuckDB's own record of every statement
    watcher = watching.cursor()
    limit = watcher.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    before = _pool_bytes(watching.duckdb)
    seen: set[str] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.add(watcher.execute("SELECT current_setting('memory_limit')").fetchone()[0])

    thread = threading.Thread(target=watch)
    thread.start()
    try:
        for _ in range(3):  # a new connection each time: the model is read from the file
            with sqlrec.connect(path) as con:
                assert len(con.execute("SELECT * FROM big WHERE userId = 1").fetchall()) == 10
    finally:
        stop.set()
        thread.join()
    assert seen == {limit}
    logged = [m for (m,) in watching.duckdb.execute("SELECT message FROM duckdb_logs() WHERE type = 'QueryLog'")
              .fetchall()]
    assert any("sqlrec.arrays" in m for m in logged)  # the log saw the loads
    assert not [m for m in logged if "memory_limit" in m.lower() and "current_setting" not in m]
    # the blocks the reads cached stay DuckDB's cache (enough that sqlrec once lowered the limit to evict them)
    assert _pool_bytes(watching.duckdb) - before >= 16 << 20
    watching.close()


def test_loading_a_model_leaves_memory_limit_as_it_was(path):
    con = sqlrec.connect(str(path), config={"memory_limit": "123456789B"})
    con.execute(QUERY).fetchall()
    assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == "117.7 MiB"
    con.close()


def test_few_rows_score_as_the_augmented_product_does():
    # A handful of query rows skips the augmented copy of every target (scoring.DIRECT_ROWS): the
    # same ranking and the same scores up to float32 rounding.
    from sqlrec.numeric.scoring import DIRECT_ROWS, prepare_targets, top_k
    rng = np.random.default_rng(1)
    q, qb, t, tb = rng.random((DIRECT_ROWS, 8), np.float32), rng.random(DIRECT_ROWS, np.float32), \
        rng.random((500, 8), np.float32), rng.random(500, np.float32)
    exclude = sp.random(DIRECT_ROWS, 500, density=0.05, random_state=2, format="csr")
    direct = top_k(q, qb, t, tb, 20, exclude=exclude)
    augmented = top_k(q, qb, t, tb, 20, exclude=exclude, prepared=prepare_targets(t, tb, True))
    assert (direct[0] == augmented[0]).all()
    np.testing.assert_allclose(direct[1], augmented[1], rtol=1e-6)


def test_few_keys_are_found_without_the_id_index(path):
    con = sqlrec.connect(str(path), read_only=True)
    one = con.execute("SELECT * FROM movie_rec WHERE userId IN (1, 2, 99999)").fetchall()
    many = con.execute(f"SELECT * FROM movie_rec WHERE userId IN ({', '.join(map(str, range(1, 40)))}, 99999)")
    assert [r for r in many.fetchall() if r[0] in (1, 2, 99999)] == one and {r[0] for r in one} >= {1, 2}
    con.close()
