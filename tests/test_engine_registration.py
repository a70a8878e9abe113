"""Adding an engine is one class and one sqlrec.engines.register(cls), without touching sqlrec.

The engine here is defined in this file: item-item co-occurrence, a tiny real model with one
parameter and a search space of one. Registered, it passes the whole handler contract
(tests/test_handlers.py), trains with CREATE MODEL ... USING engine = 'toy', answers queries,
is tuned alone and among other engines, and DESCRIBE shows it; unregistered, it is gone.

Also here: engine names appear as string literals only where engines are defined (sqlrec/engines)
and in the compatibility layers, so nothing else in sqlrec keys on an engine's name.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

import test_handlers
from sqlrec.engines import HANDLERS, Handler, Param, register, unregister
from sqlrec.engines.base import EpochCallback
from sqlrec.engines.training_data import TrainingData
from sqlrec.errors import OptionError
from sqlrec.sql.options import Option
from test_handlers import model  # noqa: F401 - the contract's fixture, on this module's `engine`


class CooccurrenceHandler(Handler):
    """score(u, i) = Σ_j X[u, j] C[j, i] / n_i^damping: how often the user's items were liked
    together with i (C = XᵀX without its diagonal, X the positives), damped by i's popularity n_i.
    As a factor model: user vectors are X's rows, item vectors C's columns over n_i^damping."""

    engine = "toy"
    params_spec = (Option("damping", float, 0.5, "popularity exponent dividing an item's co-occurrences",
                          low=0.0, high=1.0),)
    search_space = {"damping": Param("float", 0.0, 1.0)}
    recommender_types = ("user_item", "item_user", "item_item", "user_user")

    def fit(self, data: TrainingData, mask: np.ndarray, *, num_threads: int, on_epoch: EpochCallback) -> None:
        keep = mask & data.positive
        x = sp.csr_matrix((np.ones(int(keep.sum())), (data.rows[keep], data.cols[keep])), shape=data.shape)
        co = (x.T @ x).toarray()
        np.fill_diagonal(co, 0.0)
        counts = np.maximum(np.asarray(x.sum(axis=0)).ravel(), 1.0)
        # C order, as a stored model is read back: the same layout gives the same float32 rounding.
        self.user_vecs = np.ascontiguousarray(x.toarray(), np.float32)
        self.item_vecs = np.ascontiguousarray(co / counts[:, None] ** float(self.params["damping"]), np.float32)
        on_epoch(1, 1)

    def fold_in(self, side: str, targets: np.ndarray, positives: np.ndarray) -> np.ndarray | None:
        """A new user's vector is its row of X, as training would make it; a new item: the generic fold-in."""
        if side != "user":
            return None
        vec = np.zeros(len(targets), np.float32)
        vec[np.unique(np.asarray(positives, np.int64))] = 1.0
        return vec

    def arrays(self) -> dict[str, np.ndarray]:
        return {"user_vecs": self.user_vecs, "item_vecs": self.item_vecs}

    @classmethod
    def from_arrays(cls, params: dict[str, Any], arrays: dict[str, np.ndarray], load_rest: Any = None
                    ) -> "CooccurrenceHandler":
        h = cls(params)
        h.user_vecs, h.item_vecs = arrays["user_vecs"], arrays["item_vecs"]
        return h

    def user_factors(self) -> tuple[np.ndarray, np.ndarray]:
        return self.user_vecs, np.zeros(len(self.user_vecs), np.float32)

    def item_factors(self) -> tuple[np.ndarray, np.ndarray]:
        return self.item_vecs, np.zeros(len(self.item_vecs), np.float32)

    def describe(self) -> dict[str, Any]:
        return {"cooccurring_pairs": int(np.count_nonzero(self.item_vecs))}

    @property
    def epochs(self) -> int:
        return 1


@pytest.fixture
def engine():
    """The toy engine, registered for one test and taken out again after it."""
    register(CooccurrenceHandler)
    yield CooccurrenceHandler.engine
    unregister(CooccurrenceHandler.engine)


# The whole handler contract, collected here again: it runs on the toy (this module's `engine`).
for _test in test_handlers.CONTRACT:
    globals()[_test.__name__] = _test


def test_the_contract_is_every_handler_test():
    names = {n for n in vars(test_handlers) if n.startswith("test_")}
    assert {t.__name__ for t in test_handlers.CONTRACT} == names


BASE = ("CREATE OR REPLACE MODEL m FROM ratings PREDICT movieId USING user_id = 'userId', rating = 'rating', "
        "threshold = 4, random_state = 5, ")


def test_create_query_and_describe(con, engine):
    con.execute(BASE + "engine = 'toy', damping = 0.25")
    assert con.execute("SELECT value FROM m.info WHERE property = 'engine'").fetchall() == [("toy",)]
    described = dict(con.execute("DESCRIBE m.model").fetchall())
    assert described["damping"] == "0.25"
    assert int(described["cooccurring_pairs"]) > 0
    # user 2 liked items of the second taste group only: every recommendation is of that group
    got = [r[0] for r in con.execute("SELECT movieId FROM m WHERE userId = 2").fetchall()]
    assert len(got) == 10 and all(i >= 120 for i in got)
    # the score is the co-occurrence sum, computed here from the ratings
    rows = con.execute("SELECT userId, movieId FROM ratings WHERE rating >= 4").fetchall()
    liked: dict[int, set[int]] = {}
    for u, i in rows:
        liked.setdefault(u, set()).add(i)
    n = {i: sum(i in s for s in liked.values()) for i in range(100, 140)}
    top = con.execute("SELECT movieId, score FROM m WHERE userId = 2 ORDER BY rank LIMIT 1").fetchone()
    expected = sum(1 for s in liked.values() if top[0] in s for j in liked[2] if j in s and j != top[0])
    assert top[1] == pytest.approx(expected / n[top[0]] ** 0.25, rel=1e-5)


def test_tuned_alone_and_among_engines(con, engine):
    con.execute(BASE + "engine = 'toy', tune = true, tune_trials = 4, evaluation = true")
    trials = con.execute("SELECT trial, damping, best FROM m.trials ORDER BY trial").fetchall()
    assert [t[0] for t in trials] == [1, 2, 3, 4]
    assert trials[0][1] == pytest.approx(0.5)  # the first trial is the default
    assert len({t[1] for t in trials}) == 4 and all(0.0 <= t[1] <= 1.0 for t in trials)
    best = next(t for t in trials if t[2])
    assert float(dict(con.execute("DESCRIBE m.model").fetchall())["damping"]) == pytest.approx(best[1], rel=1e-4)

    con.execute(BASE + "tune = true, tune_engines = ['toy', 'svd'], tune_trials = 4")
    cur = con.execute("SELECT * FROM m.trials ORDER BY trial")
    columns = [d[0] for d in cur.description]
    assert columns[:5] == ["trial", "sampler", "engine", "damping", "no_components"]
    got = [dict(zip(columns, r)) for r in cur.fetchall()]
    assert [t["engine"] for t in got[:2]] == ["toy", "svd"]  # each engine's defaults first
    assert all((t["damping"] is None) == (t["engine"] == "svd") for t in got)
    chosen = next(t for t in got if t["best"])["engine"]
    assert con.execute("SELECT value FROM m.info WHERE property = 'engine'").fetchall() == [(chosen,)]


def test_unregistered_it_is_gone(con):
    register(CooccurrenceHandler)
    con.execute(BASE + "engine = 'toy'")
    assert "toy" in [r[0] for r in con.execute("SHOW ML_ENGINES").fetchall()]
    assert unregister("toy") is CooccurrenceHandler
    with pytest.raises(OptionError, match="unknown engine 'toy'"):
        con.execute(BASE + "engine = 'toy'")
    assert "toy" not in [r[0] for r in con.execute("SHOW ML_ENGINES").fetchall()]


def _declared(**attrs: Any) -> type[Handler]:
    return type("Bad", (CooccurrenceHandler,), attrs)


def test_what_a_class_declares_is_read(con):
    """A declaration changes behaviour without a line elsewhere: an engine that ranks alike for
    everyone is refused an approximate index, one without a search space tune = true alone."""
    register(_declared(engine="toy_flat", personalised=False, search_space={}))
    try:
        with pytest.raises(OptionError, match="option approximate: engine 'toy_flat' ranks every user's items by one"):
            con.execute(BASE + "engine = 'toy_flat', approximate = true")
        with pytest.raises(OptionError, match=r"option tune needs an engine with parameters to search: 'lightfm', "
                                              r"'als', 'ease', 'svd' \(got 'toy_flat'\)"):
            con.execute(BASE + "engine = 'toy_flat', tune = true")
        # among other engines it is a yardstick: its trials search nothing (no damping column)
        con.execute(BASE + "engine = 'toy_flat', tune = true, tune_engines = ['toy_flat', 'svd'], tune_trials = 3")
        cur = con.execute("SELECT * FROM m.trials ORDER BY trial")
        assert [d[0] for d in cur.description][:4] == ["trial", "sampler", "engine", "no_components"]
        flat = [r for r in cur.fetchall() if r[2] == "toy_flat"]
        assert flat and all(r[3] is None for r in flat)
    finally:
        unregister("toy_flat")


@pytest.mark.parametrize("attrs, message", [
    ({"engine": "Toy Engine"}, "must be a lowercase name"),
    ({"engine": "lightfm"}, "engine 'lightfm' is registered already"),
    ({"search_space": {"shrink": Param("float", 0.0, 1.0)}}, "searched parameter 'shrink' is none of its params_spec"),
    ({"search_space": {"damping": Param("gaussian")}}, "must be a Param of kind"),
    ({"params_spec": (Option("damping", float, 0.5), Option("tune", bool, False))}, "'tune' is one of sqlrec's own"),
    ({"recommender_types": ("item_item",)}, "must include 'user_item'"),
    ({"summary_params": ("shrink",)}, "summary parameter 'shrink'"),
    ({"incremental_finetune": True}, "incremental_finetune needs a grow"),
])
def test_register_checks_the_declarations(attrs, message):
    with pytest.raises(ValueError, match=message):
        register(_declared(**attrs))
    assert "toy" not in HANDLERS


# Where an engine's name may be a string literal in sqlrec: where engines are defined, and the
# compatibility layers (other products' statements name engines by their own words).
ENGINE_HOMES = ("sqlrec/engines/", "sqlrec/exec/compat/", "sqlrec/sql/compat/")
# Elsewhere, the same words meaning something else, each counted: (file, word) -> occurrences.
OTHER_MEANINGS = {
    # the engine option's default (the default engine's one mention) and LIGHTFM_SCALING, the
    # feature_weight setting named after LightFM's Dataset
    ("sqlrec/sql/options.py", "lightfm"): 2,
    ("sqlrec/sql/options.py", "popularity"): 1,  # cold_start = 'popularity', a fallback policy
    ("sqlrec/exec/training.py", "popularity"): 1,  # cold_start's default policy
    ("sqlrec/exec/lifecycle.py", "popularity"): 1,  # cold_start's default policy
    ("sqlrec/models/stored.py", "popularity"): 2,  # the stored item-popularity array
    ("sqlrec/frontend/plots.py", "popularity"): 2,  # a plot kind
    ("sqlrec/frontend/cli.py", "popularity"): 1,  # the plot kind's command-line choice
}


def _docstrings(tree: ast.AST) -> set[int]:
    return {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}


def engine_literals(root: Path, names: set[str]) -> dict[tuple[str, str], list[int]]:
    """(file, engine name) -> line numbers of string constants equal to an engine name, outside
    ENGINE_HOMES and docstrings."""
    found: dict[tuple[str, str], list[int]] = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).as_posix()
        if rel.startswith(ENGINE_HOMES):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names
                    and id(node) not in docs):
                found.setdefault((rel, node.value), []).append(node.lineno)
    return found


def test_engine_names_live_with_the_engines():
    root = Path(__file__).resolve().parent.parent / "sqlrec"
    found = engine_literals(root, set(HANDLERS))
    stray = {f"{path}:{lines} {word!r}" for (path, word), lines in found.items()
             if len(lines) > OTHER_MEANINGS.get((path, word), 0)}
    assert not stray, "engine names keyed on outside sqlrec/engines: declare it on the engine class"


def test_the_scan_finds_a_stray_name(tmp_path):
    pkg = tmp_path / "sqlrec"
    (pkg / "engines").mkdir(parents=True)
    (pkg / "engines" / "toy.py").write_text('engine = "toy"\n')
    (pkg / "exec").mkdir()
    (pkg / "exec" / "finetune.py").write_text('"""Engines such as "toy" refit."""\n\n'
                                               'def f(model):\n    return model.engine != "toy"  # "toy" here\n')
    assert engine_literals(pkg, {"toy"}) == {("sqlrec/exec/finetune.py", "toy"): [4]}
