"""Model engines behind one interface; HANDLERS maps the `engine` option to a class."""

from __future__ import annotations

from .base import Handler
from .lightfm import LightFMHandler
from .popularity import PopularityHandler
from .svd import SVDHandler

HANDLERS: dict[str, type[Handler]] = {
    LightFMHandler.engine: LightFMHandler,
    PopularityHandler.engine: PopularityHandler,
    SVDHandler.engine: SVDHandler,
}

__all__ = ["Handler", "HANDLERS", "LightFMHandler", "PopularityHandler", "SVDHandler"]
