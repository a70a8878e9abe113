"""What a key the model learned nothing about gets: the cold_start fallback (most popular targets),
and which known ids are such keys (catalogue ids without interactions or features)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    from sqlrec.models.model import Side


def blank(key: "Side", pos: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Known ids that only the catalogue gave (options users / items) and no feature scores: nothing
    was learned about them, so they get the fallback as unknown ids do (never cold_start's error)."""
    blank = np.zeros(len(pos), bool)
    if f"n_catalogue_only_{key.name}s" not in key.model.info or not known.any():
        return blank
    rows, indptr = pos[known], key.seen.indptr
    empty = (indptr[rows + 1] == indptr[rows]) & (key.features is None or ~key.factors[0][rows].any(axis=1))
    blank[np.flatnonzero(known)[empty]] = True
    return blank


def popular(target: "Side", key_positions: np.ndarray, k: int, cand_idx: np.ndarray | None) -> tuple:
    """Unknown keys get the most popular items (or most active users): the cold_start fallback."""
    pop = target.popularity
    allowed = np.arange(len(pop)) if cand_idx is None else cand_idx
    top = allowed[np.lexsort((allowed, -pop[allowed]))][:k]
    n = len(key_positions)
    return (np.repeat(key_positions, len(top)), target.ids.take(pa.array(np.tile(top, n))),
            np.tile(pop[top], n).astype(np.float32), np.tile(np.arange(1, len(top) + 1), n))
