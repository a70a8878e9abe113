"""Pictures of a model, drawn from its relations through SQL (matplotlib, an optional extra).

    from sqlrec.frontend import plots
    plots.history(con, "movie_rec")                    # learning curve: metrics vs epoch
    plots.embeddings(con, "movie_rec", label_sql="SELECT movieId, title FROM movies")
    plots.popularity(con, "movie_rec")                 # recommended vs consumed items

Each function returns a matplotlib Figure (built without pyplot, so nothing is shown twice in
a notebook and no GUI backend is needed). All data comes from SQL: `m.history`,
`m.item_embeddings`, `m.info` (the training query, rerun to count what was consumed) and
`SELECT * FROM m` (everyone's top-N). The CLI (`sqlrec plot`) and the magic
(`%sqlrec --plot`) call these.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from sqlrec.api.vocabulary import SYSTEM
from sqlrec.errors import ModelNotFoundError, ProgrammingError, SqlRecError, did_you_mean
from sqlrec.sql.quoting import quote_ident

PLOTS = ("history", "embeddings", "popularity")
N_LABELS = 15
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_NOT_METRICS = {"epoch", "seconds", "split", "k"}


class PlotError(SqlRecError, ProgrammingError):
    """A plot that cannot be drawn: matplotlib missing, a model without history, bad label query."""


def _figure(**kwargs: Any) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise PlotError("plots need matplotlib: pip install 'sqlrec[plot]'") from exc
    return Figure(**kwargs)


def _model(con: Any, name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise PlotError(f"not a model name: {name!r}")
    models = [m.name for m in con.models()]
    if name not in models:
        lower = {m.lower(): m for m in models}
        if name.lower() in lower:
            return lower[name.lower()]
        raise ModelNotFoundError(f"no model named {name!r}{did_you_mean(name, models)}")
    return name


def _info(con: Any, name: str) -> dict[str, Any]:
    return dict(con.execute(f"SELECT property, value FROM {name}.info").fetchall())


# --- learning curve ------------------------------------------------------------------------------


def history(con: Any, name: str, metrics: list[str] | None = None) -> Any:
    """Metrics of the held-out fit after every epoch (one line per metric) vs epoch."""
    name = _model(con, name)
    cur = con.execute(f"SELECT * FROM {name}.history ORDER BY epoch")
    columns = [d[0] for d in cur.description]
    rows = cur.fetchall()
    if not rows:
        raise PlotError(f"model {name} has no history: create it with evaluation = true "
                        "(and history left on) to record a learning curve")
    data = {c: [r[i] for r in rows] for i, c in enumerate(columns)}
    wanted = metrics or [c for c in columns if c not in _NOT_METRICS]
    unknown = [m for m in wanted if m not in data]
    if unknown:
        raise PlotError(f"{name}.history has no column {unknown[0]!r} "
                        f"(metrics: {', '.join(c for c in columns if c not in _NOT_METRICS)})")
    wanted = [m for m in wanted if any(v is not None for v in data[m])]
    epochs = np.asarray(data["epoch"], float)
    fig = _figure(figsize=(8, 5), layout="constrained")
    ax = fig.add_subplot()
    for metric in wanted:
        values = np.asarray([np.nan if v is None else v for v in data[metric]], float)
        ax.plot(epochs, values, marker="o" if len(epochs) <= 30 else None, markersize=3, label=metric)
    k = data.get("k", [None])[0]
    ax.set_xlabel("epoch")
    ax.set_ylabel("metric" + (f" (k = {k})" if k is not None else ""))
    ax.set_title(f"{name}: learning curve on the held-out split")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="small")
    return fig


# --- embeddings map ------------------------------------------------------------------------------


def pca_2d(vectors: np.ndarray) -> np.ndarray:
    """The first two principal components (numpy SVD of the centred vectors)."""
    x = np.asarray(vectors, float)
    x = x - x.mean(axis=0)
    if x.shape[1] == 0:
        return np.zeros((len(x), 2))
    u, s, _vt = np.linalg.svd(x, full_matrices=False)
    out = u[:, :2] * s[:2]
    if out.shape[1] < 2:
        out = np.hstack([out, np.zeros((len(x), 2 - out.shape[1]))])
    return out


def kmeans(points: np.ndarray, k: int, seed: int = 0, iterations: int = 50) -> np.ndarray:
    """Cluster labels of Lloyd's k-means with k-means++ seeding (deterministic for a seed)."""
    x = np.asarray(points, float)
    n = len(x)
    k = max(1, min(k, n))
    rng = np.random.default_rng(seed)
    centres = [x[rng.integers(n)]]
    for _ in range(1, k):
        d2 = np.min(((x[:, None, :] - np.asarray(centres)[None]) ** 2).sum(-1), axis=1)
        total = d2.sum()
        centres.append(x[rng.choice(n, p=d2 / total)] if total > 0 else x[rng.integers(n)])
    c = np.asarray(centres)
    labels = np.zeros(n, int)
    for _ in range(iterations):
        d2 = ((x[:, None, :] - c[None]) ** 2).sum(-1)
        new = d2.argmin(axis=1)
        if _ and np.array_equal(new, labels):
            break
        labels = new
        for j in range(k):
            members = x[labels == j]
            if len(members):
                c[j] = members.mean(axis=0)
    return labels


def _consumed(con: Any, name: str) -> dict[Any, int]:
    """Item -> training interactions (positives when the model has a rating threshold)."""
    info = _info(con, name)
    item = quote_ident(info["item_id"])
    where = ""
    if info.get("rating") and info.get("threshold") not in (None, "None"):
        where = f" WHERE {quote_ident(info['rating'])} >= {float(info['threshold'])!r}"
    # count_star is DuckDB's own (SYSTEM): the file may carry a macro of that name.
    sql = f"SELECT {item}, {SYSTEM}.count_star() FROM ({info['training_query']}) AS t{where} GROUP BY 1"
    try:
        return dict(con.execute(sql).fetchall())
    except Exception as exc:  # noqa: BLE001 - the training data may be gone
        raise PlotError(f"cannot count what model {name} was trained on: its training query "
                        f"failed ({str(exc).splitlines()[0]})") from exc


def _labels(con: Any, label_sql: str) -> dict[Any, str]:
    try:
        cur = con.execute(label_sql)
        rows = cur.fetchall()
    except Exception as exc:  # noqa: BLE001
        raise PlotError(f"label query failed: {str(exc).splitlines()[0]}") from exc
    if cur.description is None or len(cur.description) < 2:
        raise PlotError("the label query must return two columns: item id and label "
                        "(SELECT movieId, title FROM movies)")
    return {r[0]: "" if r[1] is None else str(r[1]) for r in rows}


def embeddings(con: Any, name: str, label_sql: str | None = None, n_clusters: int = 8,
               n_labels: int = N_LABELS, seed: int = 0) -> Any:
    """Item embeddings projected on their first two principal components, coloured by k-means
    cluster (in the full embedding space); the most consumed items are labelled, with the
    second column of `label_sql` (SELECT id, title FROM ...) when given, else their id."""
    name = _model(con, name)
    rows = con.execute(f"SELECT id, vector FROM {name}.item_embeddings ORDER BY id").fetchall()
    if not rows:
        raise PlotError(f"model {name} has no item embeddings")
    ids = [r[0] for r in rows]
    vectors = np.asarray([r[1] if r[1] is not None else [] for r in rows], float)
    if vectors.ndim != 2:
        vectors = np.zeros((len(ids), 0))
    xy = pca_2d(vectors)
    clusters = kmeans(vectors if vectors.shape[1] else xy, n_clusters, seed=seed)
    try:
        counts = _consumed(con, name)
    except PlotError:  # label the items with the largest bias instead
        counts = {r[0]: r[1] for r in con.execute(f"SELECT id, bias FROM {name}.item_embeddings").fetchall()}
    names = _labels(con, label_sql) if label_sql else {}
    pop = np.asarray([counts.get(i) or 0 for i in ids], float)
    top = sorted(range(len(ids)), key=lambda j: (-pop[j], j))[:n_labels]

    fig = _figure(figsize=(9, 7), layout="constrained")
    ax = fig.add_subplot()
    ax.scatter(xy[:, 0], xy[:, 1], c=clusters, cmap="tab10", s=12, alpha=0.75, linewidths=0)
    for j in top:
        text = names.get(ids[j], str(ids[j])) if names else str(ids[j])
        if len(text) > 40:
            text = text[:39] + "…"
        ax.annotate(text, xy[j], xytext=(3, 3), textcoords="offset points", fontsize=8)
        ax.plot(*xy[j], "o", ms=5, mfc="none", mec="black", mew=0.8)
    ax.set_title(f"{name}: item embeddings (PCA), {len(set(clusters.tolist()))} k-means clusters, "
                 f"the {len(top)} most consumed items labelled", fontsize="medium")
    ax.set_xlabel("principal component 1")
    ax.set_ylabel("principal component 2")
    ax.grid(True, alpha=0.3)
    return fig


# --- recommended vs consumed ---------------------------------------------------------------------


def popularity(con: Any, name: str) -> Any:
    """Items ranked by training popularity (x) against their share of all training interactions
    and their share of everyone's top-N recommendations (y, log scale)."""
    name = _model(con, name)
    info = _info(con, name)
    ids = [r[0] for r in con.execute(f"SELECT id FROM {name}.item_embeddings").fetchall()]
    consumed = _consumed(con, name)
    item = quote_ident(info["item_id"])
    recommended = dict(con.execute(f"SELECT {item}, {SYSTEM}.count_star() FROM {name} GROUP BY 1").fetchall())
    if not ids:
        raise PlotError(f"model {name} has no items")
    cons = np.asarray([consumed.get(i) or 0 for i in ids], float)
    recs = np.asarray([recommended.get(i) or 0 for i in ids], float)
    order = np.lexsort((np.arange(len(ids)), -cons))
    cons, recs = cons[order], recs[order]
    cons_share = cons / max(cons.sum(), 1)
    rec_share = recs / max(recs.sum(), 1)
    rank = np.arange(1, len(ids) + 1)
    head = max(1, int(round(len(ids) * 0.1)))

    fig = _figure(figsize=(9, 5.5), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(rank[cons_share > 0], cons_share[cons_share > 0], color="tab:gray", lw=1.5,
            label="share of training interactions")
    hit = rec_share > 0
    ax.scatter(rank[hit], rec_share[hit], s=10, color="tab:red", alpha=0.7,
               label="share of recommendations (top-N of every user)")
    ax.axvline(head + 0.5, color="black", ls=":", lw=0.8)
    ax.set_yscale("log")
    if len(ids) > 50:
        ax.set_xscale("log")
    ax.set_xlabel("items ranked by training popularity (1 = most consumed)")
    ax.set_ylabel("share")
    covered = int(hit.sum())
    ax.set_title(f"{name}: {covered} of {len(ids)} items recommended ({covered / len(ids):.0%})\n"
                 f"the top 10% most consumed get {rec_share[:head].sum():.0%} of recommendations "
                 f"({cons_share[:head].sum():.0%} of interactions)", fontsize="medium")
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize="small")
    return fig


def plot(con: Any, name: str, kind: str, label_sql: str | None = None) -> Any:
    """The figure of one kind: history, embeddings or popularity."""
    if label_sql and kind != "embeddings":
        raise PlotError("a label query only applies to the embeddings plot")
    if kind == "history":
        fig = history(con, name)
    elif kind == "embeddings":
        fig = embeddings(con, name, label_sql=label_sql)
    elif kind == "popularity":
        fig = popularity(con, name)
    else:
        raise PlotError(f"unknown plot kind {kind!r} (choose from {', '.join(PLOTS)})")
    return fig
