"""What `USING tune = true` may try for an engine: the type of a search space's entries.

An engine declares its space on its class (Handler.search_space: parameter name -> Param, in
the order of the m.trials columns); sqlrec.exec.tuning only samples it, so the ranges live
beside the parameters and defaults they are measured against.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Param:
    """One searched parameter: an int or float range (log scale or not), a choice, or a float
    that is 0 on half the draws (an optional penalty)."""

    kind: str  # "int", "float", "choice", "float_or_zero"
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    choices: tuple[str, ...] = ()


PARAM_KINDS = ("int", "float", "choice", "float_or_zero")

# The factor count of the factor engines (lightfm, als), on a log scale: 16 vs 32 matters as much
# as 128 vs 256.
COMPONENTS = (16, 256)
