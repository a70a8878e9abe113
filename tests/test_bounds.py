"""Every numeric option is bounded by what the machine and the data can hold, for values a user
writes and values a database file carries; DB-API misuse is a PEP 249 error.

Cases that crashed the process (100,000 OpenMP threads: a segfault; a stored no_components of
1e8: a 22 GB allocation) or hung it (max_sampled = 1e9) run in a child process with a timeout,
so a regression fails its test instead of taking pytest down. After every refusal the database
is checked to be as it was.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

import sqlrec
from sqlrec import errors
from sqlrec.sql import options as opts

# The child's data: 60 users x 40 items, 720 distinct pairs, in a file database.
PROLOGUE = textwrap.dedent("""
    import json, resource, sys
    import duckdb
    import sqlrec
    try:
        import lightfm, implicit  # the engines' own mappings, before the limit below is measured
    except ImportError:
        pass

    def limit_memory(room):
        # An address-space limit `room` bytes above what the process maps now: a regression that
        # allocates a bomb gets a MemoryError here instead of the machine's memory.
        mapped = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmSize:"))
        resource.setrlimit(resource.RLIMIT_AS, (mapped + room, resource.getrlimit(resource.RLIMIT_AS)[1]))

    limit_memory(4 << 30)
    path = sys.argv[1]
    results = {}

    def attempt(label, con, sql):
        try:
            con.execute(sql)
            results[label] = ["ok", ""]
        except sqlrec.Error as exc:  # anything else propagates: a raw exception fails the test
            results[label] = [type(exc).__name__, str(exc)]

    def tamper(sql):
        duck = duckdb.connect(path)
        duck.execute(sql)
        duck.close()

    def state(con):
        versions = []
        if con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'sqlrec' AND table_name = 'models'"
                       ).fetchone()[0]:
            versions = con.execute("SELECT name, max(version) FROM sqlrec.models GROUP BY name ORDER BY name").fetchall()
        return [[str(n), int(v)] for n, v in versions], con.execute("SELECT count(*) FROM ratings").fetchone()[0]

    con = sqlrec.connect(path)
    con.execute("CREATE TABLE ratings AS SELECT 1 + i % 60 AS userId, 100 + (i * 7 + i // 60) % 40 AS movieId "
                "FROM range(720) t(i)")
""")

NEW_ROWS = "SELECT userId + 1000 AS userId, movieId FROM ratings WHERE userId > 50"


def child(path, body: str, timeout: float = 240) -> dict:
    """Run PROLOGUE + body in a fresh interpreter on the file `path`; the JSON it prints last."""
    code = PROLOGUE + textwrap.dedent(body) + "\nprint(json.dumps(results))\n"
    try:
        done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                              timeout=timeout, env=dict(os.environ))
    except subprocess.TimeoutExpired:
        pytest.fail(f"the child ran past {timeout} s (a hang)")
    assert done.returncode == 0, f"the child died (status {done.returncode}): {done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


LIMIT, WHY = opts.thread_limit()


@pytest.mark.parametrize("engine", ["lightfm", "als"])
def test_num_threads_above_the_cores_is_refused_everywhere(tmp_path, engine):
    out = child(tmp_path / "t.duckdb", f"""
        con.execute("CREATE MODEL m FROM ratings PREDICT movieId USING user_id = 'userId', engine = '{engine}', "
                    "epochs = 2, no_components = 8, num_threads = 1")
        before = state(con)
        create = "CREATE MODEL m2 FROM ratings PREDICT movieId USING user_id = 'userId', engine = '{engine}', "
        attempt("create", con, create + "num_threads = 100000")
        attempt("create n_jobs", con, create + "n_jobs = 100000")
        attempt("build", con, "BUILD MODEL m2 USING {engine} OPTIONS (user_col = 'userId', item_col = 'movieId', "
                              "n_jobs = 100000) AS SELECT * FROM ratings")
        attempt("retrain", con, "RETRAIN m USING num_threads = 100000")
        attempt("finetune", con, "FINETUNE m FROM ({NEW_ROWS}) USING num_threads = 100000")
        results["intact"] = state(con) == before
        attempt("at the bound", con, create + "epochs = 1, no_components = 4, num_threads = {LIMIT}")
    """)
    assert out.pop("at the bound") == ["ok", ""]  # the bound itself is allowed
    assert out.pop("intact") is True
    for label, (kind, message) in out.items():
        assert kind == "OptionError", (label, message)
        assert f"option num_threads must be <= {LIMIT} ({WHY}), got 100000" in message, (label, message)


def test_stored_thread_counts_are_capped_at_this_machine(tmp_path):
    """A file's thread count describes the machine that wrote it: capped here, never passed on."""
    out = child(tmp_path / "t.duckdb", f"""
        for name, engine in (("m", "lightfm"), ("a", "als")):
            con.execute(f"CREATE MODEL {{name}} FROM ratings PREDICT movieId USING user_id = 'userId', "
                        f"engine = '{{engine}}', epochs = 2, no_components = 8, num_threads = 2")
        con.close()
        tamper("UPDATE sqlrec.models SET info = json_merge_patch(info, '{{\\"num_threads\\": 100000000}}'), "
               "options = json_merge_patch(options, '{{\\"num_threads\\": 100000000}}')")
        con = sqlrec.connect(path)
        attempt("finetune lightfm", con, "FINETUNE m FROM ({NEW_ROWS}) USING epochs = 1")  # incremental: info's count
        attempt("finetune als", con, "FINETUNE a FROM ({NEW_ROWS})")  # refit: the stored options
        attempt("retrain", con, "RETRAIN a")
        results["threads"] = [r[0] for r in con.execute(
            "SELECT CAST(info->>'$.num_threads' AS INTEGER) FROM sqlrec.models WHERE version > 1").fetchall()]
    """)
    threads = out.pop("threads")
    assert out == {"finetune lightfm": ["ok", ""], "finetune als": ["ok", ""], "retrain": ["ok", ""]}
    assert len(threads) == 3 and all(1 <= t <= LIMIT for t in threads), threads


@pytest.mark.parametrize("patch, statement, kind, fragment", [
    # FINETUNE grows the factors by the stored width: 1e8 allocated 22 GB, a wrong one wrote past them
    ('{"no_components": 100000000}', "finetune", "CorruptModelError", "parameter no_components must be <= 4096"),
    ('{"no_components": 100000000}', "query", "CorruptModelError", "parameter no_components must be <= 4096"),
    ('{"no_components": 16}', "finetune", "CorruptModelError", "no_components is 16 but its factors have 8 columns"),
    ('{"epochs": -5}', "finetune", "CorruptModelError", "parameter epochs must be >= 1"),
    ('{"learning_rate": 0}', "finetune", "CorruptModelError", "parameter learning_rate must be > 0"),
    ('{"random_state": -1}', "query", "CorruptModelError", "parameter random_state must be >= 0"),
    # within its type's range, but more samples than the 40 items: refused by the data's bound
    ('{"max_sampled": 1000000000}', "finetune", "OptionError", "option max_sampled must be <= 40"),
])
def test_crafted_parameters_never_reach_the_engine(tmp_path, patch, statement, kind, fragment):
    out = child(tmp_path / "t.duckdb", f"""
        con.execute("CREATE MODEL m FROM ratings PREDICT movieId USING user_id = 'userId', epochs = 2, "
                    "no_components = 8, num_threads = 1")
        con.close()
        tamper("UPDATE sqlrec.models SET params = json_merge_patch(params, '" + {patch!r} + "')")
        con = sqlrec.connect(path)
        before = state(con)
        attempt("finetune", con, "FINETUNE m FROM ({NEW_ROWS}) USING epochs = 1, num_threads = 1")
        attempt("query", con, "SELECT * FROM m WHERE userId = 1")
        results["intact"] = state(con) == before
    """, timeout=120)
    assert out["intact"] is True
    got, message = out[statement]
    assert got == kind and fragment in message, out[statement]
    if kind == "CorruptModelError":
        assert "model 'm' is corrupt" in message


@pytest.mark.parametrize("patch, fragment", [
    ('{"nlist": 0}', "option nlist must be >= 1"),
    ('{"nprobe": 100000000}', "option nprobe must be <= 65536"),
    ('{"keep_versions": 0}', "option keep_versions must be >= 1"),
    ('{"eval_k": 100000000}', "option eval_k must be <= 100000"),
    ('{"test_size": 5}', "option test_size must be <= 0.9"),
    ('{"num_threads": 0}', "option num_threads must be >= 1"),
    ('{"num_threads": 100000000000}', "option num_threads must be <= 2147483647"),
])
def test_crafted_options_are_corrupt(tmp_path, patch, fragment):
    path = tmp_path / "t.duckdb"
    child(path, """
        con.execute("CREATE MODEL m FROM ratings PREDICT movieId USING user_id = 'userId', epochs = 1, "
                    "no_components = 4, num_threads = 1")
    """)
    import duckdb

    duck = duckdb.connect(str(path))
    duck.execute(f"UPDATE sqlrec.models SET options = json_merge_patch(options, '{patch}')")
    duck.close()
    con = sqlrec.connect(str(path))
    with pytest.raises(errors.CorruptModelError, match="model 'm' is corrupt") as info:
        con.execute("SELECT * FROM m WHERE userId = 1")
    assert fragment in str(info.value)
    assert con.execute("SELECT count(*) FROM ratings").fetchone() == (720,)
    con.close()


def test_sample_counts_are_bounded_by_the_items(tmp_path):
    out = child(tmp_path / "t.duckdb", """
        before = state(con)
        create = "CREATE MODEL m FROM ratings PREDICT movieId USING user_id = 'userId', num_threads = 1, "
        attempt("huge", con, create + "max_sampled = 1000000000")
        attempt("above", con, create + "max_sampled = 41")
        attempt("kos n", con, create + "loss = 'warp-kos', n = 100000000")
        attempt("tune_trials", con, create + "tune = true, tune_trials = 100000000")
        results["intact"] = state(con) == before
        attempt("at", con, create + "max_sampled = 40, epochs = 1, no_components = 4")
    """, timeout=120)
    assert out["intact"] is True and out["at"] == ["ok", ""]
    for label, value in (("huge", "1,000,000,000"), ("above", "41")):
        kind, message = out[label]
        assert kind == "OptionError" and f"option max_sampled must be <= 40 (the model's 40 items" in message
        assert message.endswith(f"got {value}")
    assert out["kos n"][0] == "OptionError" and "option n must be <= 40 (the model's 40 items" in out["kos n"][1]
    assert out["tune_trials"][0] == "OptionError" and "option tune_trials must be <= 10000" in out["tune_trials"][1]


def test_components_beyond_the_memory_budget_are_refused(tmp_path):
    """Under an address-space limit (the budget is half of what the process can still allocate),
    fits whose factors would not fit are refused with their size, before any allocation; a model
    that fits still trains under the same limit."""
    out = child(tmp_path / "t.duckdb", """
        from sqlrec.sql import options as opts

        limit_memory(1536 << 20)
        results["budget"] = opts.memory_budget()[0]
        con.execute("CREATE TABLE wide AS SELECT i AS u, (i * 7) % 300 AS it FROM range(20000) t(i)")
        con.execute("CREATE TABLE square AS SELECT i % 6000 AS u, (i * 13 + i // 6000) % 6000 AS it "
                    "FROM range(24000) t(i)")
        before = state(con)
        wide = "FROM wide PREDICT it USING user_id = 'u', num_threads = 1, "
        attempt("lightfm", con, "CREATE MODEL a " + wide + "no_components = 4096, epochs = 1")
        attempt("als", con, "CREATE MODEL b " + wide + "engine = 'als', no_components = 4096, epochs = 1")
        attempt("ease", con, "CREATE MODEL c FROM square PREDICT it USING user_id = 'u', engine = 'ease', "
                             "no_components = 5000, num_threads = 1")
        results["intact"] = state(con) == before
        attempt("fits", con, "CREATE MODEL d " + wide + "no_components = 8, epochs = 1")
    """, timeout=300)
    assert out.pop("intact") is True and out.pop("fits") == ["ok", ""]
    assert out.pop("budget") < 1536 << 20
    for label, (kind, message) in out.items():
        assert kind == "OptionError", (label, message)
        assert "option no_components = " in message and "budget" in message and "GiB" in message, message
        assert "nothing was trained" in message


def test_the_estimates_grow_with_the_parameters():
    """What the memory check reads: more components or more ids never estimate fewer bytes."""
    from sqlrec.engines import HANDLERS

    for engine in ("lightfm", "als", "ease", "svd", "explicit"):
        cls = HANDLERS[engine]
        small = cls.training_bytes({"no_components": 16}, (10_000, 5_000))
        assert 0 < small <= cls.training_bytes({"no_components": 64}, (10_000, 5_000))
        assert small <= cls.training_bytes({"no_components": 16}, (100_000, 5_000))
    # LightFM 4,096 components on 950k users: far beyond any laptop (the case).
    assert HANDLERS["lightfm"].training_bytes({"no_components": 4096}, (950_000, 40_000)) > 100 << 30


@pytest.fixture
def con():
    c = sqlrec.connect()
    c.execute("CREATE TABLE t AS SELECT 1 AS x")
    yield c
    c.close()


@pytest.mark.parametrize("call, error, fragment", [
    (lambda c: c.execute(None), errors.ProgrammingError, "must be a str of SQL, got NoneType"),
    (lambda c: c.execute(5), errors.ProgrammingError, "got int"),
    (lambda c: c.execute(b"SELECT 1"), errors.ProgrammingError, "got bytes (decode them first)"),
    (lambda c: c.execute(["SELECT 1"]), errors.ProgrammingError, "got list"),
    (lambda c: c.cursor().execute(None), errors.ProgrammingError, "got NoneType"),
    (lambda c: c.sql(None), errors.ProgrammingError, "got NoneType"),
    (lambda c: c.execute("SELECT ?", (v for v in [1])), errors.ProgrammingError, "got generator"),
    (lambda c: c.execute("SELECT ?", iter([1])), errors.ProgrammingError, "got list_iterator"),
    (lambda c: c.execute("SELECT ?", {1}), errors.ProgrammingError, "got set"),
    (lambda c: c.execute("SELECT ?", "1"), errors.ProgrammingError, "got str"),
    (lambda c: c.execute("SELECT $a", {1: 1}), errors.ProgrammingError, "str names"),
    (lambda c: c.cursor().executemany("SELECT ?", None), errors.ProgrammingError, "got NoneType"),
    (lambda c: c.cursor().executemany("SELECT ?", [(v for v in [1])]), errors.ProgrammingError, "got generator"),
    (lambda c: c.execute("SELECT x FROM t").fetchmany(-1), errors.ProgrammingError, "got -1"),
    (lambda c: c.execute("SELECT x FROM t").fetchmany("2"), errors.ProgrammingError, "got '2'"),
    (lambda c: sqlrec.connect(read_only="no"), errors.InterfaceError, "read_only must be True or False, got 'no'"),
    (lambda c: sqlrec.connect(safe="yes"), errors.InterfaceError, "safe must be True or False"),
    (lambda c: sqlrec.connect(trust_stored_sql=None), errors.InterfaceError, "trust_stored_sql must be True or False"),
    (lambda c: sqlrec.connect(config="x"), errors.InterfaceError, "config must be a dict"),
    (lambda c: sqlrec.connect(config=[("threads", 1)]), errors.InterfaceError, "config must be a dict"),
])
def test_dbapi_misuse_is_a_pep249_error(con, call, error, fragment):
    with pytest.raises(error) as info:
        call(con)
    assert fragment in str(info.value)
    assert isinstance(info.value, sqlrec.Error)
    assert con.execute("SELECT x FROM t").fetchall() == [(1,)]  # the connection goes on


def test_dbapi_accepted_forms_still_work(con, tmp_path):
    assert con.execute("SELECT ?, ?", (1, 2)).fetchall() == [(1, 2)]
    assert con.execute("SELECT ?", [3]).fetchall() == [(3,)]
    assert con.execute("SELECT $a", {"a": 4}).fetchall() == [(4,)]
    assert con.execute("SELECT x FROM t").fetchmany(0) == []
    cur = con.cursor()
    cur.executemany("INSERT INTO t VALUES (?)", [(2,), [3]])
    assert con.execute("SELECT count(*) FROM t").fetchone() == (3,)
    with sqlrec.connect(str(tmp_path / "f.duckdb"), read_only=0, config={"threads": 1}) as c:
        assert c.execute("SELECT 1").fetchone() == (1,)
