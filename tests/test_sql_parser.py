"""The SQL front-end: splitting scripts, model statements, SELECT ... USING, errors with positions.

Pure parsing: no DuckDB, no models. Round trips follow sqlglot's identity tests: parse, print,
parse again, and the two statements must be equal.
"""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest
from sqlglot import exp

from sqlrec.errors import ParseError
from sqlrec.sql import (
    CreateModel,
    Describe,
    DropModel,
    EvaluateModel,
    ExportRecommendations,
    Finetune,
    Passthrough,
    Query,
    Retrain,
    ShowModels,
    Source,
    option_value,
    parse_script,
    parse_statement,
    query_options,
    split_script,
)

# --- round trips ------------------------------------------------------------------------------

ROUND_TRIP = [
    "CREATE MODEL movie_rec FROM ratings PREDICT movieId",
    "CREATE MODEL movie_rec FROM main.ratings",
    "CREATE MODEL movie_rec FROM db.main.ratings PREDICT movieId USING engine = 'lightfm'",
    "CREATE MODEL m FROM 'ratings.parquet'",
    "CREATE MODEL m FROM read_parquet('r.parquet', hive_partitioning = true)",
    "CREATE MODEL m FROM (SELECT userId, movieId FROM ratings WHERE (rating) > 3)",
    "CREATE MODEL m FROM mydb (WITH a AS (SELECT * FROM r) SELECT * FROM a) PREDICT movieId",
    "CREATE MODEL m FROM ((SELECT 1 AS u) UNION ALL (SELECT 2))",
    "CREATE OR REPLACE MODEL m FROM ratings PREDICT movieId",
    "CREATE MODEL IF NOT EXISTS m FROM ratings",
    'CREATE MODEL "My Model" FROM "Rating Table" PREDICT "Movie Id"',
    'CREATE MODEL "a""b" FROM t',
    "CREATE MODEL model FROM t",
    "CREATE MODEL m FROM t USING i = 3, neg = -2, f = 0.05, e = 1e-06, big = 1e+300, "
    "s = 'it''s', t = TRUE, fa = FALSE, n = NULL, name = users, dotted = main.users, "
    "tup = ('a', 'b'), arr = ['x'], arr2 = ARRAY[1, 2], empty = [], nested = [[1, 2], [3]], "
    "q = 'SELECT * FROM items WHERE year > 2000'",
    "BUILD MODEL movie_rec USING lightfm OPTIONS (user_col = 'userId', item_col = 'movieId') "
    "AS SELECT * FROM ratings",
    "BUILD MODEL movie_rec USING lightfm AS SELECT * FROM ratings",
    "BUILD MODEL m USING lightfm OPTIONS () AS (SELECT 1)",
    "DROP MODEL m",
    "DROP MODEL IF EXISTS m",
    "DROP MODEL m VERSION 1",
    "DROP MODEL IF EXISTS \"My Model\" VERSION 12",
    "ALTER MODEL m SET VERSION 2",
    'ALTER MODEL "a""b" SET VERSION 3',
    "SHOW MODELS",
    "DESCRIBE m",
    "DESCRIBE m.features",
    "DESCRIBE MODEL m",
    "DESCRIBE MODEL m.metrics",
    'DESCRIBE "model"',
    "RETRAIN m",
    "RETRAIN MODEL m FROM ratings USING epochs = 10",
    "RETRAIN m FROM db (SELECT * FROM r)",
    "FINETUNE m FROM (SELECT * FROM new_ratings) USING epochs = 2",
    "FINETUNE MODEL m FROM new_ratings",
    "EVALUATE MODEL m",
    "EVALUATE MODEL m FROM test_ratings USING split = 'user', test_size = 0.2",
    "EXPORT RECOMMENDATIONS m TO 'recs/'",
    "EXPORT RECOMMENDATIONS \"My Model\" TO 's3a://bucket/it''s' (format = 'parquet', k = 5, overwrite = TRUE)",
]


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_model_statement_round_trip(text):
    statement = parse_statement(text)
    printed = statement.sql()
    again = parse_statement(printed)
    assert again == statement
    assert again.sql() == printed


QUERY_ROUND_TRIP = [
    "SELECT * FROM movie_rec WHERE userId = 100 USING recommender_type = 'user_item', n_recommendations = 5",
    "SELECT * FROM (SELECT * FROM m WHERE u = 1 USING k = 1) AS s",
    "WITH r AS (SELECT * FROM m USING k = [1, 2]) SELECT * FROM r",
    "CREATE TABLE t AS SELECT * FROM m USING k = -1.5",
    "SELECT * FROM m1 UNION ALL SELECT * FROM m2 USING k = NULL",
    "SELECT * FROM m ORDER BY rank LIMIT 5 USING exclude_seen = FALSE",
    "SELECT r.rank, m.title FROM movie_rec AS r JOIN movies AS m ON m.movieId = r.movieId WHERE r.userId = 100",
    "SELECT * FROM a JOIN b USING (c)",
    "SELECT * FROM t USING SAMPLE 10%",
    "DELETE FROM t USING u WHERE t.a = u.a",
    "INSERT INTO t SELECT * FROM m USING k = 'v'",
    "CREATE TABLE t (a INTEGER, b TEXT)",
    "PRAGMA table_info('ratings')",
    "SET threads = 4",
    "SHOW TABLES",
    "DESCRIBE SELECT 1",
]


@pytest.mark.parametrize("text", QUERY_ROUND_TRIP)
def test_query_round_trip(text):
    statement = parse_statement(text)
    assert isinstance(statement, Query)
    again = parse_statement(statement.sql())
    assert isinstance(again, Query)
    assert again.tree == statement.tree
    assert again == statement


def test_passthrough_round_trip():
    statement = parse_statement("CREATE SECRET (TYPE s3)")
    assert statement == Passthrough()
    assert parse_statement(statement.sql()) == statement


# --- field values ---------------------------------------------------------------------------


def test_create_model_mindsdb_table_form():
    st = parse_statement(
        """CREATE MODEL movie_rec
           FROM ratings
           PREDICT movieId
           USING engine = 'lightfm', user_id = 'userId', item_id = 'movieId',
                 rating = 'rating', threshold = 4, loss = 'warp', epochs = 30;"""
    )
    assert st == CreateModel(
        "movie_rec",
        Source(table="ratings"),
        "movieId",
        {"engine": "lightfm", "user_id": "userId", "item_id": "movieId", "rating": "rating",
         "threshold": 4, "loss": "warp", "epochs": 30},
    )
    assert st.kind == "create_model"
    assert st.form == "mindsdb" and st.engine is None
    assert (st.replace, st.if_not_exists) == (False, False)
    assert st.text.endswith("epochs = 30") and (st.line, st.col) == (1, 1)


def test_create_model_query_forms():
    st = parse_statement("create model m from (SELECT userId, movieId FROM ratings WHERE rating >= 4)")
    assert st.source == Source(query="SELECT userId, movieId FROM ratings WHERE rating >= 4")
    assert st.predict is None and st.options == {}

    st = parse_statement("CREATE MODEL m FROM mydb (SELECT * FROM ratings) PREDICT movieId")
    assert st.source == Source(query="SELECT * FROM ratings", database="mydb")
    assert st.predict == "movieId"

    st = parse_statement("CREATE MODEL m FROM db.main.ratings")
    assert st.source == Source(table="db.main.ratings")


def test_query_source_keeps_the_text_as_written():
    # DuckDB syntax sqlglot would rewrite stays exactly as the user wrote it
    st = parse_statement("CREATE MODEL m FROM (SELECT * FROM r USING SAMPLE 10%  WHERE x = 'a;b')")
    assert st.source.query == "SELECT * FROM r USING SAMPLE 10%  WHERE x = 'a;b'"


def test_create_model_flags_and_quoted_names():
    st = parse_statement('CREATE OR REPLACE MODEL "My Model" FROM "My Table" PREDICT "Item Id"')
    assert (st.name, st.replace, st.if_not_exists) == ("My Model", True, False)
    assert st.source.table == '"My Table"'  # SQL text, quotes kept
    assert st.predict == "Item Id"

    st = parse_statement("CREATE MODEL IF NOT EXISTS MovieRec FROM t")
    assert (st.name, st.replace, st.if_not_exists) == ("MovieRec", False, True)


def test_build_model_thanosql_form():
    st = parse_statement(
        "BUILD MODEL movie_rec USING lightfm\n"
        "OPTIONS (user_col = 'userId', item_col = 'movieId', rating_col = 'rating', epoch = 5, overwrite = True)\n"
        "AS SELECT * FROM ratings WHERE rating > 0"
    )
    assert isinstance(st, CreateModel)
    assert st.form == "thanosql" and st.engine == "lightfm"
    assert st.source == Source(query="SELECT * FROM ratings WHERE rating > 0")
    # ThanoSQL's names are kept as written; mapping them is the engine's business
    assert st.options == {"user_col": "userId", "item_col": "movieId", "rating_col": "rating",
                          "epoch": 5, "overwrite": True}
    assert st.sql().startswith("BUILD MODEL movie_rec USING lightfm OPTIONS (")

    st = parse_statement("BUILD MODEL m USING lightfm AS SELECT 1")
    assert st.options == {} and st.engine == "lightfm"


def test_form_does_not_take_part_in_equality():
    built = parse_statement("BUILD MODEL m USING lightfm AS SELECT 1")
    made = CreateModel("m", Source(query="SELECT 1"), None, {}, engine="lightfm")
    assert built == made


def test_option_values():
    st = parse_statement(
        "CREATE MODEL m FROM t USING A = 1, b = -2.5, c = 1e-3, d = 'x''y', e = TRUE, f = false, "
        "g = NULL, h = users, i = main.users, j = ('a', 'b'), k = ARRAY['a'], l = [1, [2]], "
        "m = 'SELECT id, tag FROM tags', n = (7), o = .5, p = $$it's$$, q = 1_000"
    )
    assert st.options == {
        "a": 1, "b": -2.5, "c": 0.001, "d": "x'y", "e": True, "f": False, "g": None, "h": "users",
        "i": "main.users", "j": ["a", "b"], "k": ["a"], "l": [1, [2]],
        "m": "SELECT id, tag FROM tags", "n": 7, "o": 0.5, "p": "it's", "q": 1000,
    }
    assert type(st.options["a"]) is int and type(st.options["c"]) is float


def test_option_keys_are_lowercased_and_order_kept():
    st = parse_statement("CREATE MODEL m FROM t USING Epochs = 3, NO_COMPONENTS = 8, timestamp = 'ts'")
    assert list(st.options) == ["epochs", "no_components", "timestamp"]


def test_other_model_statements():
    assert parse_statement("DROP MODEL IF EXISTS movie_rec;") == DropModel("movie_rec", if_exists=True)
    assert parse_statement("drop model movie_rec") == DropModel("movie_rec")
    assert parse_statement("SHOW MODELS") == ShowModels()
    assert parse_statement("show models;").kind == "show_models"
    assert parse_statement("RETRAIN movie_rec") == Retrain("movie_rec", None, {})
    assert parse_statement("RETRAIN MODEL m FROM (SELECT * FROM r) USING epochs = 3") == Retrain(
        "m", Source(query="SELECT * FROM r"), {"epochs": 3}
    )
    assert parse_statement("FINETUNE m FROM db (SELECT * FROM new)") == Finetune(
        "m", Source(query="SELECT * FROM new", database="db"), {}
    )
    assert parse_statement("EVALUATE MODEL m USING test_size = 0.3") == EvaluateModel(
        "m", None, {"test_size": 0.3}
    )
    assert parse_statement("EVALUATE MODEL m FROM held_out").source == Source(table="held_out")


def test_export_recommendations_takes_copy_style_options():
    """DuckDB's COPY / EXPORT DATABASE spelling (FORMAT parquet, a bare OVERWRITE) and sqlrec's
    key = value spelling give the same statement; DuckDB's own EXPORT DATABASE stays DuckDB's."""
    duckdb_style = parse_statement("export recommendations m to 'out' (FORMAT parquet, K 3, OVERWRITE)")
    assert duckdb_style == ExportRecommendations("m", "out", {"format": "parquet", "k": 3, "overwrite": True})
    assert parse_statement("EXPORT RECOMMENDATIONS m TO 'out' (format = 'parquet', k = 3, overwrite = true)") \
        == duckdb_style
    assert parse_statement("EXPORT RECOMMENDATIONS m TO 'out' ()") == ExportRecommendations("m", "out", {})
    assert isinstance(parse_statement("EXPORT DATABASE 'dir' (FORMAT parquet)"), Passthrough)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("DESCRIBE movie_rec", Describe("movie_rec", None, explicit=False)),
        ("DESC movie_rec", Describe("movie_rec", None, explicit=False)),
        ("DESCRIBE movie_rec.info", Describe("movie_rec", "info", explicit=False)),
        ("DESCRIBE MODEL movie_rec", Describe("movie_rec", None, explicit=True)),
        ("describe model movie_rec.history", Describe("movie_rec", "history", explicit=True)),
        ('DESCRIBE MODEL "My Model".features', Describe("My Model", "features", explicit=True)),
        # a table that happens to be called model
        ("DESCRIBE model", Describe("model", None, explicit=False)),
        ("DESCRIBE ratings", Describe("ratings", None, explicit=False)),
    ],
)
def test_describe(text, expected):
    assert parse_statement(text) == expected


def test_describe_that_is_not_about_a_model_is_duckdbs():
    assert isinstance(parse_statement("DESCRIBE SELECT * FROM t"), (Query, Passthrough))
    assert isinstance(parse_statement("DESCRIBE db.main.ratings"), (Query, Passthrough))


def test_statement_objects_print_without_position_info():
    st = parse_statement("  DROP MODEL m  ")
    assert st.text == "DROP MODEL m"
    assert st == DropModel("m")  # text/line/col do not take part in equality
    assert "text" not in repr(st)


# --- SELECT ... USING -----------------------------------------------------------------------


def _selects_with_options(tree):
    return [(node, query_options(node)) for node in tree.find_all(exp.Query) if query_options(node)]


def test_select_using_plain():
    st = parse_statement(
        "SELECT * FROM movie_rec WHERE userId = 100 USING recommender_type = 'user_item', n_recommendations = 5"
    )
    assert isinstance(st, Query) and isinstance(st.tree, exp.Select)
    assert query_options(st.tree) == {"recommender_type": "user_item", "n_recommendations": 5}
    assert st.tree.sql(dialect="duckdb") == "SELECT * FROM movie_rec WHERE userId = 100"
    assert st.sql("duckdb") == "SELECT * FROM movie_rec WHERE userId = 100"
    assert st.sql() == (
        "SELECT * FROM movie_rec WHERE userId = 100 USING recommender_type = 'user_item', "
        "n_recommendations = 5"
    )


def test_select_without_using_has_no_options():
    st = parse_statement("SELECT * FROM movie_rec WHERE userId = 100")
    assert query_options(st.tree) == {}


def test_select_using_in_subquery():
    st = parse_statement(
        "SELECT m.title FROM (SELECT * FROM movie_rec WHERE userId = 1 USING recommender_type = 'user_item') r "
        "JOIN movies m ON m.movieId = r.movieId"
    )
    assert query_options(st.tree) == {}
    [(inner, options)] = _selects_with_options(st.tree)
    assert options == {"recommender_type": "user_item"}
    assert inner.find(exp.Table).name == "movie_rec"
    assert "USING" not in st.sql("duckdb")


def test_select_using_in_cte():
    st = parse_statement(
        "WITH recs AS (SELECT * FROM movie_rec WHERE movieId = 50 USING recommender_type = 'item_item') "
        "SELECT * FROM recs ORDER BY rank"
    )
    [(inner, options)] = _selects_with_options(st.tree)
    assert options == {"recommender_type": "item_item"}
    assert isinstance(inner.parent, exp.CTE)
    assert st.sql("duckdb") == (
        "WITH recs AS (SELECT * FROM movie_rec WHERE movieId = 50) SELECT * FROM recs ORDER BY rank"
    )


def test_select_using_in_create_table_as():
    st = parse_statement("CREATE TABLE nightly AS SELECT * FROM movie_rec USING n_recommendations = 20")
    assert isinstance(st.tree, exp.Create)
    [(select, options)] = _selects_with_options(st.tree)
    assert isinstance(select, exp.Select) and options == {"n_recommendations": 20}
    assert st.sql("duckdb") == "CREATE TABLE nightly AS SELECT * FROM movie_rec"


def test_select_using_after_limit_and_before_it():
    after = parse_statement("SELECT * FROM m ORDER BY rank LIMIT 3 USING k = 1")
    before = parse_statement("SELECT * FROM m ORDER BY rank USING k = 1 LIMIT 3")
    assert query_options(after.tree) == query_options(before.tree) == {"k": 1}
    assert after.tree == before.tree


def test_select_using_in_union_sits_on_its_select():
    st = parse_statement(
        "SELECT * FROM m WHERE userId = 1 USING recommender_type = 'user_item' "
        "UNION ALL SELECT * FROM m WHERE movieId = 2 USING recommender_type = 'item_item'"
    )
    assert isinstance(st.tree, exp.Union)
    found = [options["recommender_type"] for _, options in _selects_with_options(st.tree)]
    assert sorted(found) == ["item_item", "user_item"]
    assert "USING" not in st.sql("duckdb")


def test_select_using_values():
    st = parse_statement(
        "SELECT * FROM m USING candidates = 'SELECT movieId FROM movies WHERE year > 2000', "
        "exclude_seen = FALSE, n_recommendations = -1, tags = ['a', 'b'], t = NULL, who = users"
    )
    assert query_options(st.tree) == {
        "candidates": "SELECT movieId FROM movies WHERE year > 2000",
        "exclude_seen": False, "n_recommendations": -1, "tags": ["a", "b"], "t": None, "who": "users",
    }


def test_join_using_and_other_usings_are_untouched():
    st = parse_statement("SELECT * FROM a JOIN b USING (c) JOIN (SELECT * FROM d) x USING (e)")
    joins = st.tree.args["joins"]
    assert [[i.name for i in j.args["using"]] for j in joins] == [["c"], ["e"]]
    assert _selects_with_options(st.tree) == []

    st = parse_statement("SELECT * FROM a JOIN b USING (c) WHERE x = 1 USING k = 'v'")
    assert query_options(st.tree) == {"k": "v"}
    assert st.tree.args["joins"][0].args["using"][0].name == "c"
    assert st.sql("duckdb") == "SELECT * FROM a JOIN b USING (c) WHERE x = 1"

    st = parse_statement("DELETE FROM t USING u WHERE t.a = u.a")
    assert isinstance(st.tree, exp.Delete) and st.tree.args["using"][0].name == "u"

    st = parse_statement("SELECT * FROM t USING SAMPLE 10%")
    assert st.tree.args.get("sample") is not None and query_options(st.tree) == {}

    st = parse_statement("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET v = s.v")
    assert isinstance(st.tree, exp.Merge)

    st = parse_statement("PIVOT cities ON year USING sum(population)")
    assert isinstance(st, Query) and _selects_with_options(st.tree) == []


def test_option_value_of_literals():
    assert option_value(exp.Literal.number("3")) == 3
    assert option_value(exp.Literal.number("3.5")) == 3.5
    assert option_value(exp.Literal.string("x")) == "x"
    assert option_value(exp.Neg(this=exp.Literal.number("2"))) == -2
    assert option_value(exp.Boolean(this=True)) is True
    assert option_value(exp.Null()) is None
    assert option_value(exp.column("users")) == "users"
    assert option_value(exp.Tuple(expressions=[exp.Literal.number("1"), exp.Literal.string("a")])) == [1, "a"]
    with pytest.raises(ValueError):
        option_value(exp.func("now"))


def test_sqlrec_dialect_is_registered_with_sqlglot():
    import sqlglot

    tree = sqlglot.parse_one("SELECT * FROM m USING k = 1", read="sqlrec")
    assert query_options(tree) == {"k": 1}
    assert sqlglot.transpile("SELECT * FROM m USING k = 1", read="sqlrec", write="duckdb") == [
        "SELECT * FROM m"
    ]
    assert sqlglot.parse_one("DROP MODEL m", read="sqlrec").sql("sqlrec") == "DROP MODEL m"


# --- ordinary DuckDB statements ---------------------------------------------------------------


@pytest.mark.parametrize(
    "text, kind",
    [
        ("CREATE TABLE ratings (userId INTEGER, movieId INTEGER, rating DOUBLE)", Query),
        ("INSERT INTO ratings VALUES (1, 2, 3.5), (1, 3, 4)", Query),
        ("PRAGMA table_info('ratings')", Query),
        ("ATTACH 'other.duckdb' AS other (READ_ONLY)", Query),
        ("COPY ratings TO 'ratings.csv' (HEADER)", Query),
        ("SET threads = 4", Query),
        ("SHOW TABLES", Query),
        ("UPDATE ratings SET rating = 5 WHERE userId = 1", Query),
        ("SELECT 1", Query),
        ("FROM ratings", Query),
        ("DESCRIBE ratings", Describe),
        ("CHECKPOINT", Passthrough),
        ("CREATE SECRET (TYPE s3, KEY_ID 'x')", Passthrough),
        ("EXPORT DATABASE 'dir'", Passthrough),
        ("CALL pragma_version()", Passthrough),
        ("LOAD httpfs", Passthrough),
        ("SHOW ratings", Passthrough),
        ("EVALUATE something", Passthrough),
        ("this is not sql at all", Passthrough),
    ],
)
def test_duckdb_statements(text, kind):
    st = parse_statement(text)
    assert type(st) is kind
    assert st.text == text


def test_passthrough_keeps_text_and_logs_nothing(caplog):
    with caplog.at_level(logging.WARNING):
        st = parse_statement("CREATE SECRET (TYPE s3)")
    assert st.text == "CREATE SECRET (TYPE s3)"
    assert caplog.records == []


# --- split_script -----------------------------------------------------------------------------


def test_split_simple_and_positions():
    script = "SELECT 1;\n  SELECT 2 ;\n\n\tDROP MODEL m"
    assert split_script(script) == [("SELECT 1", 1, 1), ("SELECT 2", 2, 3), ("DROP MODEL m", 4, 2)]


def test_split_ignores_semicolons_in_strings_identifiers_and_comments():
    script = (
        "SELECT 'a;b', 'it''s;', \"odd;name\" FROM t; -- note; here\n"
        "SELECT $$x;y$$, $tag$ q; $tag$ /* c; d */ FROM u;"
    )
    assert split_script(script) == [
        ("SELECT 'a;b', 'it''s;', \"odd;name\" FROM t", 1, 1),
        ("SELECT $$x;y$$, $tag$ q; $tag$ /* c; d */ FROM u", 2, 1),
    ]


def test_split_skips_empty_and_comment_only_pieces():
    script = ";;  ; -- only a comment;\n/* another; */ ;\nSELECT 1;;\n-- trailing"
    assert split_script(script) == [("SELECT 1", 3, 1)]
    assert split_script("") == []
    assert split_script("  \n -- nothing\n") == []


def test_split_statement_starts_at_its_first_token():
    script = "-- make the model\nCREATE MODEL m FROM t; /* next */ DROP MODEL m"
    assert split_script(script) == [("CREATE MODEL m FROM t", 2, 1), ("DROP MODEL m", 2, 35)]


def test_split_multiline_statement_keeps_inner_text():
    script = "SELECT 1;\nCREATE MODEL m\n  FROM t\n  USING epochs = 3;"
    assert split_script(script)[1] == ("CREATE MODEL m\n  FROM t\n  USING epochs = 3", 2, 1)


@pytest.mark.parametrize(
    "script, line, col, fragment",
    [
        ("SELECT 1;\nSELECT 'abc", 2, 8, "unterminated string"),
        ('SELECT "abc', 1, 8, "unterminated quoted identifier"),
        ("SELECT 1;\n  /* open", 2, 3, "unterminated /* comment"),
        ("SELECT $$abc", 1, 8, "unterminated $$ string"),
    ],
)
def test_split_unterminated(script, line, col, fragment):
    with pytest.raises(ParseError) as info:
        split_script(script)
    assert fragment in str(info.value)
    assert (info.value.line, info.value.col) == (line, col)


def test_parse_script():
    statements = parse_script(
        "CREATE MODEL m FROM ratings PREDICT movieId;\n"
        "SELECT * FROM m WHERE userId = 1 USING n_recommendations = 3;\n"
        "CHECKPOINT;\n"
        "DROP MODEL m;"
    )
    assert [s.kind for s in statements] == ["create_model", "query", "passthrough", "drop_model"]
    assert [(s.line, s.col) for s in statements] == [(1, 1), (2, 1), (3, 1), (4, 1)]
    assert statements[2].text == "CHECKPOINT"


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, line, col, fragments",
    [
        ("CREATE MODEL movie_rec PREDICT movieId", 1, 24,
         ["CREATE MODEL movie_rec: expected FROM after the model name", "'PREDICT'"]),
        ("CREATE MODEL FROM ratings", 1, 14, ["CREATE MODEL: missing model name"]),
        ("CREATE MODEL", 1, 13, ["CREATE MODEL: missing model name"]),
        ("CREATE MODEL m FROM ratings USING )", 1, 35, ["USING: expected key = value, found ')'"]),
        ("CREATE MODEL m FROM ratings USING epochs = 3,", 1, 46,
         ["USING: expected key = value, found end of statement"]),
        ("CREATE MODEL m FROM ratings USING epochs 3", 1, 42, ["expected '=' after epochs"]),
        ("CREATE MODEL m\nFROM ratings\nUSING\n  epochs = 3,\n  Epochs = 4", 5, 3,
         ["option 'epochs' is given twice"]),
        ("CREATE MODEL m FROM ratings USING x = now()", 1, 39, ["option x: expected a value"]),
        ("CREATE MODEL m FROM ratings USING x = [1, 2", 1, 44, ["expected ',' or ']'"]),
        ("CREATE MODEL m FROM ratings USING epochs = 3 PREDICT x", 1, 46,
         ["found 'PREDICT'", "FROM, PREDICT, USING"]),
        ("CREATE MODEL m FROM ratings WHERE x = 1", 1, 29,
         ["expected PREDICT, USING or end of statement, found 'WHERE'"]),
        ("CREATE MODEL m FROM (SELECT * FROM ratings", 1, 21, ["'(' is never closed"]),
        ("CREATE MODEL m FROM (ratings)", 1, 22, ["expected a query (SELECT ...) inside the parentheses"]),
        ("CREATE MODEL m FROM ratings PREDICT", 1, 36, ["expected a column name after PREDICT"]),
        ("CREATE MODEL m FROM", 1, 20, ["expected a table or (query) after FROM"]),
        ("CREATE OR REPLACE MODEL IF NOT EXISTS m FROM t", 1, 25,
         ["OR REPLACE and IF NOT EXISTS cannot be used together"]),
        ("BUILD MODEL m AS SELECT 1", 1, 15, ["BUILD MODEL m: expected USING engine"]),
        ("BUILD MODEL m USING lightfm", 1, 28, ["expected OPTIONS (...) or AS query"]),
        ("BUILD MODEL m USING lightfm OPTIONS (a = 1 AS SELECT 1", 1, 44,
         ["BUILD MODEL m OPTIONS: expected ',' or ')'"]),
        ("BUILD MODEL m USING lightfm OPTIONS (a = 1) AS", 1, 47, ["expected a query after AS"]),
        ("DROP MODEL", 1, 11, ["DROP MODEL: missing model name"]),
        ("DROP MODEL a b", 1, 14, ["DROP MODEL a: expected VERSION n or end of statement, found 'b'"]),
        ("SHOW MODELS LIKE 'x'", 1, 13, ["SHOW MODELS: expected end of statement"]),
        ("DESCRIBE MODEL m.", 1, 18, ["expected an attribute name after '.'"]),
        ("DESCRIBE MODEL m x", 1, 18, ["DESCRIBE MODEL m: expected '.attribute' or end of statement"]),
        ("RETRAIN", 1, 8, ["RETRAIN: missing model name"]),
        ("RETRAIN m WHERE x", 1, 11, ["RETRAIN m: expected FROM, USING or end of statement"]),
        ("FINETUNE m USING a = 1", 1, 12, ["FINETUNE m: expected FROM after the model name"]),
        ("EVALUATE MODEL", 1, 15, ["EVALUATE MODEL: missing model name"]),
        ("EXPORT RECOMMENDATIONS TO 'x'", 1, 24, ["EXPORT RECOMMENDATIONS: missing model name before TO"]),
        ("EXPORT RECOMMENDATIONS m 'x'", 1, 26, ["EXPORT RECOMMENDATIONS m: expected TO 'path' after the model name"]),
        ("EXPORT RECOMMENDATIONS m TO recs", 1, 29, ["expected a quoted path after TO (e.g. TO 'recs/'), found 'recs'"]),
        ("EXPORT RECOMMENDATIONS m TO ''", 1, 29, ["expected a quoted path after TO"]),
        ("EXPORT RECOMMENDATIONS m TO 'x' (k 5", 1, 37, ["expected ',' or ')' after option k, found end of statement"]),
        ("EXPORT RECOMMENDATIONS m TO 'x' (k 5 6)", 1, 38, ["expected ',' or ')' after option k, found '6'"]),
        ("EXPORT RECOMMENDATIONS m TO 'x' (k 1, K 2)", 1, 39, ["option 'k' is given twice"]),
        ("EXPORT RECOMMENDATIONS m TO 'x' (k 1) USING a = 1", 1, 39,
         ["EXPORT RECOMMENDATIONS m: expected end of statement, found 'USING'"]),
        ("SELECT * FROM m USING k = 1, k = 2", 1, 30, ["USING: option 'k' is given twice"]),
        ("SELECT * FROM (SELECT * FROM m USING k = 1,) s", 1, 44, ["USING: expected key = value"]),
        ("SELECT * FROM m USING k = 1 + 2", 1, 29, ["USING: expected ',' or the end of the options"]),
        ("SELECT * FROM m USING k = 1 USING j = 2", 1, 29, ["one USING clause"]),
        ("SELECT 1; SELECT 2", 1, 9, ["expected one statement"]),
        ("  ; ", 1, 1, ["empty statement"]),
    ],
)
def test_parse_errors(text, line, col, fragments):
    with pytest.raises(ParseError) as info:
        parse_statement(text)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message
    assert (info.value.line, info.value.col) == (line, col)
    assert f"(line {line}, column {col})" in message


def test_error_positions_are_relative_to_the_script():
    with pytest.raises(ParseError) as info:
        parse_statement("CREATE MODEL m\n  FROM t USING )", line=7, col=5)
    assert (info.value.line, info.value.col) == (8, 16)
    with pytest.raises(ParseError) as info:
        parse_statement("DROP MODEL", line=3, col=10)
    assert (info.value.line, info.value.col) == (3, 20)

    with pytest.raises(ParseError) as info:
        parse_script("SELECT 1;\nSELECT 2;\n  DROP MODEL m USING x")
    assert (info.value.line, info.value.col) == (3, 16)
    assert "DROP MODEL m: expected VERSION n or end of statement, found 'USING'" in str(info.value)


def test_statement_position_from_parse_statement_offsets():
    st = parse_statement("\n  DROP MODEL m", line=4, col=3)
    assert (st.line, st.col) == (5, 3)


def test_parse_error_is_a_sqlrec_programming_error():
    import sqlrec.errors as errors

    with pytest.raises(errors.ProgrammingError):
        parse_statement("DROP MODEL")


# --- house rules ------------------------------------------------------------------------------


def test_sql_package_imports_only_sqlglot_stdlib_and_errors():
    """The grammar knows no DuckDB and no numpy; the option tables (sql/options.py) may also read
    the numeric layer's metric names and core count."""
    allowed_roots = {"__future__", "re", "math", "dataclasses", "typing", "sqlglot", "collections"}
    package = Path(__file__).resolve().parent.parent / "sqlrec" / "sql"
    for path in package.rglob("*.py"):
        allowed_packages = ("sqlrec.sql", "sqlrec.numeric") if path.name == "options.py" else ("sqlrec.sql",)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: inside sql/
                    continue
                names = [node.module]
            else:
                continue
            for name in names:
                assert (name == "sqlrec.errors" or name.split(".")[0] in allowed_roots
                        or name.startswith(allowed_packages)), (path.name, name)
