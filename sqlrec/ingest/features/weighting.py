"""How a user's or item's feature row is weighted: its values, and its identity's share.

LightFM's Dataset scales each row to sum to 1, identity and metadata together, so an item with
30 tags keeps 1/31 of its weight on its own identity and its learned collaborative signal
drowns (bench/README.md: tag counts cost half of P@10). Two options change that:

feature_values   'raw' (as given), 'log' (log1p of each value, for counts) or 'binary' (1 for
                 every present feature): applied to the metadata values before scaling, at
                 training time and for cold-start rows alike.
feature_weight   the share of a row that goes to its metadata when the row has an identity
                 feature too: the identity keeps 1 - feature_weight whatever the number of
                 features (default 0.5, measured in bench/feature_weight.py); 'lightfm' keeps
                 LightFM's own scaling.

Rows without an identity (ids known only from the feature source, or identity = false) are
their metadata alone, scaled to sum to 1, as before.
"""

from __future__ import annotations

import numpy as np
from sqlrec.lazy import sparse as sp

from sqlrec.sql.options import LIGHTFM_SCALING

VALUES = ("raw", "log", "binary")


def transform(meta: sp.csr_matrix, values: str) -> sp.csr_matrix:
    """Metadata values as `feature_values` says (a copy)."""
    meta = sp.csr_matrix(meta, dtype=np.float32, copy=True)
    if values == "log":
        meta.data = np.sign(meta.data) * np.log1p(np.abs(meta.data))
    elif values == "binary":
        meta.data = (meta.data != 0).astype(np.float32)
    return meta


def normalise(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Rows scaled to sum to 1 (by absolute weight), as LightFM's Dataset does."""
    sums = np.asarray(abs(matrix).sum(axis=1)).ravel()
    scale = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)
    return sp.csr_matrix(sp.diags(scale.astype(np.float32)) @ matrix, dtype=np.float32)


def combine(identity: np.ndarray | None, meta: sp.csr_matrix, weight: float | str | None) -> sp.csr_matrix:
    """The training feature matrix [identity | metadata], each row summing to 1.

    identity: per entity 1.0 (has an identity feature) or 0.0; None: no identity columns at all.
    """
    if identity is None:
        return normalise(meta)
    if weight is None or weight == LIGHTFM_SCALING:  # LightFM's own scaling: every feature of a row weighs alike
        return normalise(sp.hstack([sp.diags(identity), meta], format="csr"))
    has_meta = meta.getnnz(axis=1) > 0
    share = np.where(identity > 0, np.where(has_meta, weight, 0.0), 1.0).astype(np.float32)
    scaled_meta = sp.diags(share) @ normalise(meta)
    own = sp.diags(identity * np.where(has_meta, 1.0 - weight, 1.0).astype(np.float32))
    return sp.csr_matrix(sp.hstack([own, scaled_meta], format="csr"), dtype=np.float32)
