"""Plots (sqlrec.frontend.plots, `sqlrec plot`, `%sqlrec --plot`): figures drawn from the model relations."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from matplotlib.figure import Figure  # noqa: E402

import sqlrec  # noqa: E402
from conftest import FAST, make_ratings  # noqa: E402
from sqlrec.frontend import plots  # noqa: E402

EVAL = ("CREATE MODEL ev FROM ratings PREDICT movieId USING user_id = 'userId', rating = 'rating', "
        f"threshold = 4, evaluation = true, {FAST}")
MOVIES = "CREATE TABLE movies AS SELECT DISTINCT movieId, 'Movie ' || movieId AS title FROM ratings"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def evaluated(trained):
    trained.execute(EVAL)
    trained.execute(MOVIES)
    return trained


def test_history_has_one_line_per_metric(evaluated):
    metrics = [c for c in (d[0] for d in evaluated.execute("SELECT * FROM ev.history").description)
               if c not in ("epoch", "seconds", "split", "k")]
    fig = plots.history(evaluated, "ev")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.lines) == len(metrics)
    assert [line.get_label() for line in ax.lines] == metrics
    assert list(ax.lines[0].get_xdata()) == [1, 2, 3, 4, 5]
    auc = [r[0] for r in evaluated.execute("SELECT auc FROM ev.history ORDER BY epoch").fetchall()]
    np.testing.assert_allclose(ax.lines[metrics.index("auc")].get_ydata(), auc)
    assert len(plots.history(evaluated, "ev", metrics=["auc", "ndcg_at_k"]).axes[0].lines) == 2


def test_history_error_without_evaluation(trained):
    with pytest.raises(plots.PlotError, match="model movie_rec has no history.*evaluation = true"):
        plots.history(trained, "movie_rec")
    with pytest.raises(sqlrec.ProgrammingError, match="no model named 'movie_re'.*did you mean 'movie_rec'"):
        plots.history(trained, "movie_re")


def test_embeddings_map_scatter_clusters_and_labels(evaluated):
    fig = plots.embeddings(evaluated, "ev", label_sql="SELECT movieId, title FROM movies")
    ax = fig.axes[0]
    n_items = evaluated.execute("SELECT count(*) FROM ev.item_embeddings").fetchone()[0]
    assert len(ax.collections) == 1
    scatter = ax.collections[0]
    assert len(scatter.get_offsets()) == n_items == 40
    assert len(set(scatter.get_array().tolist())) > 1  # coloured by more than one cluster
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == plots.N_LABELS
    assert all(t.startswith("Movie ") for t in texts)
    # the most consumed item (positives, rating >= 4) is labelled
    top = evaluated.execute("SELECT movieId FROM ratings WHERE rating >= 4 GROUP BY 1 "
                            "ORDER BY count(*) DESC, movieId LIMIT 1").fetchone()[0]
    assert f"Movie {top}" in texts
    # without a label query the ids are the labels
    ids = [t.get_text() for t in plots.embeddings(evaluated, "ev", n_labels=3).axes[0].texts]
    assert len(ids) == 3 and str(top) in ids


def test_embeddings_pca_and_kmeans_are_deterministic(evaluated):
    vectors = np.asarray([r[0] for r in evaluated.execute("SELECT vector FROM ev.item_embeddings").fetchall()])
    xy = plots.pca_2d(vectors)
    assert xy.shape == (40, 2)
    centred = vectors - vectors.mean(axis=0)
    assert np.var(xy[:, 0]) >= np.var(xy[:, 1])
    np.testing.assert_allclose(np.sum(xy ** 2), np.sum(np.linalg.svd(centred, compute_uv=False)[:2] ** 2))
    a, b = plots.kmeans(vectors, 4, seed=1), plots.kmeans(vectors, 4, seed=1)
    assert np.array_equal(a, b) and set(a.tolist()) == {0, 1, 2, 3}
    # two obvious blobs are separated
    blobs = np.vstack([np.zeros((10, 2)), np.full((10, 2), 10.0)]) + np.random.default_rng(0).normal(0, 0.1, (20, 2))
    labels = plots.kmeans(blobs, 2)
    assert len(set(labels[:10])) == 1 and len(set(labels[10:])) == 1 and labels[0] != labels[10]


def test_bad_label_query(evaluated):
    with pytest.raises(plots.PlotError, match="two columns"):
        plots.embeddings(evaluated, "ev", label_sql="SELECT movieId FROM movies")
    with pytest.raises(plots.PlotError, match="label query failed"):
        plots.embeddings(evaluated, "ev", label_sql="SELECT movieId, title FROM nowhere")
    with pytest.raises(plots.PlotError, match="only applies to the embeddings"):
        plots.plot(evaluated, "ev", "history", label_sql="SELECT movieId, title FROM movies")


def test_popularity_recommended_vs_consumed(evaluated):
    fig = plots.popularity(evaluated, "ev")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    consumed = ax.lines[0].get_ydata()
    assert len(consumed) == 40 and np.all(np.diff(consumed) <= 0)  # ranked by training popularity
    np.testing.assert_allclose(consumed.sum(), 1.0)
    rec_share = np.asarray(ax.collections[0].get_offsets())[:, 1]
    n_recommended = evaluated.execute("SELECT count(DISTINCT movieId) FROM ev").fetchone()[0]
    assert len(rec_share) == n_recommended
    np.testing.assert_allclose(rec_share.sum(), 1.0, rtol=1e-6)
    assert f"{n_recommended} of 40 items recommended" in ax.get_title()


def test_missing_matplotlib_is_a_readable_error(monkeypatch, trained):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(plots.PlotError, match=r"plots need matplotlib: pip install 'sqlrec\[plot\]'"):
        plots.embeddings(trained, "movie_rec")


# --- CLI and magic -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("plots") / "shop.duckdb")
    con = sqlrec.connect(path)
    con.register("ratings_df", make_ratings())
    con.execute("CREATE TABLE ratings AS SELECT * FROM ratings_df")
    con.execute(MOVIES)
    con.execute(EVAL)
    con.execute("CREATE MODEL plain FROM ratings PREDICT movieId USING user_id = 'userId', " + FAST)
    con.close()
    return path


def plot_cmd(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sqlrec", "plot", *args], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.slow
def test_cli_writes_pngs(database, tmp_path):
    for kind, extra in (("history", []), ("popularity", []),
                        ("embeddings", ["--label", "SELECT movieId, title FROM movies"])):
        out = tmp_path / f"{kind}.png"
        proc = plot_cmd(database, "ev", "--kind", kind, "-o", str(out), *extra)
        assert proc.returncode == 0, proc.stderr
        data = out.read_bytes()
        assert data[:8] == PNG and len(data) > 10_000


@pytest.mark.slow
def test_cli_errors_are_one_line(database, tmp_path):
    out = tmp_path / "x.png"
    proc = plot_cmd(database, "plain", "--kind", "history", "-o", str(out))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "Error: model plain has no history: create it with evaluation = true "
        "(and history left on) to record a learning curve"]
    assert not out.exists()
    proc = plot_cmd(str(tmp_path / "missing.duckdb"), "ev", "-o", str(out))
    assert proc.returncode == 1 and proc.stderr.startswith("Error: no database file")
    proc = plot_cmd(database, "ev", "--kind", "pie", "-o", str(out))
    assert proc.returncode == 2 and "'pie' is not one of" in proc.stderr


@pytest.mark.slow
def test_cli_help():
    proc = subprocess.run([sys.executable, "-m", "sqlrec", "plot", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert "history|embeddings|popularity" in proc.stdout and "--label SQL" in proc.stdout


def test_magic_returns_a_figure(database):
    from IPython.core.interactiveshell import InteractiveShell

    from test_magic import run

    shell = InteractiveShell.instance()
    run(shell, "%load_ext sqlrec")
    magics = shell.magics_manager.registry["SqlrecMagics"]
    magics.raise_errors = True
    try:
        run(shell, f"%sqlrec --connect {database}")
        fig = run(shell, '%sqlrec --plot embeddings ev --label "SELECT movieId, title FROM movies"').result
        assert isinstance(fig, Figure)
        assert "Movie " in " ".join(t.get_text() for t in fig.axes[0].texts)
        assert isinstance(run(shell, "%sqlrec --plot history ev").result, Figure)
        result = run(shell, "%sqlrec --plot history plain")
        assert "has no history" in str(result.error_in_exec)
        result = run(shell, "%sqlrec --plot history")
        assert "usage: %sqlrec --plot" in str(result.error_in_exec)
    finally:
        magics.close()
