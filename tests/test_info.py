"""A model's typed metadata (sqlrec.models.info) against the JSON the catalog stores: the same keys
and values as the sqlrec before it wrote, older files load, a crafted one is refused."""

from __future__ import annotations

import json

import pytest

import sqlrec
from sqlrec import errors
from sqlrec.models.info import ModelInfo, ModelOptions
from conftest import FAST, file_database

CREATE = (f"CREATE MODEL m FROM ratings PREDICT movieId USING user_id = 'userId', rating = 'rating', "
          f"items = 'items', {FAST}")
FINETUNE = "FINETUNE m FROM (SELECT userId + 1000 AS userId, movieId, rating FROM ratings WHERE userId < 4)"

# What the sqlrec before typed metadata stored for CREATE and then FINETUNE above (written by that
# code on these conftest ratings and a catalogue of 45 items), literally.
STORED_CREATE = {
    "approximate_index": None, "features": {}, "item_col": "movieId", "item_type": "BIGINT", "kind": "create",
    "n_catalogue_only_items": 5, "n_items": 45, "n_pairs": 720, "n_positives": 600, "n_source_rows": 720,
    "n_users": 60, "notes": None, "num_threads": 1, "rating_col": "rating", "source_database": None,
    "source_sql": "SELECT * FROM ratings", "timestamp_col": None, "user_col": "userId", "user_type": "BIGINT",
    "weight_col": None}
STORED_FINETUNE = dict(
    STORED_CREATE, kind="finetune", n_new_items=0, n_new_users=3, n_pairs=756, n_positives=630, n_source_rows=756,
    n_users=63, notes="incremental: warm start from version 1, 5 epochs on 36 new pairs",
    source_sql='SELECT "userId", "movieId", "rating" FROM (SELECT * FROM ratings) UNION ALL SELECT "userId", '
               '"movieId", "rating" FROM (SELECT userId + 1000 AS userId, movieId, rating FROM ratings WHERE userId < 4)')
DESCRIBED = [
    ("user_id", "userId"), ("item_id", "movieId"), ("user_id_type", "BIGINT"), ("item_id_type", "BIGINT"),
    ("rating", "rating"), ("threshold", "3"), ("weight", None), ("timestamp", None), ("n_users", "60"),
    ("n_items", "45"), ("n_pairs", "720"), ("n_positives", "600"), ("n_source_rows", "720"),
    ("n_recommendations", "10"), ("cold_start", "popularity"), ("training_query", "SELECT * FROM ratings"),
    ("items", "items"), ("n_items_only_in_catalogue", "5")]


@pytest.fixture
def path(tmp_path):
    path = tmp_path / "info.duckdb"
    con = file_database(path)
    con.execute("CREATE TABLE items AS SELECT * FROM range(100, 145) t(movieId)")
    con.execute(CREATE)
    con.close()
    return path


def stored(con, version=1):
    return json.loads(con.execute("SELECT info FROM sqlrec.models WHERE version = ?", [version]).fetchone()[0])


def described(con):
    return con.execute("DESCRIBE m.info").fetchall()[6:]  # after name, engine, version, status and times


def set_info(path, info):
    import duckdb

    duck = duckdb.connect(str(path))
    duck.execute("UPDATE sqlrec.models SET info = ?", [json.dumps(info)])
    duck.close()


def test_typed_info_is_stored_as_the_json_sqlrec_always_wrote_and_read_back_the_same(path):
    con = sqlrec.connect(str(path))
    assert stored(con) == STORED_CREATE
    model = con.router.catalog().load("m", "test")  # read from the file: this connection never trained it
    info = model.info
    assert isinstance(info, ModelInfo) and info.to_dict() == STORED_CREATE
    assert (info.user.column, info.user.type, info.user.n, info.user.n_catalogue_only) == ("userId", "BIGINT", 60, None)
    assert (info.item.column, info.item.n, info.item.n_catalogue_only, info.item.features) == ("movieId", 45, 5, None)
    assert (info.rating_col, info.n_pairs, info.n_positives, info.source_sql) == (
        "rating", 720, 600, "SELECT * FROM ratings")
    assert model.settings == ModelOptions.from_dict(model.options)
    assert (model.settings.threshold, model.settings.items, model.settings.keep_versions) == (3.0, "items", 3)
    assert described(con) == DESCRIBED
    con.execute(FINETUNE)  # the new version copies its parent's info, with FINETUNE's counts
    assert stored(con, 2) == STORED_FINETUNE
    con.close()
    con = sqlrec.connect(str(path), read_only=True)
    info = con.router.catalog().load("m", "test").info
    assert info.to_dict() == STORED_FINETUNE and (info.user.n_new, info.item.n_new) == (3, 0)
    con.close()


def test_info_written_by_older_sqlrec_loads(path):
    # Today's format, then one from before kind, notes, features, num_threads and the approximate index.
    con = sqlrec.connect(str(path))
    want = con.execute("SELECT * FROM m WHERE userId = 1").fetchall()
    con.close()
    older = {k: v for k, v in STORED_CREATE.items()
             if k not in ("kind", "notes", "features", "num_threads", "approximate_index", "source_database")}
    for info in (STORED_CREATE, older):
        set_info(path, info)
        con = sqlrec.connect(str(path), read_only=True)
        assert con.execute("SELECT * FROM m WHERE userId = 1").fetchall() == want
        assert described(con) == DESCRIBED
        assert con.execute("SELECT kind, source, rows FROM m.versions").fetchall() == [
            ("create", "SELECT * FROM ratings", 720)]
        model = con.router.catalog().load("m", "test")
        # keys it lacks read as unset (null); the rest as stored
        assert model.info.to_dict() == dict(STORED_CREATE, kind=info.get("kind"), num_threads=info.get("num_threads"))
        assert not model.info.has_features
        con.close()


def test_unknown_keys_are_ignored_and_left_in_the_file(path):
    set_info(path, dict(STORED_CREATE, written_by_a_newer_sqlrec={"x": 1}))
    con = sqlrec.connect(str(path))
    assert con.router.catalog().load("m", "test").info.to_dict() == STORED_CREATE
    assert stored(con)["written_by_a_newer_sqlrec"] == {"x": 1}
    con.execute(FINETUNE)  # a new version does not carry what this sqlrec cannot keep true
    assert "written_by_a_newer_sqlrec" not in stored(con, 2)
    con.close()


@pytest.mark.parametrize("change, fragment", [
    (dict(n_pairs="many"), "info n_pairs is 'many', not a count"),
    (dict(n_positives=-3), "info n_positives is '-3', not a count"),
    (dict(source_sql=["SELECT 1"]), "info source_sql is \"['SELECT 1']\", not text"),
    (dict(n_catalogue_only_items=True), "info n_catalogue_only_items is 'True', not a count"),
    (dict(features={"item": "SELECT 1"}), "info features.item is not a feature spec"),
    (dict(approximate_index={"nlist": "ten"}), "info approximate_index is not what sqlrec writes"),
])
def test_a_crafted_info_of_the_wrong_types_is_a_corrupt_model(path, change, fragment):
    set_info(path, dict(STORED_CREATE, **change))
    con = sqlrec.connect(str(path), read_only=True)
    with pytest.raises(errors.CorruptModelError) as got:
        con.execute("SELECT * FROM m WHERE userId = 1")
    assert "model 'm' is corrupt" in str(got.value) and fragment in str(got.value)
    con.close()


@pytest.mark.parametrize("patch, fragment", [
    ('{"keep_versions": "all"}', "option keep_versions is 'all', not a count"),
    ('{"cold_start": 3}', "option cold_start is '3', not text"),
    ('{"approximate": 1}', "option approximate is '1', not true, false or 'auto'"),
])
def test_crafted_options_of_the_wrong_types_are_a_corrupt_model(path, patch, fragment):
    import duckdb

    duck = duckdb.connect(str(path))
    duck.execute("UPDATE sqlrec.models SET options = json_merge_patch(options, ?)", [patch])
    duck.close()
    con = sqlrec.connect(str(path), read_only=True)
    with pytest.raises(errors.CorruptModelError) as got:
        con.execute("SELECT * FROM m WHERE userId = 1")
    assert "model 'm' is corrupt" in str(got.value) and fragment in str(got.value)
    con.close()
