"""RETRAIN, versions, rollback and model statements inside a user's transaction: real DuckDB, real training."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import sqlrec
from sqlrec import errors
from conftest import FAST, file_database

CREATE = ("CREATE MODEL m FROM (SELECT * FROM ratings WHERE userId <= 40) PREDICT movieId "
          f"USING user_id = 'userId', rating = 'rating', threshold = 4, {FAST}")


@pytest.mark.slow
def test_retrain_reruns_the_stored_query_on_new_data_with_the_stored_options(tmp_path):
    con = file_database(tmp_path / "r.duckdb", CREATE)
    con.execute("DELETE FROM ratings WHERE userId > 30")  # the stored query now sees fewer users
    row = con.execute("RETRAIN m").fetchone()
    assert row[:4] == ("m", "lightfm", 2, "retrained") and row[4] == 30
    params = dict(con.execute("DESCRIBE m.model").fetchall())
    assert params["epochs"] == "5" and params["no_components"] == "8"  # the stored options, not the defaults
    info = dict(con.execute("DESCRIBE m.info").fetchall())
    assert info["rating"] == "rating" and info["threshold"] == "4"
    assert con.execute("SELECT count(*) FROM sqlrec.models WHERE key = 'm'").fetchone()[0] == 2
    assert len(con.execute("SELECT * FROM m WHERE userId = 1").fetchall()) == 10


@pytest.mark.slow
def test_retrain_from_a_new_source_with_new_options_and_evaluation(con):
    con.execute(CREATE)
    row = con.execute("RETRAIN m FROM ratings USING epochs = 7, evaluation = true").fetchone()
    assert row[2:5] == (2, "retrained", 60)
    params = dict(con.execute("DESCRIBE m.model").fetchall())
    assert params["epochs"] == "7" and params["no_components"] == "8"
    metrics = con.execute("SELECT version, precision_at_k FROM sqlrec.metrics ORDER BY version").fetchall()
    assert metrics[0] == (1, None) and metrics[1][1] is not None and metrics[1][1] > 0.1
    info = dict(con.execute("DESCRIBE m.info").fetchall())
    assert info["training_query"] == "SELECT * FROM ratings"
    # the next plain RETRAIN keeps the new source
    assert con.execute("RETRAIN m").fetchone()[4] == 60


def test_retrain_of_an_unknown_model_is_a_clear_error(con):
    with pytest.raises(errors.ModelNotFoundError, match="RETRAIN nope: model 'nope' does not exist"):
        con.execute("RETRAIN nope")


@pytest.mark.slow
def test_retrain_refuses_a_stored_query_that_is_not_one_select(tmp_path):
    con = file_database(tmp_path / "c.duckdb", CREATE)
    con.execute("UPDATE sqlrec.models SET info = json_merge_patch(info, "
                "'{\"source_sql\": \"SELECT 1; DROP TABLE ratings\"}')")
    con.close()
    con = sqlrec.connect(str(tmp_path / "c.duckdb"))
    with pytest.raises(errors.OptionError, match="stored training query must be exactly one SELECT"):
        con.execute("RETRAIN m")
    assert con.execute("SELECT count(*) FROM ratings").fetchone()[0] > 0
    assert con.execute("SELECT max(version) FROM sqlrec.models").fetchone()[0] == 1


@pytest.mark.slow
def test_retrain_with_a_bad_option_changes_nothing(con):
    con.execute(CREATE)
    with pytest.raises(errors.OptionError, match="epochs"):
        con.execute("RETRAIN m USING epochs = -1")
    assert con.execute("SELECT version FROM sqlrec.models").fetchall() == [(1,)]


SAVE_LOOP = """
import sqlrec, sys
con = sqlrec.connect(sys.argv[1])
print("ready", flush=True)
while True:
    con.execute(sys.argv[2])
"""


@pytest.mark.slow
@pytest.mark.parametrize("statement", [
    "RETRAIN m",
    "FINETUNE m FROM (SELECT * FROM ratings WHERE userId > 30) USING epochs = 3",
])
def test_kill_9_during_retrain_or_finetune_leaves_the_previous_active_version_answering(tmp_path, statement):
    path = tmp_path / "crash.duckdb"
    con = file_database(path, CREATE)
    query = "SELECT * FROM m WHERE userId IN (1, 2) ORDER BY userId, rank"
    answers = {1: con.execute(query).fetchall()}
    con.close()
    rng = np.random.default_rng(1)
    for delay in rng.uniform(0.3, 1.5, 4):
        proc = subprocess.Popen([sys.executable, "-c", SAVE_LOOP, str(path), statement], stdout=subprocess.PIPE,
                                text=True, env={**os.environ, "TQDM_DISABLE": "1"})
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        con = sqlrec.connect(str(path))
        active = con.execute("SELECT version FROM sqlrec.models WHERE active").fetchall()
        kept = con.execute("SELECT version FROM m.versions WHERE stored").fetchall()
        kinds = {r[0] for r in con.execute("SELECT kind FROM m.versions").fetchall()}
        rows = con.execute(query).fetchall()
        # every version that answered before still answers the same rows, if it is kept
        for version, before in answers.items():
            if (version,) in kept:
                assert con.execute(f"{query} USING version = {version}").fetchall() == before, (delay, version)
        con.close()
        assert len(active) == 1 and 1 <= len(kept) <= 3 and kinds <= {"create", "retrain", "finetune"}, delay
        assert len(rows) == 20, delay
        if statement.startswith("RETRAIN"):  # random_state: every RETRAIN of the same data ranks the same
            assert rows == answers[1], delay
        answers[active[0][0]] = rows


def _versions(con):
    return con.execute("SELECT version, kind, active, stored FROM m.versions ORDER BY version").fetchall()


@pytest.mark.slow
def test_versions_keep_their_arrays_up_to_keep_versions_and_answer_with_using_version(con):
    con.execute(CREATE)
    first = con.execute("SELECT * FROM m WHERE userId = 2 ORDER BY rank").fetchall()
    con.execute("RETRAIN m FROM ratings")
    con.execute("RETRAIN m USING no_components = 4")
    assert _versions(con) == [(1, "create", False, True), (2, "retrain", False, True), (3, "retrain", True, True)]
    assert con.execute("SELECT * FROM m WHERE userId = 2 ORDER BY rank USING version = 1").fetchall() == first
    assert con.execute("SELECT count(*) FROM m USING version = 1").fetchone()[0] == 40 * 10
    assert con.execute("SELECT count(*) FROM m").fetchone()[0] == 60 * 10
    row = dict(zip(*[[d[0] for d in con.execute("DESCRIBE m.versions").description],
                     con.execute("DESCRIBE m.versions").fetchall()[1]]))
    assert row["users"] == 60 and row["rows"] == 720 and row["source"] == "SELECT * FROM ratings"
    con.execute("RETRAIN m")  # the default keep_versions = 3: version 1 keeps its metadata only
    assert _versions(con)[0] == (1, "create", False, False)
    with pytest.raises(errors.ModelNotFoundError, match="keeps its metadata only"):
        con.execute("SELECT * FROM m USING version = 1")
    with pytest.raises(errors.ModelNotFoundError, match="has no version 9"):
        con.execute("SELECT * FROM m USING version = 9")
    assert con.execute("SELECT count(*) FROM sqlrec.metrics WHERE name = 'm'").fetchone()[0] == 4


@pytest.mark.slow
def test_rollback_makes_a_kept_version_active_and_the_next_save_keeps_it(con):
    con.execute(CREATE)
    v1 = con.execute("SELECT * FROM m WHERE userId = 3 ORDER BY rank").fetchall()
    con.execute("RETRAIN m FROM ratings USING keep_versions = 2")
    assert con.execute("ALTER MODEL m SET VERSION 1").fetchall() == [("m", 1, "active")]
    assert con.execute("SELECT version FROM sqlrec.models WHERE active").fetchall() == [(1,)]
    assert con.execute("SELECT * FROM m WHERE userId = 3 ORDER BY rank").fetchall() == v1
    assert con.execute("SHOW MODELS").fetchone()[2] == 1
    con.execute("RETRAIN m USING keep_versions = 2")  # v3; the rolled-back v1 keeps its arrays, v2 does not
    assert _versions(con) == [(1, "create", False, True), (2, "retrain", False, False), (3, "retrain", True, True)]
    with pytest.raises(errors.ModelNotFoundError, match="ALTER MODEL m SET VERSION 2: .*metadata only"):
        con.execute("ALTER MODEL m SET VERSION 2")
    with pytest.raises(errors.ModelNotFoundError, match="has no version 7"):
        con.execute("ALTER MODEL m SET VERSION 7")
    assert con.execute("SELECT version FROM sqlrec.models WHERE active").fetchall() == [(3,)]


@pytest.mark.slow
def test_drop_model_version_removes_one_version_but_never_the_active_one(tmp_path):
    con = file_database(tmp_path / "d.duckdb", CREATE)
    con.execute("RETRAIN m")
    with pytest.raises(errors.ModelNotFoundError, match="version 2 is the active version"):
        con.execute("DROP MODEL m VERSION 2")
    with pytest.raises(errors.ModelNotFoundError, match="has no version 5"):
        con.execute("DROP MODEL m VERSION 5")
    assert con.execute("DROP MODEL m VERSION 1").fetchall() == [("m", "version 1 dropped")]
    con.close()
    con = sqlrec.connect(str(tmp_path / "d.duckdb"))
    assert _versions(con) == [(2, "retrain", True, True)]
    assert con.execute("SELECT DISTINCT version FROM sqlrec.arrays").fetchall() == [(2,)]
    assert con.execute("SELECT version FROM sqlrec.metrics").fetchall() == [(2,)]
    assert len(con.execute("SELECT * FROM m WHERE userId = 1").fetchall()) == 10
    with pytest.raises(errors.ModelNotFoundError, match="does not exist"):
        con.execute("DROP MODEL nope VERSION 1")
    with pytest.raises(errors.ModelNotFoundError, match="has no version 1"):
        con.execute("ALTER MODEL m SET VERSION 1")  # a dropped version
    with pytest.raises(errors.ModelNotFoundError, match="has no version 1"):
        con.execute("SELECT * FROM m USING version = 1")


CREATE_ALL = f"CREATE OR REPLACE MODEL m FROM ratings PREDICT movieId USING user_id = 'userId', {FAST}"


@pytest.mark.slow
def test_create_model_inside_a_user_transaction_commits_with_it_and_keeps_the_insert(tmp_path):
    """BEGIN; INSERT; CREATE MODEL; COMMIT keeps the INSERT (a BEGIN probe used to abort it)."""
    con = file_database(tmp_path / "t.duckdb", CREATE)
    con.execute("BEGIN")
    con.execute("INSERT INTO ratings VALUES (999, 100, 5.0, 0)")
    assert con.execute(CREATE_ALL).fetchone()[2:5] == (2, "trained", 61)  # it trains on what the transaction sees
    con.execute("COMMIT")
    con.close()
    con = sqlrec.connect(str(tmp_path / "t.duckdb"))
    assert con.execute("SELECT count(*) FROM ratings WHERE userId = 999").fetchone()[0] == 1
    assert con.execute("SELECT version FROM sqlrec.models WHERE active").fetchall() == [(2,)]
    assert con.execute("SELECT count(*) FROM m WHERE userId = 999").fetchone()[0] == 10


@pytest.mark.slow
def test_model_statements_inside_a_user_transaction_roll_back_with_it(con):
    con.execute(CREATE)
    before = con.execute("SELECT * FROM m WHERE userId = 5 ORDER BY rank").fetchall()
    con.execute("BEGIN")
    con.execute("INSERT INTO ratings VALUES (999, 100, 5.0, 0)")
    con.execute(CREATE_ALL)
    con.execute("RETRAIN m")
    con.execute("ALTER MODEL m SET VERSION 2")
    con.execute("DROP MODEL m VERSION 1")
    assert con.execute("SELECT version FROM m.versions").fetchall() == [(2,), (3,)]
    con.execute("ROLLBACK")
    assert con.execute("SELECT count(*) FROM ratings WHERE userId = 999").fetchone()[0] == 0
    assert _versions(con) == [(1, "create", True, True)]
    assert con.execute("SELECT * FROM m WHERE userId = 5 ORDER BY rank").fetchall() == before
    # the rolled-back versions were never cached: the next save's version 2 is its own
    con.execute(CREATE_ALL)
    assert con.execute("SELECT count(*) FROM m WHERE userId = 60").fetchone()[0] == 10


@pytest.mark.slow
def test_first_model_of_a_database_inside_a_rolled_back_transaction_leaves_no_catalog(con):
    con.execute("BEGIN")
    con.execute(CREATE_ALL)
    con.execute("ROLLBACK")
    assert con.execute("SELECT count(*) FROM duckdb_schemas() WHERE schema_name = 'sqlrec'").fetchone()[0] == 0
    assert con.execute("SHOW MODELS").fetchall() == []


OLD = "SELECT * FROM ratings WHERE userId <= 50 AND movieId < 135"
NEW = "SELECT * FROM ratings WHERE userId > 50 OR movieId >= 135"
CREATE_OLD = (f"CREATE MODEL m FROM ({OLD}) PREDICT movieId "
              f"USING user_id = 'userId', rating = 'rating', threshold = 4, {FAST}")


def _own_group_share(con, users: str) -> float:
    """Share of top-10 items from the user's own taste group (conftest: even userId <-> items >= 120)."""
    return con.execute(f"SELECT avg(CASE WHEN (userId % 2 = 0) = (movieId >= 120) THEN 1 ELSE 0 END) "
                       f"FROM m WHERE {users}").fetchone()[0]


@pytest.mark.slow
def test_finetune_keeps_known_vectors_adds_new_users_and_items_and_personalises_them(con):
    con.execute(CREATE_OLD)
    before = con.execute("SELECT id, vector FROM m.user_embeddings ORDER BY id").fetchall()
    row = con.execute(f"FINETUNE m FROM ({NEW}) USING epochs = 5").fetchone()
    assert row[2:6] == (2, "finetuned", 60, 40)
    after = dict(con.execute("SELECT id, vector FROM m.user_embeddings").fetchall())
    # warm start: known users moved only by the new pairs they have (items >= 135), not re-initialised
    moved = [abs(sum(a - b for a, b in zip(v, after[u]))) for u, v in before]
    assert len(after) == 60 and min(moved) < 1e-6 < max(moved)
    assert _own_group_share(con, "userId > 50") > 0.8  # popularity would give about half
    assert _own_group_share(con, "userId <= 50") > 0.8  # old users are not forgotten
    assert con.execute("SELECT count(*) FROM m WHERE movieId = 137 USING recommender_type = 'item_user'"
                       ).fetchone()[0] == 10
    version = con.execute("SELECT kind, users, items, \"rows\", notes, source FROM m.versions WHERE active").fetchone()
    assert version[:4] == ("finetune", 60, 40, 720) and version[4].startswith("incremental: warm start from version 1")
    assert "UNION ALL" in version[5]
    seen = con.execute("SELECT count(*) FROM m WHERE userId = 55 AND movieId IN "
                       "(SELECT movieId FROM ratings WHERE userId = 55)").fetchone()[0]
    assert seen == 0  # the new pairs joined the seen set
    assert con.execute("RETRAIN m").fetchone()[4] == 60  # the stored query now holds old and new rows


@pytest.mark.slow
def test_finetune_with_replay_and_on_file_databases_survives_reopening(tmp_path):
    con = file_database(tmp_path / "f.duckdb", CREATE_OLD)
    con.execute(f"FINETUNE m FROM ({NEW}) USING epochs = 3, replay = 0.5")
    notes = con.execute("SELECT notes FROM m.versions WHERE active").fetchone()[0]
    assert "replayed" in notes
    rows = con.execute("SELECT * FROM m WHERE userId IN (1, 55) ORDER BY userId, rank").fetchall()
    con.close()
    con = sqlrec.connect(str(tmp_path / "f.duckdb"))
    assert con.execute("SELECT * FROM m WHERE userId IN (1, 55) ORDER BY userId, rank").fetchall() == rows
    assert con.execute("SELECT count(*) FROM m USING version = 1").fetchone()[0] == 50 * 10


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["popularity", "svd", "als"])
def test_finetune_of_engines_without_an_incremental_fit_refits_and_says_so(con, engine):
    con.execute(f"CREATE MODEL m FROM ({OLD}) PREDICT movieId USING engine = '{engine}', user_id = 'userId'")
    row = con.execute(f"FINETUNE m FROM ({NEW})").fetchone()
    assert row[2:6] == (2, "finetuned (refit)", 60, 40)
    kind, notes = con.execute("SELECT kind, notes FROM m.versions WHERE active").fetchone()
    assert kind == "finetune" and notes.startswith("refit on the stored training query plus the new rows")
    with pytest.raises(errors.OptionError, match="option 'epochs' does not apply"):
        con.execute(f"FINETUNE m FROM ({NEW}) USING epochs = 3")


@pytest.mark.slow
def test_finetune_bad_input_is_a_clear_error_and_changes_nothing(con):
    con.execute(CREATE_OLD)
    cases = [
        ("FINETUNE m FROM (SELECT * FROM ratings WHERE false)", errors.TrainingDataError, "returned no rows"),
        ("FINETUNE m FROM (SELECT userId, rating FROM ratings)", errors.ColumnError, "no column 'movieId'"),
        ("FINETUNE m FROM (SELECT userId::VARCHAR AS userId, movieId, rating FROM ratings)", errors.ColumnError,
         "is VARCHAR but the model's user ids are"),
        ("FINETUNE m FROM ratings USING epochs = 0", errors.OptionError, "epochs"),
        ("FINETUNE m FROM ratings USING replay = 2", errors.OptionError, "replay"),
        ("FINETUNE m FROM ratings USING loss = 'bpr'", errors.OptionError, "loss"),
        ("FINETUNE nope FROM ratings", errors.ModelNotFoundError, "does not exist"),
        ("FINETUNE m FROM ratings USING evaluation = true", errors.OptionError, "EVALUATE MODEL m FROM"),
    ]
    for sql, error, message in cases:
        with pytest.raises(error, match=message):
            con.execute(sql)
    assert con.execute("SELECT version FROM sqlrec.models").fetchall() == [(1,)]


@pytest.mark.slow
def test_demo_refuses_to_replace_the_users_own_tables_and_models(tmp_path):
    from click.testing import CliRunner

    from sqlrec.frontend import demo
    from sqlrec.frontend.cli import cli

    path = str(tmp_path / "mine.duckdb")
    con = file_database(path)  # the user's own `ratings`
    con.close()
    result = CliRunner().invoke(cli, ["demo", "--database", path])
    assert result.exit_code == 1 and "already holds table ratings, which the demo did not create" in result.output
    con = sqlrec.connect(path)
    assert con.execute("SELECT count(*) FROM ratings").fetchone()[0] == 720  # untouched
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'movies'").fetchone()[0] == 0
    con.execute("CREATE TABLE r2 AS SELECT * FROM ratings; DROP TABLE ratings")
    con.execute(f"CREATE MODEL movie_rec FROM r2 PREDICT movieId USING user_id = 'userId', {FAST}")
    assert demo.not_the_demos(con) == ["model movie_rec"]
    con.execute("DROP MODEL movie_rec")
    demo.load_movielens(con)  # what the demo made, a later demo may replace
    con.execute(f"CREATE MODEL movie_rec FROM ratings PREDICT movieId USING user_id = 'userId', {FAST}")
    assert demo.not_the_demos(con) == []
    con.close()


def test_finetune_after_reopening_matches_finetune_without(tmp_path):
    # A reopened model is read without its optimizer state (scoring does not need it); FINETUNE
    # reads it then, and must train from exactly the state it would have had in memory.
    query = "SELECT * FROM m WHERE userId IN (1, 55, 300) ORDER BY userId, rank"
    results = []
    for reopen in (False, True):
        path = tmp_path / f"reopen_{reopen}.duckdb"
        con = file_database(path, CREATE_OLD + ", num_threads = 1")
        if reopen:
            con.close()
            con = sqlrec.connect(str(path))
            before = con.execute(query).fetchall()  # scored without the optimizer state
        con.execute(f"FINETUNE m FROM ({NEW}) USING epochs = 3, num_threads = 1")
        results.append(con.execute(query).fetchall())
        con.close()
        con = sqlrec.connect(str(path))
        assert con.execute(query).fetchall() == results[-1]  # the new version's state was stored whole
        con.execute(f"FINETUNE m FROM ({NEW}) USING epochs = 1, num_threads = 1")  # and trains again
        con.close()
    assert before and results[0] == results[1]
