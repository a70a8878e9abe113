"""Hyperparameter search: CREATE MODEL ... USING tune = true, and m.trials."""

from __future__ import annotations

import numpy as np
import pytest

from sqlrec.engines import HANDLERS, LightFMHandler, space
from sqlrec.exec import training
from sqlrec.exec import tuning
from sqlrec.errors import OptionError
from sqlrec.numeric.evaluation import METRIC_NAMES

BASE = ("CREATE MODEL {name} FROM ratings PREDICT movieId USING user_id = 'userId', rating = 'rating', "
        "threshold = 4, random_state = 7, ")
TUNE = "tune = true, tune_trials = 3, epochs = 3, "


@pytest.fixture(autouse=True)
def random_search(monkeypatch):
    """The built-in random search, whether or not optuna is installed (deterministic tests)."""
    monkeypatch.setattr(tuning, "_optuna", lambda: None)


def rows(con, sql):
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def params(con, name):
    return dict(con.execute(f"SELECT parameter, value FROM {name}.model").fetchall())


def chosen(trials, metric="precision_at_k"):
    """The best trial, checked against the choice rule: the trials refitted on the second
    validation split are the best few (tuning.RECHECK) and each engine's best on the first; the
    chosen one is one of them, and every refitted trial with a better mean of the two scores is
    of an engine with more searched parameters (the simplest within one standard error wins)."""
    first = sorted(trials, key=lambda t: -t[metric])
    engine_best = {t.get("engine"): t["trial"] for t in reversed(first)}
    expected = {t["trial"] for t in first[:tuning.RECHECK]} | set(engine_best.values())
    rechecked = [t for t in trials if t["second_validation"] is not None]
    best = next(t for t in trials if t["best"])
    if len(trials) < 2:
        return best
    assert {t["trial"] for t in rechecked} == expected
    assert best in rechecked

    def mean(t):
        return (t[metric] + t["second_validation"]) / 2

    size = {t["trial"]: len(HANDLERS[t.get("engine") or "lightfm"].search_space) for t in trials}
    for t in rechecked:
        if mean(t) > mean(best):
            assert size[t["trial"]] > size[best["trial"]]
    return best


def test_trials_relation(con):
    con.execute(BASE.format(name="tm") + TUNE + "evaluation = true")
    trials = rows(con, "SELECT * FROM tm.trials ORDER BY trial")
    assert [t["trial"] for t in trials] == [1, 2, 3]
    searched = [p for p in LightFMHandler.search_space if p != "epochs"]  # epochs was given in USING
    assert list(trials[0]) == ["trial", "sampler", *searched, "split", "k", *METRIC_NAMES, "second_validation",
                               "seconds", "best"]
    assert {t["sampler"] for t in trials} == {"random"}
    assert {t["split"] for t in trials} == {"validation"}
    assert sum(t["best"] for t in trials) == 1
    best = chosen(trials)
    assert sum(t["second_validation"] is not None for t in trials) == tuning.RECHECK == 3
    for t in trials:
        assert space.COMPONENTS[0] <= t["no_components"] <= space.COMPONENTS[1]
        assert 0.005 <= t["learning_rate"] <= 0.1
        assert t["learning_schedule"] in ("adagrad", "adadelta")
        assert t["loss"] in ("warp", "bpr", "warp-kos")
        for alpha in ("item_alpha", "user_alpha"):
            assert t[alpha] == 0 or 1e-7 <= t[alpha] <= 1e-3
        assert t["seconds"] >= 0
    assert con.execute("DESCRIBE tm.trials").fetchall() == con.execute("SELECT * FROM tm.trials").fetchall()
    assert "trials" in dict(con.execute("DESCRIBE tm").fetchall())

    # The best trial's params are the stored model's; the explicit ones are as given.
    stored = params(con, "tm")
    assert int(stored["no_components"]) == best["no_components"]
    assert float(stored["learning_rate"]) == pytest.approx(best["learning_rate"], rel=1e-5)
    assert stored["learning_schedule"] == best["learning_schedule"]
    assert stored["loss"] == best["loss"]
    assert float(stored["item_alpha"]) == pytest.approx(best["item_alpha"], rel=1e-5)
    assert float(stored["user_alpha"]) == pytest.approx(best["user_alpha"], rel=1e-5)
    assert stored["epochs"] == "3" and stored["epochs_trained"] == "3"
    assert stored["tuning_best_trial"] == str(best["trial"])


def test_explicit_options_are_not_searched(con):
    con.execute(BASE.format(name="tx") + TUNE + "no_components = 8, loss = 'bpr', learning_rate = 0.05, "
                "tune_metric = 'auc'")
    trials = rows(con, "SELECT * FROM tx.trials")
    assert len(trials) == 3
    for fixed in ("no_components", "loss", "learning_rate", "epochs"):
        assert fixed not in trials[0]
    assert "learning_schedule" in trials[0] and "item_alpha" in trials[0]
    best = chosen(trials, "auc")
    stored = params(con, "tx")
    assert (stored["no_components"], stored["loss"], stored["learning_rate"]) == ("8", "bpr", "0.05")
    assert stored["learning_schedule"] == best["learning_schedule"]
    # Without evaluation there are no test metrics, only the validation trials.
    assert con.execute("SELECT count(*) FROM tx.metrics").fetchone() == (0,)


def test_tune_seconds_stops_starting_trials(con):
    con.execute(BASE.format(name="tb") + "tune = true, tune_trials = 50, tune_seconds = 0.000001, epochs = 2")
    assert con.execute("SELECT count(*), bool_and(best) FROM tb.trials").fetchone() == (1, True)


def test_trials_never_see_the_test_split(con, monkeypatch):
    fits: list[tuple[str, np.ndarray]] = []
    original = training.Trainer.fit

    def spy(self, handler, mask, desc, *args, **kwargs):
        fits.append((desc, mask.copy()))
        return original(self, handler, mask, desc, *args, **kwargs)

    monkeypatch.setattr(training.Trainer, "fit", spy)
    con.execute(BASE.format(name="tt") + TUNE + "evaluation = true")
    tuning_masks = [m for desc, m in fits if desc.startswith("tuning")]
    held_out = [m for desc, m in fits if desc.startswith("evaluating")]
    # 3 trials, then the best 3 refitted on a second validation split (another carve of the same part)
    assert len(tuning_masks) == 6 and len(held_out) == 1
    assert not np.array_equal(tuning_masks[0], tuning_masks[3])
    for m in tuning_masks:  # trials train on a subset of the held-out fit's training part
        assert not (m & ~held_out[0]).any() and m.sum() < held_out[0].sum()

    # The test split and its metrics are those of the same model without tuning.
    con.execute(BASE.format(name="plain") + "epochs = 3, evaluation = true")
    for name in ("tt", "plain"):
        assert con.execute(f"SELECT DISTINCT n_test_users, split, test_size FROM {name}.metrics").fetchall() \
            == con.execute("SELECT DISTINCT n_test_users, split, test_size FROM plain.metrics").fetchall()
    n_test = [rows(con, f"EVALUATE MODEL {n}")[0]["n_test"] for n in ("tt", "plain")]
    assert n_test[0] == n_test[1] > 0


def test_untuned_model_has_no_trials(trained):
    assert trained.execute("SELECT count(*) FROM movie_rec.trials").fetchone() == (0,)


@pytest.mark.parametrize("using, message", [
    ("engine = 'popularity', tune = true", "option tune needs an engine with parameters to search: "
     "'lightfm', 'als', 'ease', 'svd' \\(got 'popularity'\\); or tune_engines naming several"),
    ("tune_engines = ['als', 'svd']", "option tune_engines needs tune = true"),
    ("tune = true, tune_engines = ['lightfm', 'alss']", "option tune_engines: unknown engine 'alss'.*did you mean 'als'"),
    ("tune = true, tune_engines = 5", r"option tune_engines must be a quoted string or a list of them"),
    ("tune = true, tune_engines = ['lightfm', 'als'], item_features = 'SELECT 1'",
     "option tune_engines: engine 'als' does not learn from item_features"),
    ("tune = true, regularization = 3", "unknown option 'regularization'"),
    ("tune = true, tune_trials = 0", "option tune_trials must be >= 1"),
    ("tune = true, tune_metric = 'precision'", "option tune_metric must be one of"),
    ("tune = true, tune_seconds = 0", "option tune_seconds must be > 0"),
])
def test_errors(con, using, message):
    with pytest.raises(OptionError, match=message):
        con.execute(BASE.format(name="bad") + using)


def test_first_trial_is_the_defaults(con):
    from sqlrec.engines.lightfm import OPTIONS

    defaults = {o.name: o.default for o in OPTIONS}
    con.execute(BASE.format(name="td") + "tune = true, tune_trials = 2, epochs = 3, no_components = 8")
    first = rows(con, "SELECT * FROM td.trials WHERE trial = 1")[0]
    for name in ("learning_rate", "learning_schedule", "loss", "item_alpha", "user_alpha"):
        assert first[name] == pytest.approx(defaults[name]) if isinstance(defaults[name], float) else first[name] == defaults[name]
    assert "no_components" not in first  # given in USING: fixed, not searched


def test_tunable_engines_are_those_with_a_search_space(con):
    from sqlrec.engines import tunable_engines

    assert set(tunable_engines()) == {e for e, cls in HANDLERS.items() if cls.search_space}
    for engine, cls in HANDLERS.items():  # every searched name is one of the engine's options
        assert set(cls.search_space) <= {o.name for o in cls.params_spec}
    # tune = true alone refuses exactly the engines without a search space, naming the others
    for engine, cls in HANDLERS.items():
        if cls.search_space:
            continue
        with pytest.raises(OptionError, match=", ".join(f"'{e}'" for e in sorted(
                tunable_engines(), key=lambda e: e != "lightfm")) + f" \\(got '{engine}'\\)"):
            con.execute(BASE.format(name="bad") + f"engine = '{engine}', tune = true")


@pytest.mark.parametrize("engine, searched", [
    ("als", ["no_components", "regularization", "alpha", "weighting", "below_threshold_weight"]),
    ("ease", ["regularization", "below_threshold_weight"]),
    ("svd", ["no_components"]),
])
def test_other_engines_tune_alone(con, engine, searched):
    extra = "epochs = 3, " if engine == "als" else ""
    con.execute(BASE.format(name="t1") + f"engine = '{engine}', tune = true, tune_trials = 3, {extra}"
                "evaluation = true")
    trials = rows(con, "SELECT * FROM t1.trials ORDER BY trial")
    assert list(trials[0])[:2 + len(searched)] == ["trial", "sampler", *searched]  # no engine column
    best = chosen(trials)
    stored = params(con, "t1")
    if engine == "ease":  # the rank is the user's (default: exact here), not searched
        assert float(stored["regularization"]) == pytest.approx(best["regularization"], rel=1e-4)
        assert float(stored["below_threshold_weight"]) == pytest.approx(best["below_threshold_weight"], rel=1e-4, abs=1e-6)
        assert all(10 <= t["regularization"] <= 5000 and 0 <= t["below_threshold_weight"] <= 1 for t in trials)
        return
    assert int(stored["no_components"]) == best["no_components"]
    if engine == "als":
        assert float(stored["regularization"]) == pytest.approx(best["regularization"], rel=1e-4)
        assert stored["weighting"] == best["weighting"] and stored["epochs"] == "3"
        defaults = {o.name: o.default for o in training.get_handler("als", "").params_spec}
        assert trials[0]["regularization"] == defaults["regularization"]  # trial 1: the defaults
        for t in trials:
            assert 0.01 <= t["regularization"] <= 100 and 0.1 <= t["alpha"] <= 50
            assert t["weighting"] in ("raw", "log1p", "bm25", "tfidf")


def test_tune_across_engines(con):
    con.execute(BASE.format(name="ta") + "tune = true, tune_engines = ['lightfm', 'als', 'svd', 'popularity'], "
                "tune_trials = 7, epochs = 3, regularization = 2, evaluation = true")
    trials = rows(con, "SELECT * FROM ta.trials ORDER BY trial")
    assert [t["engine"] for t in trials[:4]] == ["lightfm", "als", "svd", "popularity"]  # each one's defaults
    assert len(trials) == 7 and list(trials[0])[:3] == ["trial", "sampler", "engine"]
    by_engine = {t["engine"]: t for t in trials}
    assert by_engine["svd"]["learning_rate"] is None and by_engine["lightfm"]["weighting"] is None
    assert "regularization" not in trials[0] and "epochs" not in trials[0]  # fixed in USING: not searched
    assert by_engine["popularity"]["no_components"] is None
    best = chosen(trials)
    # The best trial's engine and parameters were retrained on all data.
    assert con.execute("SELECT value FROM ta.info WHERE property = 'engine'").fetchone() == (best["engine"],)
    assert con.router.model("ta").handler.engine == best["engine"]
    stored = params(con, "ta")
    if best["no_components"] is not None:
        assert int(stored["no_components"]) == best["no_components"]
    if best["engine"] == "als":
        assert float(stored["regularization"]) == 2.0
    assert con.execute("SELECT count(*) > 0 FROM ta.metrics").fetchone() == (True,)


def test_one_standard_error_rule():
    rows = [{"engine": "als", "precision_at_k": 0.160, "second_validation": 0.150},   # mean 0.155
            {"engine": "ease", "precision_at_k": 0.158, "second_validation": 0.148},  # mean 0.153
            {"engine": "ease", "precision_at_k": 0.150, "second_validation": 0.146},  # mean 0.148
            {"engine": "lightfm", "precision_at_k": 0.140, "second_validation": 0.130}]
    # within one standard error (0.005) of als' mean: the simpler ease, its better trial
    assert tuning._simplest_near(rows, {0: 0.005, 1: 0.005, 2: 0.005, 3: 0.005}, "precision_at_k", 1.0) == 1
    # als leads by more than its error: als
    assert tuning._simplest_near(rows, {0: 0.001, 1: 0.001, 2: 0.001, 3: 0.001}, "precision_at_k", 1.0) == 0
    # lower is better: the signs turn
    assert tuning._simplest_near(rows, {0: 0.001, 3: 0.001}, "precision_at_k", -1.0) == 3
    assert tuning._simplest_near(rows, {0: 0.001}, "precision_at_k", 1.0) is None


def test_time_shares_give_cheap_engines_more_trials():
    done = [{"engine": "lightfm", "seconds": 3.0}, {"engine": "als", "seconds": 0.1}]
    assert tuning._next_engine(["lightfm", "als", "svd"], done, None) == "svd"  # defaults first
    done.append({"engine": "svd", "seconds": 0.2})
    picks = []
    for _ in range(10):
        e = tuning._next_engine(["lightfm", "als", "svd"], done, None)
        picks.append(e)
        done.append({"engine": e, "seconds": {"lightfm": 3.0, "als": 0.1, "svd": 0.2}[e]})
    assert picks.count("als") > picks.count("svd") > picks.count("lightfm") == 0
    # With a budget, an engine whose mean trial would not fit in the time left is not started.
    assert tuning._next_engine(["lightfm"], done, 1.0) is None
    assert tuning._next_engine(["lightfm", "als"], done, 1.0) == "als"


def test_tune_seconds_across_engines(con):
    con.execute(BASE.format(name="tq") + "tune = true, tune_engines = ['svd', 'als'], tune_trials = 50, "
                "tune_seconds = 0.000001")
    assert rows(con, "SELECT engine, best FROM tq.trials") == [{"engine": "svd", "best": True}]
