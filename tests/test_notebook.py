"""examples/movielens.ipynb runs top to bottom in a real Jupyter kernel (nbclient), as CI runs it."""

from __future__ import annotations

import os
from pathlib import Path

import nbclient
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "movielens.ipynb"

# Run after the notebook in the same kernel: what its cells left behind must make sense.
CHECKS = """
assert list(recs.columns) == ["rank", "title", "genres", "score"]
assert recs["rank"].tolist() == list(range(1, 11))
assert recs["score"].is_monotonic_decreasing
rated = %sqlrec SELECT m.title FROM ratings r JOIN movies m USING (movieId) WHERE r.userId = :user
assert not set(recs["title"]) & set(rated["title"])  # nothing the user has rated

metrics = %sqlrec SELECT metric, value FROM movie_rec.metrics
metrics = dict(metrics.values.tolist())
assert 0.85 < metrics["auc"] <= 1 and metrics["precision_at_k"] > 0.05, metrics

assert set(models["name"]) == {"movie_rec", "recent_hits"}
assert models.set_index("name").loc["recent_hits", "n_users"] < models.set_index("name").loc["movie_rec", "n_users"]
print("checks passed")
"""


@pytest.mark.slow
def test_example_notebook_runs_top_to_bottom(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert any("load_movielens" in c.source for c in nb.cells)
    nb.cells.append(nbformat.v4.new_code_cell(CHECKS))
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute(env=env)  # raises CellExecutionError, naming the cell, if any cell fails
    outputs = {tag: cell.outputs for cell in nb.cells if cell.cell_type == "code"
               for tag in cell.metadata.get("tags", [])}
    assert "precision_at_k" in outputs["metrics"][0]["data"]["text/plain"]
    assert len(outputs["similar"][0]["data"]["text/plain"].splitlines()) == 6  # header + 5 similar movies
    assert nb.cells[-1].outputs[-1]["text"] == "checks passed\n"
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []
