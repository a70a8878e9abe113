"""recommender_type 'rating': the scores of given (user, item) pairs, as the ranking computes them.

Moved out of sqlrec.models.model (which holds the rankings) to keep that module within its size."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from sqlrec.errors import QueryError

if TYPE_CHECKING:
    from sqlrec.models.model import Model


def predict(model: "Model", users: Sequence[Any] | None, items: Sequence[Any] | None,
            where: str = "SELECT") -> pa.Table:
    """(user, item, rating) for every asked user (None = all) and asked item the model knows, by
    request order of users then items. rating is the pair's score, clipped to the training
    ratings' range for an engine that predicts ratings."""
    if items is None:
        raise QueryError(f"{where}: recommender_type 'rating' predicts given pairs: filter the item column "
                         f"too, e.g. WHERE {model.user_col} = 1 AND {model.item_col} IN (1, 2)")
    user, item = model.side("user"), model.side("item")
    if users is None:
        user_ids, upos = user.ids, np.arange(len(user.ids), dtype=np.int64)
    else:
        user_ids, upos = user.lookup(list(dict.fromkeys(users)), where)
    item_ids, ipos = item.lookup(list(dict.fromkeys(items)), where)
    ku, ki = np.flatnonzero(upos >= 0), np.flatnonzero(ipos >= 0)
    uu, ii = np.repeat(ku, len(ki)), np.tile(ki, len(ku))
    rating = model.score_pairs(upos[uu], ipos[ii])
    model.n_scored += len(ku)
    if (bounds := model.handler.rating_range()) is not None:
        rating = np.clip(rating, *bounds)
    return pa.table({model.user_col: user_ids.take(pa.array(uu)), model.item_col: item_ids.take(pa.array(ii)),
                     "rating": pa.array(rating, pa.float32())})
