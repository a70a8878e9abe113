"""User and item features from SQL: a feature source -> a feature vocabulary + a sparse matrix.

A feature source is a table name or a quoted SELECT. Its id column is the column named like the
model's user/item id column (normally the first one); every other column becomes features by
its DuckDB type:

=====================  =================================================================
text (VARCHAR, ENUM,   one categorical feature per value, named ``column=value``; text
UUID, BOOLEAN)         holding ``a|b|c`` gives one feature per element (``genres=Drama``)
LIST / ARRAY           one feature per element (``tags=space``)
numbers                one feature named ``column``, weight min-max scaled to [0, 1] over
                       the training rows (values outside that range at query time are
                       clamped); with ``bucket_numeric = N`` instead N quantile buckets,
                       one categorical feature each (``year=[1990,1995)``)
NULL                   no feature
=====================  =================================================================

Long format is accepted too: a source whose columns are (id, feature) or (id, feature, value)
-- the second column named ``feature``. A numeric value is the feature's weight as given; a
text value makes the feature ``feature=value`` with weight 1.

Several rows for one id add their features up (a repeated feature keeps its largest weight).
Identity features come first (one per user/item, as in LightFM's hybrid examples) unless
``user_identity`` / ``item_identity`` = false. Each row sums to 1, the identity keeping a fixed
share (sqlrec.ingest.features.weighting: feature_weight, feature_values). A user/item with no interactions gets no identity weight: its identity
embedding would never be trained, so it is represented by its metadata alone, exactly like an
id that is only added to the source after training.

DuckDB does the work (casting, splitting, unnesting, scaling, bucketing, the id join); Python
only receives flat arrays. The column rules, the scaling ranges, the bucket edges and the
vocabulary are kept in a JSON spec so that query-time sources map to the very same features.

``spec`` holds the column rules and the SQL generators, ``build`` runs them (training time:
``build`` / ``attach``; query time: ``rows_for``), every DuckDB call through a ``Session``.
"""

from sqlrec.ingest.features.build import FeatureSet, attach, build, rows_for
from sqlrec.ingest.features.spec import FEATURE_KINDS, source_query

__all__ = ["FEATURE_KINDS", "FeatureSet", "attach", "build", "rows_for", "source_query"]
