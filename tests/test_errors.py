"""Bad input: a sqlrec error naming the culprit, and the database and models left as they were."""

from __future__ import annotations

import pytest

import sqlrec
from sqlrec import errors
from conftest import FAST


def state(con):
    return (
        con.execute("SELECT name, version FROM sqlrec.models ORDER BY ALL").fetchall(),
        con.execute("SELECT count(*) FROM sqlrec.arrays").fetchall(),
        con.execute("SELECT count(*) FROM ratings").fetchall(),
        con.execute("SELECT * FROM movie_rec WHERE userId = 1").fetchall(),
    )


CASES = [
    ("SELECT * FROM movie_recs WHERE userId = 1", errors.ProgrammingError, "movie_recs"),
    ("DESCRIBE MODEL nope", errors.ModelNotFoundError, "model 'nope' does not exist"),
    ("DROP MODEL nope", errors.ModelNotFoundError, "'nope'"),
    (f"CREATE MODEL movie_rec FROM ratings PREDICT movieId USING user_id = 'userId', {FAST}",
     errors.ModelExistsError, "already exists"),
    ("CREATE MODEL m2 FROM ratings PREDICT movieId USING user_id = 'userId', epochz = 3",
     errors.OptionError, "unknown option 'epochz' (did you mean 'epochs'?)"),
    ("CREATE MODEL m2 FROM ratings PREDICT movieId USING user_id = 'userId', epochs = 'many'",
     errors.OptionError, "epochs must be an integer"),
    ("CREATE MODEL m2 FROM ratings PREDICT movieId USING user_id = 'userId', epochs = 0",
     errors.OptionError, "epochs must be >= 1"),
    ("CREATE MODEL m2 FROM ratings PREDICT movieId USING user_id = 'userId', loss = 'wrap'",
     errors.OptionError, "did you mean 'warp'"),
    ("CREATE MODEL m2 FROM ratings PREDICT movieId USING user_id = 'customer'",
     errors.ColumnError, "column 'customer' (option user_id) is not in the training query"),
    ("CREATE MODEL m2 FROM ratings PREDICT movieId USING user_id = 'userId', rating = 'stars'",
     errors.ColumnError, "'stars' (option rating)"),
    ("CREATE MODEL m2 FROM (SELECT * FROM ratings WHERE false) PREDICT movieId USING user_id = 'userId'",
     errors.TrainingDataError, "returned no rows"),
    ("CREATE MODEL m2 FROM ratings PREDICT movieId USING user_id = 'userId', rating = 'rating', threshold = 9",
     errors.TrainingDataError, "no rows left after threshold = 9"),
    ("CREATE MODEL m2 FROM (SELECT CASE WHEN userId < 3 THEN NULL ELSE userId END AS userId, movieId FROM ratings) "
     "PREDICT movieId USING user_id = 'userId'", errors.TrainingDataError, "'userId' is NULL in 24 of 720 rows"),
    ("CREATE MODEL m2 FROM (SELECT * FROM no_such_table) PREDICT movieId USING user_id = 'userId'",
     errors.ProgrammingError, "training query failed"),
    ("CREATE MODEL m2 FROM ratings PREDICT movieId USING user_id = 'userId', engine = 'lightgbm'",
     errors.OptionError, "unknown engine 'lightgbm'"),
    ("SELECT * FROM movie_rec WHERE userId = 1 USING recommender_type = 'user_items'",
     errors.OptionError, "recommender_type must be one of"),
    ("SELECT * FROM movie_rec WHERE userId = 1 USING top = 5", errors.OptionError, "unknown option 'top'"),
    ("CREATE MODEL FROM ratings", errors.ParseError, "CREATE MODEL"),
    ("CREATE MODEL m2 ratings PREDICT movieId", errors.ParseError, "FROM"),
    ("DESCRIBE movie_rec.metrix", errors.ProgrammingError, "did you mean 'metrics'"),
    ("SELECT * FROM movie_rc WHERE userId = 1 USING recommender_type = 'user_item'",
     errors.QueryError, "unknown model 'movie_rc' (did you mean 'movie_rec'?)"),
    ("SELECT * FROM ratings USING n_recommendations = 3", errors.QueryError, "the query reads no model (it reads ratings)"),
    # Values DuckDB cannot convert: a sqlrec error naming the column and option, not a raw ConversionException.
    ("CREATE MODEL m2 FROM (SELECT *, CASE WHEN userId = 3 THEN 1e300 ELSE 1 END AS plays FROM ratings) "
     "PREDICT movieId USING user_id = 'userId', weight = 'plays'",
     errors.TrainingDataError, "column 'plays' (option weight) has 12 values that are not a finite 32-bit float"),
    ("CREATE MODEL m2 FROM (SELECT userId, movieId, CASE WHEN userId = 3 THEN 'nan'::DOUBLE ELSE rating END AS rating "
     "FROM ratings) PREDICT movieId USING user_id = 'userId', rating = 'rating', threshold = 4",
     errors.TrainingDataError, "column 'rating' (option rating) has 12 values"),
    ("CREATE MODEL m2 FROM (SELECT *, CASE WHEN userId = 3 THEN 1e30 ELSE ts END AS t FROM ratings) "
     "PREDICT movieId USING user_id = 'userId', timestamp = 't'",
     errors.TrainingDataError, "column 't' (option timestamp) has 12 values that are not a finite time"),
    ("CREATE MODEL m2 FROM (SELECT {'a': userId} AS userId, movieId FROM ratings) PREDICT movieId "
     "USING user_id = 'userId'", errors.ColumnError, "column 'userId' (option user_id) has type STRUCT"),
    # A fit that diverges: the option at fault, and nothing saved.
    ("CREATE OR REPLACE MODEL movie_rec FROM ratings PREDICT movieId USING user_id = 'userId', "
     "learning_rate = 1e30, epochs = 20", errors.TrainingError, "training diverged"),
    ("CREATE OR REPLACE MODEL movie_rec FROM ratings PREDICT movieId USING user_id = 'userId', "
     "learning_rate = 1e30, epochs = 20, loss = 'bpr'", errors.TrainingError, "lower learning_rate (it is 1e+30)"),
]


@pytest.mark.parametrize("sql, cls, fragment", CASES, ids=[c[2][:30] for c in CASES])
def test_bad_input_is_named_and_changes_nothing(trained, sql, cls, fragment):
    before = state(trained)
    with pytest.raises(cls) as info:
        trained.execute(sql)
    assert fragment in str(info.value)
    assert isinstance(info.value, sqlrec.Error)
    assert state(trained) == before


def test_parse_error_has_line_and_column(con):
    with pytest.raises(errors.ParseError) as info:
        con.execute("SELECT 1;\nCREATE MODEL m FROM ratings USING user_id = ")
    assert info.value.line == 2


def test_unknown_user_with_cold_start_error(con):
    con.execute(f"CREATE MODEL strict FROM ratings PREDICT movieId USING user_id = 'userId', cold_start = 'error', {FAST}")
    with pytest.raises(errors.UnknownIdError, match="unknown userId 424242"):
        con.execute("SELECT * FROM strict WHERE userId IN (1, 424242)")


def test_interrupted_training_saves_nothing(trained):
    import threading

    before = state(trained)
    timer = threading.Timer(0.5, trained.interrupt)
    timer.start()
    with pytest.raises(errors.Cancelled):
        trained.execute("CREATE OR REPLACE MODEL movie_rec FROM ratings PREDICT movieId "
                        "USING user_id = 'userId', epochs = 100000, num_threads = 1")
    timer.cancel()
    assert state(trained) == before


@pytest.mark.parametrize("value", [object(), {1, 2}], ids=["object", "set"])
def test_unbindable_parameter_is_a_programming_error(trained, value):
    before = state(trained)
    with pytest.raises(errors.ProgrammingError, match=f"parameter 1: cannot bind a value of type {type(value).__name__}"):
        trained.execute("SELECT * FROM movie_rec WHERE userId = ?", [value])
    assert state(trained) == before


# --- statement labels from errors.context (code below the statements takes no `where`) ---------


def test_context_labels_an_unlabelled_error_once_however_deeply_nested():
    with pytest.raises(errors.OptionError) as got:
        with errors.context("SELECT FROM outer"):
            with errors.context("SELECT FROM m"):
                with errors.context("SELECT FROM m"):
                    raise errors.unlabelled(errors.OptionError("option nprobe: too large"))
    assert str(got.value) == "SELECT FROM m: option nprobe: too large"
    assert got.value.awaiting_label is None


def test_context_leaves_labelled_and_foreign_errors_as_they_are():
    with pytest.raises(errors.QueryError, match=r"^SELECT FROM m: bad filter$"):
        with errors.context("SELECT FROM other"):
            raise errors.QueryError("SELECT FROM m: bad filter")  # named its statement itself
    with pytest.raises(errors.Cancelled, match=r"^statement cancelled$"):
        with errors.context("SELECT FROM m"):
            raise errors.Cancelled("statement cancelled")
    with pytest.raises(ValueError, match=r"^plain$"):
        with errors.context("SELECT FROM m"):
            raise ValueError("plain")


def test_context_separator_continues_the_statement_part():
    with pytest.raises(errors.QueryError) as got:
        with errors.context("SELECT FROM m"):
            raise errors.unlabelled(errors.QueryError("USING: option nprobe: no index"), separator=" ")
    assert str(got.value) == "SELECT FROM m USING: option nprobe: no index"


def test_numeric_refusal_is_labelled_with_the_statement(trained):
    # sqlrec.numeric.approx raises without a label; the model's query labels it, exactly as before.
    with pytest.raises(errors.QueryError) as got:
        trained.execute("SELECT * FROM movie_rec WHERE userId = 1 USING nprobe = 4")
    assert str(got.value) == ("SELECT FROM movie_rec USING: option nprobe: the model has no approximate index for "
                              "user_item (CREATE OR REPLACE MODEL ... USING approximate = true builds one)")
