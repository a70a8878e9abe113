"""RETRAIN, versions, rollback and model statements inside a user's transaction: real DuckDB, real training."""

from __future__ import annotations

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
