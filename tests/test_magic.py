"""The notebook magics, in a real IPython InteractiveShell: `%load_ext sqlrec`, `%sqlrec`, `%%sqlrec`."""

from __future__ import annotations

import os
import re
import signal
import threading
import time

import pandas as pd
import pytest

from IPython.core.interactiveshell import InteractiveShell

import sqlrec
from sqlrec.frontend.magic import SqlrecMagicError, SqlrecMagics, bind_parameters

from conftest import FAST, make_ratings


@pytest.fixture
def ip():
    shell = InteractiveShell.instance()
    run(shell, "%load_ext sqlrec")
    magics = shell.magics_manager.registry["SqlrecMagics"]
    magics.raise_errors = True
    run(shell, "%sqlrec --connect :memory:")  # a fresh database for every test
    names = set(shell.user_ns)
    yield shell
    magics.close()
    for name in set(shell.user_ns) - names:
        del shell.user_ns[name]


def run(shell: InteractiveShell, cell: str):
    """Run a cell; return what it evaluated to (its Out), raising if the cell failed unexpectedly."""
    result = shell.run_cell(cell, store_history=False)
    if result.error_before_exec is not None:
        raise result.error_before_exec
    if result.error_in_exec is not None and not isinstance(result.error_in_exec, SqlrecMagicError):
        raise result.error_in_exec
    return result


def test_load_ext_registers_line_and_cell_magic(ip):
    assert "sqlrec" in ip.magics_manager.magics["line"]
    assert "sqlrec" in ip.magics_manager.magics["cell"]


def test_line_magic_returns_a_dataframe(ip):
    frame = run(ip, "%sqlrec SELECT 41 + 1 AS answer, 'x' AS letter").result
    assert isinstance(frame, pd.DataFrame)
    assert frame.to_dict("records") == [{"answer": 42, "letter": "x"}]
    # also on the right of an assignment
    run(ip, "seven = %sqlrec SELECT * FROM range(7)")
    assert len(ip.user_ns["seven"]) == 7


def test_cell_magic_runs_every_statement_and_returns_the_last(ip):
    frame = run(ip, "%%sqlrec\nCREATE TABLE t (x INTEGER);\nINSERT INTO t VALUES (1), (2);\n"
                    "-- a ; inside a comment\nSELECT sum(x) AS total FROM t;\n").result
    assert frame.to_dict("records") == [{"total": 3}]


def test_assignment_stores_the_result(ip):
    result = run(ip, "%sqlrec evens << SELECT range AS i FROM range(6) WHERE range % 2 = 0")
    assert result.result is None
    assert ip.user_ns["evens"]["i"].tolist() == [0, 2, 4]
    result = run(ip, "%%sqlrec odds <<\nSELECT 'ignored' AS s;\nSELECT range AS i FROM range(6) WHERE range % 2 = 1;")
    assert result.result is None
    assert ip.user_ns["odds"]["i"].tolist() == [1, 3, 5]


def test_connect_to_a_file_and_to_a_connection_object(ip, tmp_path):
    path = tmp_path / "shop.duckdb"
    run(ip, f"%sqlrec --connect {path}")
    run(ip, "%sqlrec CREATE TABLE kept AS SELECT 5 AS x")
    run(ip, "%sqlrec --close")
    con = sqlrec.connect(str(path))
    assert con.execute("SELECT x FROM kept").fetchall() == [(5,)]
    con.execute("CREATE TABLE only_here AS SELECT 'mine' AS owner")
    ip.user_ns["con"] = con
    assert run(ip, "%sqlrec --connect con SELECT owner FROM only_here").result["owner"].tolist() == ["mine"]
    # a connection the notebook passed in is the notebook's to close
    run(ip, "%sqlrec --connect :memory:")
    assert con.execute("SELECT count(*) FROM kept").fetchone() == (1,)
    con.close()


def test_default_connection_is_in_memory(ip):
    magics = ip.magics_manager.registry["SqlrecMagics"]
    magics.close()
    run(ip, "%sqlrec CREATE TABLE scratch AS SELECT 1 AS x")
    assert magics.connection.database == ":memory:"


def test_name_binding_sends_values_as_parameters(ip):
    run(ip, "%sqlrec CREATE TABLE people AS SELECT * FROM (VALUES ('ann'), ('O''Brien'), ('x'' OR ''1''=''1')) v(name)")
    ip.user_ns["name"] = "O'Brien"
    frame = run(ip, "%sqlrec SELECT name FROM people WHERE name = :name").result
    assert frame["name"].tolist() == ["O'Brien"]
    # a value that would rewrite the query if it were pasted into the text
    ip.user_ns["name"] = "nobody' OR '1'='1"
    assert run(ip, "%sqlrec SELECT count(*) AS n FROM people WHERE name = :name").result["n"].tolist() == [0]
    ip.user_ns["evil"] = "'); DROP TABLE people; --"
    frame = run(ip, "%sqlrec SELECT :evil AS v, length(:evil) AS n").result
    assert frame.to_dict("records") == [{"v": "'); DROP TABLE people; --", "n": 25}]
    assert run(ip, "%sqlrec SELECT count(*) AS n FROM people").result["n"].tolist() == [3]


def test_name_binding_leaves_strings_casts_and_slices_alone(ip):
    ip.user_ns["k"] = 2
    # in a slice, k is the column k (1), not the variable k (2)
    frame = run(ip, "%sqlrec SELECT ':k' AS text, '7'::INTEGER + :k AS sum, [10, 20, 30][:k] AS head, "
                    "{'a': 1}['a'] AS field FROM (SELECT 1 AS k)").result
    assert frame.loc[0, "text"] == ":k" and frame.loc[0, "sum"] == 9
    assert list(frame.loc[0, "head"]) == [10] and frame.loc[0, "field"] == 1
    assert bind_parameters("SELECT :a, ':b', x::INT, y[1:c] -- :d\n, :e") == \
        ("SELECT ?, ':b', x::INT, y[1:c] -- :d\n, ?", ["a", "e"], {8, 41})


def test_name_binding_in_a_model_query(ip):
    ip.user_ns["ratings_df"] = make_ratings()
    run(ip, f"%sqlrec CREATE MODEL rec FROM ratings_df PREDICT movieId USING user_id = 'userId', {FAST}")
    ip.user_ns["user"] = 3
    frame = run(ip, "%sqlrec SELECT * FROM rec WHERE userId = :user").result
    assert list(frame.columns) == ["userId", "movieId", "score", "rank"]
    assert frame["userId"].tolist() == [3] * 10 and frame["rank"].tolist() == list(range(1, 11))


def test_dataframes_inside_quoted_options(ip):
    ip.user_ns["ratings_df"] = make_ratings()
    run(ip, f"%sqlrec CREATE MODEL rec FROM ratings_df PREDICT movieId USING user_id = 'userId', {FAST}")
    ip.user_ns["picks"] = pd.DataFrame({"movieId": [101, 125, 133]})
    frame = run(ip, "%sqlrec SELECT movieId FROM rec WHERE userId = 2 "
                    "USING candidates = 'SELECT movieId FROM picks', n_recommendations = 10").result
    assert sorted(frame["movieId"]) == [101, 125, 133]
    # a DataFrame named as the item features of a new model
    ip.user_ns["genres"] = pd.DataFrame({"movieId": range(100, 140), "genre": ["a"] * 20 + ["b"] * 20})
    run(ip, f"%sqlrec CREATE MODEL with_genres FROM ratings_df PREDICT movieId "
            f"USING user_id = 'userId', item_features = 'genres', {FAST}")
    features = run(ip, "%sqlrec SELECT feature, n_entities FROM with_genres.features WHERE side = 'item'").result
    assert dict(features.values.tolist()) == {"identity": 40, "genre=a": 20, "genre=b": 20}


def test_dataframes_are_tables(ip):
    ip.user_ns["ratings_df"] = make_ratings()
    frame = run(ip, "%sqlrec SELECT count(*) AS n, count(DISTINCT userId) AS users FROM ratings_df").result
    assert frame.to_dict("records") == [{"n": 720, "users": 60}]
    # and training data: the model learns the two taste groups from the DataFrame
    run(ip, "%%sqlrec\nCREATE MODEL from_frame FROM (SELECT * FROM ratings_df WHERE rating >= 4) PREDICT movieId\n"
            f"USING user_id = 'userId', epochs = 20, no_components = 8, random_state = 7;")
    recs = run(ip, "%sqlrec SELECT movieId FROM from_frame WHERE userId = 2 USING n_recommendations = 5").result
    assert len(recs) == 5 and (recs["movieId"] >= 120).mean() >= 0.8  # user 2 likes items 120-139
    # the view lived for that statement only, and a real table of the same name wins
    views = run(ip, "%sqlrec SELECT count(*) AS n FROM duckdb_views() WHERE view_name = 'ratings_df'").result
    assert views["n"].tolist() == [0]
    run(ip, "%sqlrec CREATE TABLE ratings_df AS SELECT 1 AS only_column")
    assert run(ip, "%sqlrec SELECT * FROM ratings_df").result.columns.tolist() == ["only_column"]


def test_error_is_one_line_and_fails_the_cell(ip, capsys):
    result = ip.run_cell("%sqlrec SELECT * FROM no_such_table", store_history=False)
    assert isinstance(result.error_in_exec, SqlrecMagicError)
    printed = capsys.readouterr()
    text = (printed.out + printed.err).strip()
    assert text.startswith("Error: Catalog Error: Table with name no_such_table does not exist")
    assert "\n" not in text and "Traceback" not in text
    # sqlrec's own errors name the statement part at fault
    result = ip.run_cell("%%sqlrec\nSELECT 1;\nSELECT 2;\nCREATE MODEL m FROM (SELECT 1 AS u, 2 AS i) PREDICT i "
                         "USING user_id = 'u', loss = 'hinge';", store_history=False)
    text = (lambda p: (p.out + p.err).strip())(capsys.readouterr())
    assert text.startswith("Error: line 3: CREATE MODEL m: option loss must be one of ")
    assert "\n" not in text
    # the full traceback on request
    run(ip, "%sqlrec --traceback")
    assert "Traceback (most recent call last)" in capsys.readouterr().out


def test_errors_can_print_instead_of_raising(ip, capsys):
    ip.magics_manager.registry["SqlrecMagics"].raise_errors = False
    result = run(ip, "%sqlrec SELECT :missing_variable")
    assert result.error_in_exec is None and result.result is None
    printed = capsys.readouterr()
    assert printed.err == "Error: :missing_variable: no variable 'missing_variable' in the notebook\n"


def test_unload_closes_the_connection(ip, tmp_path):
    path = tmp_path / "x.duckdb"
    run(ip, f"%sqlrec --connect {path}")
    magics: SqlrecMagics = ip.magics_manager.registry["SqlrecMagics"]
    con = magics.connection
    run(ip, "%unload_ext sqlrec")
    assert con._closed
    run(ip, "%load_ext sqlrec")


def test_interrupt_cancels_training_and_saves_nothing(ip, capsys):
    ip.user_ns["ratings_df"] = make_ratings()

    def interrupt_while_training() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(t.name == "sqlrec-statement" for t in threading.enumerate()):
            time.sleep(0.01)
        time.sleep(0.3)  # some epochs in
        os.kill(os.getpid(), signal.SIGINT)  # what Jupyter's "interrupt kernel" sends

    threading.Thread(target=interrupt_while_training, daemon=True).start()
    result = ip.run_cell("%sqlrec CREATE MODEL big FROM ratings_df PREDICT movieId "
                         "USING user_id = 'userId', epochs = 100000, no_components = 4, num_threads = 1",
                         store_history=False)
    assert isinstance(result.error_in_exec, SqlrecMagicError)
    assert re.fullmatch(r"Error: training big: cancelled after epoch \d+ of 100000; nothing was saved",
                        str(result.error_in_exec))
    capsys.readouterr()
    assert run(ip, "%sqlrec SHOW MODELS").result.empty
