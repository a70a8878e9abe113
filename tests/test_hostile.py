"""Hostile input: options that try to run SQL, values that overflow, statements that would write
to a model. Each is a clear sqlrec error (or the answer a SQL user expects), never a raw
exception, and leaves the database, the models and the files on disk as they were."""

from __future__ import annotations

import pytest

import sqlrec
from sqlrec import errors
from conftest import FAST

CREATE = "CREATE OR REPLACE MODEL m2 FROM ratings PREDICT movieId USING user_id = 'userId', epochs = 2, "


def state(con):
    return (con.execute("SELECT name, version FROM sqlrec.models ORDER BY ALL").fetchall(),
            con.execute("SELECT count(*) FROM ratings").fetchall(),
            con.execute("SELECT * FROM movie_rec WHERE userId = 1").fetchall())


@pytest.fixture
def movies(trained):
    trained.execute("CREATE TABLE movies AS SELECT DISTINCT movieId, 'genre' || (movieId % 3) AS genre FROM ratings")
    trained.execute(f"CREATE MODEL hyb FROM ratings PREDICT movieId USING user_id = 'userId', {FAST}, "
                    "item_features = 'SELECT movieId, genre FROM movies'")
    return trained


def cli(*args: str):
    from click.testing import CliRunner

    from sqlrec.frontend.cli import cli as command

    return CliRunner().invoke(command, list(args), prog_name="sqlrec")


QUERIES = {"candidates": "SELECT * FROM movie_rec WHERE userId = 424242 USING candidates = ",
           "interactions": "SELECT * FROM movie_rec WHERE userId = 424242 USING interactions = ",
           "item_features": "SELECT * FROM hyb WHERE movieId = 424242 USING recommender_type = 'item_item', "
                            "item_features = "}


@pytest.mark.parametrize("option", sorted(QUERIES))
@pytest.mark.parametrize("text, fragment", [
    ("DROP TABLE movies", "must be a SELECT, got a DROP statement"),
    ("SELECT 1; DROP TABLE movies", "must be exactly one SELECT, got 2 statements"),
    ("DELETE FROM ratings", "must be a SELECT, got a DELETE statement"),
    ("COPY (SELECT 1) TO '{out}'", "must be a SELECT, got a COPY statement"),
    ("SELECT 1; COPY (SELECT 1) TO '{out}'", "exactly one SELECT"),
])
def test_query_options_run_exactly_one_select(movies, tmp_path, option, text, fragment):
    out = tmp_path / "leak.csv"
    before = state(movies) + (movies.execute("SELECT count(*) FROM movies").fetchall(),)
    # A feature source or interactions may also be a table name; text that is neither is refused too.
    with pytest.raises(errors.OptionError, match=f"{fragment}|is neither a table name nor a query") as info:
        movies.execute(QUERIES[option] + "'" + text.format(out=out).replace("'", "''") + "'")
    assert f"option {option}" in str(info.value)
    assert state(movies) + (movies.execute("SELECT count(*) FROM movies").fetchall(),) == before
    assert not out.exists()


def test_feature_source_at_create_runs_exactly_one_select(movies):
    before = state(movies)
    with pytest.raises(errors.OptionError, match="option item_features must be exactly one SELECT"):
        movies.execute(CREATE + "item_features = 'SELECT movieId, genre FROM movies; DROP TABLE movies'")
    assert state(movies) == before and movies.execute("SELECT count(*) FROM movies").fetchone()[0] == 40


def test_safe_mode_blocks_file_access(tmp_path):
    out = tmp_path / "out.csv"
    con = sqlrec.connect(str(tmp_path / "safe.duckdb"), safe=True)
    con.execute("CREATE TABLE t AS SELECT 1 AS x")  # the database file itself works
    for sql in ("SELECT * FROM read_text('/etc/passwd')", f"COPY t TO '{out}'",
                f"ATTACH '{tmp_path / 'other.duckdb'}'", "SET enable_external_access = true"):
        with pytest.raises(sqlrec.Error):
            con.execute(sql)
    assert not out.exists() and con.execute("SELECT x FROM t").fetchall() == [(1,)]
    con.close()
    plain = sqlrec.connect()
    assert plain.execute("SELECT count(*) > 0 FROM read_text('/etc/passwd')").fetchone() == (True,)


def test_safe_flag_on_the_command_line():
    result = cli("--safe", "-c", "SELECT * FROM read_text('/etc/passwd')")
    assert result.exit_code == 1 and "disabled by configuration" in result.stderr
    assert cli("-c", "SELECT count(*) > 0 AS ok FROM read_text('/etc/passwd')").exit_code == 0


@pytest.mark.parametrize("option", ["epochs", "loss", "split", "no_components", "learning_rate", "cold_start",
                                    "n_recommendations", "threshold", "num_threads", "learning_schedule"])
def test_null_option_means_the_default(con, option):
    extra = "evaluation = true, " if option == "split" else ""
    con.execute(f"CREATE MODEL m FROM ratings PREDICT movieId USING user_id = 'userId', {extra}{option} = NULL, "
                "random_state = 1")
    con.execute(f"CREATE MODEL d FROM ratings PREDICT movieId USING user_id = 'userId', {extra}random_state = 1")
    assert con.execute("SELECT * FROM m.model").fetchall() == con.execute("SELECT * FROM d.model").fetchall()


def test_null_query_option_means_the_default(trained):
    assert (trained.execute("SELECT * FROM movie_rec WHERE userId = 1 USING recommender_type = NULL").fetchall()
            == trained.execute("SELECT * FROM movie_rec WHERE userId = 1").fetchall())


@pytest.mark.parametrize("option, fragment", [
    ("no_components = 1e400", "option no_components must be an integer"),
    ("learning_rate = 1e400", "option learning_rate must be a finite number"),
    ("random_state = 4294967296", "option random_state must be <= 4294967295"),
    ("max_sampled = 1e12", "option max_sampled must be <= 2147483647"),
    ("n_recommendations = 1e12", "option n_recommendations must be <= 100000"),
])
def test_numbers_out_of_range_are_named(trained, option, fragment):
    before = state(trained)
    with pytest.raises(errors.OptionError, match=fragment):
        trained.execute(CREATE + option)
    assert state(trained) == before


@pytest.mark.parametrize("value", ["1180591620717411303424", "1.5", "-1e300"])
def test_keys_no_id_can_equal_give_no_rows(trained, value):
    assert trained.execute(f"SELECT * FROM movie_rec WHERE userId = {value}").fetchall() == []
    assert trained.execute(f"SELECT * FROM movie_rec WHERE userId IN (1, {value})").fetchall() == \
        trained.execute("SELECT * FROM movie_rec WHERE userId = 1").fetchall()


def test_more_recommendations_than_items_are_capped(trained):
    got = trained.execute("SELECT userId, count(*) FROM movie_rec USING n_recommendations = 100000, "
                          "exclude_seen = false GROUP BY 1").fetchall()
    assert len(got) == 60 and {n for _, n in got} == {40}


@pytest.mark.parametrize("sql, word", [
    ("DROP TABLE movie_rec", "DROP TABLE"), ("CREATE TABLE movie_rec AS SELECT 1", "CREATE TABLE"),
    ("INSERT INTO movie_rec VALUES (1, 2, 3, 4)", "INSERT INTO"), ("ALTER TABLE movie_rec RENAME TO x", "ALTER TABLE"),
    ("COMMENT ON TABLE movie_rec IS 'x'", "COMMENT ON"), ("CREATE INDEX i ON movie_rec (userId)", "CREATE INDEX"),
    ("DELETE FROM movie_rec", "DELETE FROM"), ("UPDATE movie_rec SET score = 0", "UPDATE movie_rec"),
])
def test_statements_that_would_write_a_model_are_refused(trained, sql, word):
    before = state(trained)
    with pytest.raises(errors.QueryError, match=f"{word.upper()}: 'movie_rec' is a model, not a table"):
        trained.execute(sql)
    assert state(trained) == before


def test_a_view_over_a_model_works_not_broken(trained):
    trained.execute("CREATE VIEW v AS SELECT * FROM movie_rec WHERE userId = 1")  # tests/test_semantics.py has more
    assert trained.execute("SELECT count(*) FROM v").fetchone() == (10,)
    trained.execute("CREATE TABLE t AS SELECT * FROM movie_rec WHERE userId = 1")  # a snapshot instead
    assert trained.execute("SELECT count(*) FROM t").fetchone() == (10,)


def test_explain_a_query_over_a_model(trained):
    plan = "\n".join(r[1] for r in trained.execute("EXPLAIN SELECT * FROM movie_rec WHERE userId = 1").fetchall())
    assert "ARROW_SCAN" in plan.upper()
    assert trained.execute("EXPLAIN SELECT * FROM ratings").fetchall()  # plain EXPLAIN is DuckDB's


@pytest.mark.parametrize("name, fragment", [
    ("sqlrec", "the name 'sqlrec' is reserved"), ("SQLREC", "reserved"), ('"__sqlrec_x"', "reserved"),
    ('""', "a model needs a name"),
])
def test_reserved_and_empty_model_names(trained, name, fragment):
    before = state(trained)
    with pytest.raises(errors.ParseError, match=fragment):
        trained.execute(f"CREATE MODEL {name} FROM ratings PREDICT movieId USING user_id = 'userId', {FAST}")
    assert state(trained) == before
    assert trained.execute("SELECT count(*) FROM sqlrec.metrics").fetchone() == (1,)


def test_bit_ids_are_refused_with_the_cast_to_use(con):
    con.execute("CREATE TABLE b AS SELECT (userId % 5)::BIT::VARCHAR::BIT AS u, movieId FROM ratings")
    with pytest.raises(errors.ColumnError, match=r"column 'u' \(option user_id\) has type BIT.*CAST\(u AS VARCHAR\)"):
        con.execute(f"CREATE MODEL m FROM b PREDICT movieId USING user_id = 'u', {FAST}")


def test_empty_script_fails_on_the_command_line_as_in_the_api(con):
    with pytest.raises(errors.ProgrammingError, match="empty statement"):
        con.execute(";;")
    result = cli("-c", ";;")
    assert result.exit_code == 1 and "empty statement" in result.stderr


@pytest.mark.parametrize("payload", ["1; DROP TABLE ratings", "1 OR 1 = 1", "' OR '1'='1", "1); DROP TABLE ratings; --"])
def test_bound_parameters_never_become_sql(trained, payload):
    before = state(trained)
    with pytest.raises(errors.QueryError, match="cannot be compared with column userId"):
        trained.execute("SELECT * FROM movie_rec WHERE userId = ?", [payload])  # text, never SQL
    for sql in ("SELECT count(*) FROM ratings WHERE CAST(userId AS VARCHAR) = ?",
                "SELECT count(*) FROM movie_rec WHERE CAST(userId AS VARCHAR) = $1"):
        assert trained.execute(sql, [payload]).fetchone() == (0,)
    assert state(trained) == before


def test_read_only_refuses_every_write(tmp_path):
    from conftest import file_database

    path = tmp_path / "ro.duckdb"
    file_database(path, f"CREATE MODEL movie_rec FROM ratings PREDICT movieId USING user_id = 'userId', {FAST}").close()
    con = sqlrec.connect(str(path), read_only=True)
    before = state(con)
    for sql in (f"CREATE MODEL m2 FROM ratings PREDICT movieId USING user_id = 'userId', {FAST}",
                "DROP MODEL movie_rec", "DROP TABLE ratings", "INSERT INTO ratings SELECT * FROM ratings",
                "CREATE TABLE t AS SELECT 1", "UPDATE ratings SET rating = 0", "DELETE FROM ratings"):
        with pytest.raises(sqlrec.Error):
            con.execute(sql)
    assert state(con) == before
    con.close()
