"""Modules imported on first use, so that starting sqlrec does not pay for them.

scipy.sparse (with the numpy.f2py and numpy.ma modules scipy's array-API layer pulls in) costs
about 0.1-0.15 s to import and pyarrow.compute about 0.02 s; most sqlrec modules name them at
module level, yet plain SQL (`sqlrec -c "SELECT 1"`, a DB-API SELECT) never calls them. A module
writes ``from sqlrec.lazy import sparse as sp`` and uses ``sp.csr_matrix`` as before: the first
attribute read imports the real module. Type checkers see the real modules (TYPE_CHECKING).

This module imports nothing from sqlrec, so every layer may use it.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any


class LazyModule:
    """Stands for a module until one of its attributes is read, then imports it (once).

    Attributes read are kept on the proxy, so later reads are plain attribute look-ups with no
    overhead.
    """

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "_lazy_name", name)

    def __getattr__(self, attr: str) -> Any:
        # Only called for attributes not yet kept on the proxy. import_module holds the import
        # lock, so threads reading the first attribute at once import the module once.
        module: ModuleType = importlib.import_module(self._lazy_name)
        value = getattr(module, attr)
        object.__setattr__(self, attr, value)
        return value

    def __setattr__(self, attr: str, value: Any) -> None:
        raise AttributeError(f"{self._lazy_name} is imported lazily by sqlrec; set {attr!r} on the module itself")

    def __repr__(self) -> str:
        return f"<lazily imported module {self._lazy_name!r}>"


if TYPE_CHECKING:
    import pyarrow.compute as compute
    import scipy.sparse as sparse
else:
    sparse = LazyModule("scipy.sparse")
    compute = LazyModule("pyarrow.compute")
