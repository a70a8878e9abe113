"""Model engines behind one interface; HANDLERS maps the `engine` option to a class.

The registry is the one list of engines: option validation, completion, DESCRIBE and the
handler contract test all read it.
"""

from __future__ import annotations

from sqlrec.sql import options as opts
from sqlrec.errors import OptionError, did_you_mean
from sqlrec.engines.als import ALSHandler
from sqlrec.engines.base import Handler
from sqlrec.engines.ease import EASEHandler
from sqlrec.engines.explicit import ExplicitHandler
from sqlrec.engines.lightfm import LightFMHandler
from sqlrec.engines.popularity import PopularityHandler
from sqlrec.engines.spark_als import SparkALSHandler
from sqlrec.engines.svd import SVDHandler

HANDLERS: dict[str, type[Handler]] = {
    ALSHandler.engine: ALSHandler,
    EASEHandler.engine: EASEHandler,
    ExplicitHandler.engine: ExplicitHandler,
    LightFMHandler.engine: LightFMHandler,
    PopularityHandler.engine: PopularityHandler,
    SparkALSHandler.engine: SparkALSHandler,
    SVDHandler.engine: SVDHandler,
}


def get_handler(name: object, where: str) -> type[Handler]:
    """The handler class of an engine name (any case), or an OptionError listing the engines."""
    if isinstance(name, str) and name.lower() in HANDLERS:
        return HANDLERS[name.lower()]
    raise OptionError(f"{where}: unknown engine {name!r}{did_you_mean(str(name), HANDLERS)}; "
                      f"engines: {', '.join(HANDLERS)}")


def create_option_specs(handler_cls: type[Handler] | None = None) -> list[opts.Option]:
    """Every option CREATE MODEL accepts with this engine (with None: with any engine)."""
    classes = [handler_cls] if handler_cls is not None else list(HANDLERS.values())
    specs = [o for o in opts.COMMON_OPTIONS if o.name != "engine" or handler_cls is None]
    for cls in classes:
        specs += [o for o in cls.params_spec if o not in specs]
    if any(cls.supports_features for cls in classes):
        specs += opts.FEATURE_OPTIONS
    return specs


__all__ = ["ALSHandler", "EASEHandler", "ExplicitHandler", "Handler", "HANDLERS", "get_handler", "create_option_specs", "LightFMHandler", "PopularityHandler", "SparkALSHandler", "SVDHandler"]
