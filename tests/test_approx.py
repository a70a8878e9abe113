"""USING approximate: top-N from a faiss IVF index (sqlrec.numeric.approx), against exact scoring.

A catalogue of 1,500 items in 15 taste groups, a real LightFM fit and the real index; nprobe = 1
of 30 lists makes the approximation visible, nprobe = nlist scans every list (exact but for
float rounding). Fallbacks (candidates, target filters, rows the index cannot fill) are exact.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import sqlrec
from sqlrec.numeric import approx, scoring
from sqlrec import errors

faiss = pytest.importorskip("faiss")

MODEL = ("CREATE MODEL m FROM events PREDICT itemId USING user_id = 'userId', epochs = 5, no_components = 16, "
         "random_state = 7, approximate = true, nlist = 30, nprobe = 1")


def make_events(n_users: int = 400, n_items: int = 1500, groups: int = 15, seed: int = 0) -> pd.DataFrame:
    """Each user: 30 items of their group (popular ones more often) and 3 from anywhere."""
    rng = np.random.default_rng(seed)
    size = n_items // groups
    p = 1 / np.arange(1, size + 1) ** 0.7
    p /= p.sum()
    rows = []
    for u in range(n_users):
        own = (u % groups) * size + rng.choice(size, 30, replace=False, p=p)
        rows += [(u, int(i)) for i in np.concatenate([own, rng.choice(n_items, 3, replace=False)])]
    return pd.DataFrame(rows, columns=["userId", "itemId"]).drop_duplicates()


def open_shop(path=None, create: str | None = MODEL) -> sqlrec.Connection:
    con = sqlrec.connect(str(path)) if path else sqlrec.connect()
    con.register("events_df", make_events())
    con.execute("CREATE TABLE events AS SELECT * FROM events_df")
    con.unregister("events_df")
    if create:
        con.execute(create)
    return con


N_ITEMS = make_events().itemId.nunique()


@pytest.fixture(scope="module")
def shop():
    con = open_shop()
    yield con
    con.close()


def recs(con, using: str, where: str = "") -> pd.DataFrame:
    return con.execute(f"SELECT * FROM m {where} USING {using} ORDER BY 1, rank").df()


def recall(got: pd.DataFrame, want: pd.DataFrame, key: str = "userId", target: str = "itemId") -> float:
    g, w = got.groupby(key)[target].apply(set), want.groupby(key)[target].apply(set)
    return float(np.mean([len(g[k] & w[k]) / len(w[k]) for k in w.index]))


def test_scanning_every_list_is_exact_and_one_list_of_30_approximates(shop):
    exact = recs(shop, "approximate = false")
    full = recs(shop, "nprobe = 30")
    assert len(full) == len(exact) == 400 * 10
    assert (full.userId.values == exact.userId.values).all() and (full["rank"].values == exact["rank"].values).all()
    np.testing.assert_allclose(full.score, exact.score, atol=1e-5)  # same scores rank for rank
    assert recall(full, exact) == 1.0
    one = recs(shop, "approximate = true")  # the model's nprobe = 1
    assert 0.5 < recall(one, exact) < 1.0  # the index is what answered: it misses some
    # CREATE TABLE AS streams every user's rows: the same index, the same rows
    shop.execute("CREATE OR REPLACE TABLE stored_recs AS SELECT * FROM m")
    assert shop.execute("SELECT * FROM stored_recs ORDER BY 1, rank").df().equals(one)


def test_approximate_rows_are_true_scores_of_unseen_items_in_order(shop):
    got = recs(shop, "n_recommendations = 10")
    assert (got.groupby("userId").size() == 10).all()
    assert (got.groupby("userId")["rank"].apply(list) == [list(range(1, 11))] * 400).all()
    assert (got.groupby("userId").score.apply(lambda s: bool((np.diff(s.values) <= 0).all()))).all()
    seen = shop.execute("SELECT count(*) FROM events e JOIN (SELECT * FROM m) r USING (userId, itemId)").fetchone()
    assert seen == (0,)
    for user in (0, 7, 399):
        rows = got[got.userId == user]
        pairs = shop.execute(f"SELECT itemId, rating FROM m WHERE userId = {user} AND itemId IN "
                             f"({', '.join(map(str, rows.itemId))}) USING recommender_type = 'rating'").fetchall()
        np.testing.assert_allclose(rows.score.values, [dict(pairs)[i] for i in rows.itemId], rtol=1e-5)


def test_candidates_and_target_filters_are_scored_exactly(shop):
    cand = "candidates = 'SELECT DISTINCT itemId FROM events WHERE itemId % 3 = 0'"
    assert recs(shop, cand).equals(recs(shop, cand + ", approximate = false"))
    # an IN filter on the item column is pushed into scoring: those items are ranked, exactly
    pushed = "WHERE userId = 4 AND itemId IN (60, 61, 62, 900, 1400)"
    assert recs(shop, "approximate = true", pushed).equals(recs(shop, "approximate = false", pushed))


def test_item_item_has_its_own_cosine_index(shop):
    where = "WHERE itemId IN (0, 150, 1499)"
    exact = recs(shop, "recommender_type = 'item_item', approximate = false", where)
    full = recs(shop, "recommender_type = 'item_item', nprobe = 30", where)
    np.testing.assert_allclose(full.score, exact.score, atol=1e-5)
    one = recs(shop, "recommender_type = 'item_item'")  # every item: one list of 30 scanned
    assert len(one) == N_ITEMS * 10 and (one.itemId != one.similar_itemId).all()
    assert 0.5 < recall(one, recs(shop, "recommender_type = 'item_item', approximate = false"),
                        "itemId", "similar_itemId") < 1.0


def test_describe_shows_the_index_and_the_recall_measured_when_it_was_built(shop):
    facts = {k: v for k, v in shop.execute("DESCRIBE m.model").fetchall() if k.startswith("approximate_")}
    assert set(facts) == {"approximate_nlist", "approximate_nprobe", "approximate_build_seconds",
                          "approximate_ip_recall_at_10", "approximate_cos_recall_at_10"}
    assert (facts["approximate_nlist"], facts["approximate_nprobe"]) == ("30", "1")
    assert 0.5 < float(facts["approximate_ip_recall_at_10"]) < 1.0  # a 256-user sample, at nprobe 1
    shop.execute(MODEL.replace("MODEL m", "MODEL full").replace("nprobe = 1", "nprobe = 30"))
    facts = dict(shop.execute("DESCRIBE full.model").fetchall())
    assert facts["approximate_ip_recall_at_10"] == facts["approximate_cos_recall_at_10"] == "1"
    shop.execute("DROP MODEL full")


def _factors(n_items: int, n_users: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n_users, 8)).astype(np.float32), rng.normal(0, 0.1, n_users).astype(np.float32),
            rng.standard_normal((n_items, 8)).astype(np.float32), rng.normal(0, 0.1, n_items).astype(np.float32))


def _index(v, bi, nlist):
    prepared = scoring.prepare_targets(v, bi, True)
    arrays, facts = approx.build(lambda s: prepared.T, len(v), ("user_item",), approximate=True, nlist=nlist)
    return approx.IvfIndex(arrays["ip.centroids"], arrays["ip.lists"], lambda: prepared.T), prepared, facts


def test_rows_the_index_cannot_fill_are_scored_exactly():
    u, bu, v, bi = _factors(3000, 6)
    index, prepared, _ = _index(v, bi, 60)
    seen = sp.lil_matrix((6, 3000), dtype=np.float32)
    seen[0, :approx.MAX_SEARCH_K + 100] = 1  # k + seen above MAX_SEARCH_K
    seen[1, ::7] = 1
    want = scoring.top_k(u, bu, v, bi, 20, exclude=seen.tocsr())
    got = approx.top_k(index, u, bu, v, bi, 20, exclude=seen.tocsr(), nprobe=1, prepared=prepared)
    assert (got[0][0] == want[0][0]).all() and np.allclose(got[1][0], want[1][0], atol=1e-5)
    assert not np.isin(got[0][1], np.arange(0, 3000, 7)).any()
    # 40 items a list, one list scanned, 60 asked: no row can be filled, so every row is exact
    index, prepared, facts = _index(v[:400], bi[:400], 10)
    assert facts.nlist == 10
    want = scoring.top_k(u, bu, v[:400], bi[:400], 60)
    got = approx.top_k(index, u, bu, v[:400], bi[:400], 60, nprobe=1, prepared=prepared)
    assert (got[0] == want[0]).all() and np.allclose(got[1], want[1], atol=1e-5)


CREATE_ERRORS = [
    ("approximate = 'maybe'", errors.OptionError, "option approximate must be true, false or 'auto', got 'maybe'"),
    ("nlist = 0", errors.OptionError, "option nlist must be >= 1"),
    ("nlist = 4, nprobe = 8", errors.OptionError, "option nprobe (8) cannot exceed nlist (4)"),
    ("approximate = false, nlist = 4", errors.OptionError, "option nlist sets up the approximate index"),
    ("approximate = false, nprobe = 2", errors.OptionError, "option nprobe sets up the approximate index"),
    ("engine = 'popularity', approximate = true", errors.OptionError, "engine 'popularity' ranks every user's items"),
]


@pytest.mark.parametrize("using, error, message", CREATE_ERRORS)
def test_create_option_errors_name_the_option_and_create_nothing(using, error, message):
    con = open_shop(create=None)
    with pytest.raises(error) as info:
        con.execute(f"CREATE MODEL bad FROM events PREDICT itemId USING user_id = 'userId', {using}")
    assert message in str(info.value)
    assert con.execute("SHOW MODELS").fetchall() == [] and con.execute("SELECT count(*) FROM events").fetchone()[0]


QUERY_ERRORS = [
    ("recommender_type = 'item_user', approximate = true", errors.QueryError,
     "option approximate = true: recommender_type 'item_user' is always scored exactly"),
    ("recommender_type = 'user_user', nprobe = 4", errors.QueryError, "option nprobe: recommender_type 'user_user'"),
    ("nprobe = 0", errors.OptionError, "option nprobe must be >= 1"),
    ("approximate = 'auto'", errors.OptionError, "option approximate must be true or false"),
]


@pytest.mark.parametrize("using, error, message", QUERY_ERRORS)
def test_query_option_errors(shop, using, error, message):
    with pytest.raises(error) as info:
        shop.execute(f"SELECT * FROM m WHERE userId = 1 USING {using}")
    assert message in str(info.value)


def test_a_model_without_an_index_says_how_to_build_one():
    con = open_shop(create=MODEL.replace("approximate = true, nlist = 30, nprobe = 1", "approximate = 'auto'"))
    # 'auto' below the measured catalogue size (approx.AUTO_MIN_ITEMS) builds nothing
    assert con.execute("SELECT count(*) FROM sqlrec.arrays WHERE name LIKE 'a.%'").fetchone() == (0,)
    missing = r"model has no approximate index for user_item \(CREATE OR REPLACE MODEL"
    for using in ("approximate = true", "nprobe = 3"):
        with pytest.raises(errors.QueryError, match=missing):
            con.execute(f"SELECT * FROM m WHERE userId = 1 USING {using}")
    with pytest.raises(errors.QueryError, match="option approximate does not apply to recommender_type 'rating'"):
        con.execute("SELECT * FROM m WHERE userId = 1 AND itemId = 3 USING recommender_type = 'rating', "
                    "approximate = false")
    assert len(con.execute("SELECT * FROM m WHERE userId = 1 USING approximate = false").fetchall()) == 10


def test_the_index_is_stored_as_plain_arrays_and_survives_reopening(tmp_path):
    con = open_shop(tmp_path / "shop.duckdb")
    before = recs(con, "n_recommendations = 20")
    assert recall(before, recs(con, "n_recommendations = 20, approximate = false")) < 1.0
    stored = con.execute("SELECT name, dtype, shape FROM sqlrec.arrays WHERE name LIKE 'a.%' ORDER BY name").fetchall()
    n = con.execute("SELECT count(DISTINCT itemId) FROM events").fetchone()[0]
    assert stored == [("a.cos.centroids", "<f4", [30, 17]), ("a.cos.lists", "<i4", [n]),
                      ("a.ip.centroids", "<f4", [30, 19]), ("a.ip.lists", "<i4", [n])]
    info = con.execute("SELECT info->>'$.approximate_index.nlist' FROM sqlrec.models").fetchone()
    assert info == ("30",)
    con.close()
    con = sqlrec.connect(str(tmp_path / "shop.duckdb"), read_only=True)
    assert recs(con, "n_recommendations = 20").equals(before)
    con.close()


def _tamper(path, name, array):
    import duckdb

    duck = duckdb.connect(str(path))
    duck.execute("UPDATE sqlrec.arrays SET dtype = ?, shape = ?, data = ? WHERE name = ?",
                 [array.dtype.str, list(array.shape), array.tobytes(), name])
    duck.close()


@pytest.mark.parametrize("name, array, fragment", [
    ("a.ip.lists", np.full(N_ITEMS, 30, np.int32), "approximate index 'ip' assigns items to lists it does not have"),
    ("a.ip.lists", np.zeros(N_ITEMS - 1, np.int32), "approximate index 'ip' assigns items to lists it does not have"),
    ("a.cos.centroids", np.full((30, 17), np.nan, np.float32), "approximate index 'cos' has centroids of shape"),
    ("a.ip.centroids", np.zeros((30, 5), np.float32), "approximate index 'ip' has centroids of shape (30, 5)"),
])
def test_a_damaged_index_is_a_corrupt_model_error_before_faiss_sees_it(tmp_path, name, array, fragment):
    path = tmp_path / "shop.duckdb"
    open_shop(path).close()
    _tamper(path, name, array)
    con = sqlrec.connect(str(path))
    with pytest.raises(errors.CorruptModelError) as info:
        con.execute("SELECT * FROM m WHERE userId = 1")
    assert "model 'm' is corrupt" in str(info.value) and fragment in str(info.value)
    assert con.execute("SELECT count(*) FROM events").fetchone()[0] > 13_000  # nothing lost


@pytest.mark.slow
def test_finetune_and_retrain_rebuild_the_index_for_the_new_items():
    con = open_shop()
    # 40 users of group 0 take up 5 new items: the group's other users should be offered them
    con.execute("CREATE TABLE more AS SELECT u * 15 AS userId, 5000 + (u % 5) AS itemId FROM range(40) t(u) "
                "UNION ALL SELECT u * 15, 5000 + ((u + 1) % 5) FROM range(40) t(u)")
    con.execute("FINETUNE m FROM (SELECT * FROM more) USING epochs = 10")
    lists, nlist = con.execute("SELECT shape[1], (SELECT info->>'$.approximate_index.nlist' FROM sqlrec.models "
                               "WHERE active) FROM sqlrec.arrays WHERE name = 'a.ip.lists' AND version = 2").fetchone()
    assert (lists, nlist) == (N_ITEMS + 5, "30")
    new = "WHERE userId IN (SELECT DISTINCT userId FROM events WHERE userId % 15 = 0) AND itemId >= 5000"
    exact = con.execute(f"SELECT count(*) FROM m {new} USING approximate = false").fetchone()[0]
    full = con.execute(f"SELECT count(*) FROM m {new} USING nprobe = 30").fetchone()[0]
    assert exact == full > 0  # users not among the 40 get the new items, from the index as exactly
    assert con.execute("SELECT count(*) FROM (SELECT * FROM m USING nprobe = 30) WHERE itemId >= 5000").fetchone()[0]
    con.execute("RETRAIN m FROM (SELECT * FROM events UNION ALL SELECT 1000 + userId, 6000 + itemId "
                "FROM events WHERE userId < 100)")
    n_items, lists = con.execute("SELECT (SELECT info->>'$.n_items' FROM sqlrec.models WHERE active), shape[1] "
                                 "FROM sqlrec.arrays WHERE name = 'a.ip.lists' AND version = 3").fetchone()
    assert int(n_items) == lists > N_ITEMS + 5
    assert recall(recs(con, "nprobe = 30"), recs(con, "approximate = false")) == 1.0


NO_FAISS = """
import sys
sys.modules["faiss"] = None  # import faiss now raises ImportError: the package is not installed
import sqlrec
con = sqlrec.connect({path!r})
"""


def _without_faiss(path, body: str) -> str:
    code = NO_FAISS.format(path=str(path)) + textwrap.dedent(body)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.slow
def test_without_faiss_asking_for_it_says_install_sqlrec_approx_and_stored_indexes_answer_exactly(tmp_path):
    path = tmp_path / "shop.duckdb"
    con = open_shop(path)
    exact = con.execute("SELECT * FROM m USING approximate = false ORDER BY 1, rank").fetchall()
    con.close()
    out = _without_faiss(path, """
        for sql in ("CREATE MODEL n FROM events PREDICT itemId USING user_id = 'userId', approximate = true",
                    "SELECT * FROM m WHERE userId = 1 USING approximate = true"):
            try:
                con.execute(sql)
            except sqlrec.Error as e:
                print(e)
        print(sorted(con.execute("SHOW MODELS").df().name))
        print(con.execute("SELECT * FROM m ORDER BY 1, rank").fetchall())
        con.execute("CREATE MODEL big FROM events PREDICT itemId USING user_id = 'userId', epochs = 1")
        print(con.execute("SELECT count(*) FROM sqlrec.arrays WHERE name LIKE 'a.%' AND key = 'big'").fetchone())
    """).splitlines()
    assert out[0] == ("CREATE MODEL n: option approximate needs the faiss library, which is not installed; "
                      "install sqlrec[approx] (pip install 'sqlrec[approx]')")
    assert out[1].startswith("SELECT FROM m: option approximate needs the faiss library") and "sqlrec[approx]" in out[1]
    assert out[2] == "['m']"  # nothing was trained for the refused CREATE
    assert out[3] == str(exact)  # the stored index is not needed to answer: exactly
    assert out[4] == "(0,)"  # 'auto' (the default) without faiss: no index, no error


@pytest.mark.slow
def test_recall_at_10_against_exact_on_movielens():
    from sqlrec.frontend.demo import load_movielens

    con = sqlrec.connect()
    load_movielens(con)
    con.execute("CREATE MODEL m FROM ratings PREDICT movieId USING user_id = 'userId', rating = 'rating', "
                "threshold = 4, epochs = 20, no_components = 64, random_state = 1, approximate = true")
    nlist = con.execute("SELECT info->>'$.approximate_index.nlist' FROM sqlrec.models").fetchone()[0]
    assert int(nlist) == approx.default_nlist(9066)  # 2 sqrt(n): 190 lists, the default nprobe scans 32
    got, want = recs(con, "approximate = true"), recs(con, "approximate = false")
    assert recall(got, want, "userId", "movieId") >= 0.98
    assert recall(recs(con, "nprobe = 2"), want, "userId", "movieId") < 0.98  # nprobe is the knob it turns
