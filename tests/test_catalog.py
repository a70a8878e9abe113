"""Stored models: inside the DuckDB file, reopened in a new process, no pickle, atomic saves."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import sqlrec
from conftest import FAST, file_database

QUERY = "SELECT * FROM movie_rec WHERE userId IN (1, 2) ORDER BY userId, rank"


@pytest.mark.slow
def test_model_survives_reopen_in_new_process(tmp_path):
    path = tmp_path / "shop.duckdb"
    con = file_database(path, f"CREATE MODEL movie_rec FROM ratings PREDICT movieId USING user_id = 'userId', {FAST}")
    expected = con.execute(QUERY).fetchall()
    con.close()
    script = (
        "import sqlrec, json, sys\n"
        f"con = sqlrec.connect({str(path)!r}, read_only=True)\n"
        f"print(json.dumps(con.execute({QUERY!r}).fetchall()))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    got = [tuple(r) for r in json.loads(out)]
    assert [(r[0], r[1], r[3]) for r in got] == [(r[0], r[1], r[3]) for r in expected]
    assert [r[2] for r in got] == pytest.approx([r[2] for r in expected])


def test_storage_is_plain_tables_without_pickle(trained):
    tables = {r[0] for r in trained.execute(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'sqlrec'").fetchall()}
    assert tables == {"models", "arrays", "ids"}
    blobs = trained.execute("SELECT name, dtype, data FROM sqlrec.arrays").fetchall()
    assert all(not bytes(b[2]).startswith(b"\x80") for b in blobs)  # no pickle protocol header
    assert {b[0] for b in blobs} >= {"h.user_embeddings", "h.item_embeddings", "seen_indptr", "popularity"}
    assert all(b[1] in ("<f4", "<i4", "<i8") for b in blobs)


def test_failed_save_leaves_previous_version(trained):
    before = trained.execute(QUERY).fetchall()
    # Make the last step of the next save (writing ids) fail, after models and arrays were written.
    trained.execute("CREATE TABLE keep AS SELECT * FROM sqlrec.ids")
    trained.execute("DROP TABLE sqlrec.ids")
    trained.execute("CREATE TABLE sqlrec.ids (key VARCHAR, version INTEGER CHECK (version < 2), kind VARCHAR, "
                    "idx INTEGER, id VARCHAR)")
    trained.execute("INSERT INTO sqlrec.ids SELECT * FROM keep")
    arrays_before = trained.execute("SELECT count(*) FROM sqlrec.arrays").fetchone()
    with pytest.raises(sqlrec.Error, match="previous version is intact"):
        trained.execute(f"CREATE OR REPLACE MODEL movie_rec FROM ratings PREDICT movieId USING user_id = 'userId', {FAST}")
    assert trained.execute("SELECT value FROM movie_rec.info WHERE property = 'version'").fetchall() == [("1",)]
    assert trained.execute("SELECT count(*) FROM sqlrec.arrays").fetchone() == arrays_before
    assert trained.execute("SELECT count(*), max(version) FROM sqlrec.models").fetchone() == (1, 1)
    assert trained.execute(QUERY).fetchall() == before


def test_in_memory_models_live_in_memory(trained):
    assert trained.execute("SELECT count(*) FROM sqlrec.models").fetchone()[0] == 1
    other = sqlrec.connect()
    assert other.execute("SHOW MODELS").fetchall() == []
    other.close()


# --- which versions are active, cached between statements --------------------------------------


def catalog_queries(monkeypatch) -> list[str]:
    """Every query sqlrec's session sends about models, from now on."""
    from sqlrec.store.session import Session

    sent: list[str] = []
    for name in ("one", "rows", "arrow"):
        real = getattr(Session, name)

        def spy(self, sql, *args, _real=real, **kwargs):
            if "sqlrec.models" in sql or "duckdb_tables()" in sql or "duckdb_columns()" in sql:
                sent.append(sql)
            return _real(self, sql, *args, **kwargs)

        monkeypatch.setattr(Session, name, spy)
    return sent


def test_a_warm_model_query_asks_duckdb_nothing_about_models(trained, monkeypatch):
    trained.execute(QUERY).fetchall()
    sent = catalog_queries(monkeypatch)
    for _ in range(3):
        assert len(trained.execute(QUERY).fetchall()) == 20
    assert sent == []
    trained.execute("INSERT INTO ratings SELECT * FROM ratings LIMIT 1")  # a write: asked again once
    trained.execute(QUERY).fetchall()
    trained.execute(QUERY).fetchall()
    assert len(sent) == 2  # schema check + active versions


def test_another_connection_replacing_the_model_is_seen(tmp_path):
    path = tmp_path / "two.duckdb"
    a = file_database(path, f"CREATE MODEL movie_rec FROM ratings PREDICT movieId USING user_id = 'userId', {FAST}")
    b = sqlrec.connect(str(path))
    assert b.execute("SELECT max(version) FROM sqlrec.models").fetchone() == (1,)
    b.execute(QUERY).fetchall()
    a.execute("CREATE OR REPLACE MODEL movie_rec FROM ratings PREDICT movieId USING user_id = 'userId', "
              "engine = 'popularity'")
    assert b.execute("SELECT value FROM movie_rec.info WHERE property = 'engine'").fetchall() == [("popularity",)]
    a.close()
    b.close()


def test_other_cursors_never_see_a_version_an_open_transaction_wrote(trained):
    before = trained.execute(QUERY).fetchall()
    writer, reader = trained.cursor(), trained.cursor()
    writer.execute("BEGIN TRANSACTION")
    writer.execute("CREATE OR REPLACE MODEL movie_rec FROM ratings PREDICT movieId USING user_id = 'userId', "
                   "engine = 'popularity'")
    assert writer.execute("SELECT value FROM movie_rec.info WHERE property = 'engine'").fetchall() == [("popularity",)]
    assert reader.execute(QUERY).fetchall() == before  # its own snapshot: version 1
    writer.execute("ROLLBACK")
    assert writer.execute(QUERY).fetchall() == before
    assert trained.execute("SELECT count(*) FROM sqlrec.models").fetchone() == (1,)


def test_model_statements_take_part_in_the_users_transaction(trained):
    """Nothing sqlrec does inside BEGIN ... COMMIT aborts the user's transaction or loses their work."""
    trained.execute("BEGIN TRANSACTION")
    trained.execute("INSERT INTO ratings VALUES (9001, 100, 5.0, 0)")
    trained.router.forget_catalog()
    assert len(trained.execute(QUERY).fetchall()) == 20  # a cold model load inside the transaction
    trained.execute(f"CREATE OR REPLACE MODEL m2 FROM ratings PREDICT movieId USING user_id = 'userId', {FAST}")
    trained.execute("COMMIT")
    assert trained.execute("SELECT count(*) FROM ratings WHERE userId = 9001").fetchone() == (1,)
    assert trained.execute("SELECT value FROM m2.info WHERE property = 'n_users'").fetchone() == ("61",)

    trained.execute("BEGIN TRANSACTION")
    trained.execute("INSERT INTO ratings VALUES (9002, 100, 5.0, 0)")
    trained.execute(f"CREATE OR REPLACE MODEL m2 FROM ratings PREDICT movieId USING user_id = 'userId', {FAST}")
    trained.execute("ROLLBACK")  # the model goes with the user's rows
    assert trained.execute("SELECT count(*) FROM ratings WHERE userId = 9002").fetchone() == (0,)
    assert trained.execute("SELECT max(version) FROM sqlrec.models WHERE name = 'm2'").fetchone() == (1,)
    assert trained.execute("SELECT value FROM m2.info WHERE property = 'n_users'").fetchone() == ("61",)
