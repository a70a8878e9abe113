"""Model engines behind one interface; HANDLERS maps the `engine` option to a class.

The registry is the one list of engines: option validation, completion, DESCRIBE, tuning,
FINETUNE and the handler contract test all read it, and everything sqlrec knows about an engine
is declared on its class (sqlrec.engines.base.Handler). Adding an engine is one module and one
`register(cls)`; `unregister(name)` takes it out again.
"""

from __future__ import annotations

import re

from sqlrec.sql import options as opts
from sqlrec.errors import OptionError, did_you_mean
from sqlrec.engines.als import ALSHandler
from sqlrec.engines.base import Handler
from sqlrec.engines.ease import EASEHandler
from sqlrec.engines.explicit import ExplicitHandler
from sqlrec.engines.lightfm import LightFMHandler
from sqlrec.engines.popularity import PopularityHandler
from sqlrec.engines.space import PARAM_KINDS, Param
from sqlrec.engines.spark_als import SparkALSHandler
from sqlrec.engines.svd import SVDHandler

# Engine name -> handler class, in registration order (the built-in ones by name).
HANDLERS: dict[str, type[Handler]] = {}

_NAME = re.compile(r"[a-z][a-z0-9_]*")


def register(cls: type[Handler]) -> type[Handler]:
    """Add an engine to sqlrec: CREATE MODEL ... USING engine = '<cls.engine>' then trains it,
    and tuning, FINETUNE, DESCRIBE and completion read what its class declares. Checks the
    declarations against each other (a ValueError names the first mismatch); returns `cls`, so
    it also serves as a class decorator."""
    name = getattr(cls, "engine", None)
    if not (isinstance(name, str) and _NAME.fullmatch(name)):
        raise ValueError(f"{cls.__name__}.engine must be a lowercase name (letters, digits, _), got {name!r}")
    if HANDLERS.get(name, cls) is not cls:
        raise ValueError(f"engine {name!r} is registered already ({HANDLERS[name].__name__}); unregister it first")
    own = {n for o in cls.params_spec for n in (o.name, *o.aliases)}
    shared = sorted(own & {n for o in (*opts.COMMON_OPTIONS, *opts.FEATURE_OPTIONS) for n in (o.name, *o.aliases)})
    if shared:
        raise ValueError(f"engine {name!r}: parameter {shared[0]!r} is one of sqlrec's own CREATE MODEL options")
    kinds = tuple(getattr(cls, "recommender_types", ()))
    if "user_item" not in kinds or not set(kinds) <= set(opts.RECOMMENDER_TYPE_CHOICES):
        raise ValueError(f"engine {name!r}: recommender_types {kinds!r} must include 'user_item' and name only "
                         f"{', '.join(opts.RECOMMENDER_TYPE_CHOICES)}")
    params = {o.name for o in cls.params_spec}
    for param, p in cls.search_space.items():
        if param not in params:
            raise ValueError(f"engine {name!r}: searched parameter {param!r} is none of its params_spec")
        if not isinstance(p, Param) or p.kind not in PARAM_KINDS:
            raise ValueError(f"engine {name!r}: searched parameter {param!r} must be a Param of kind "
                             f"{', '.join(PARAM_KINDS)}")
    unknown = [p for p in cls.summary_params if p not in params | {"epochs_trained"}]
    if unknown:
        raise ValueError(f"engine {name!r}: summary parameter {unknown[0]!r} is none of its params_spec")
    if cls.incremental_finetune and cls.grow is Handler.grow:
        raise ValueError(f"engine {name!r}: incremental_finetune needs a grow() method")
    HANDLERS[name] = cls
    return cls


def unregister(name: str) -> type[Handler]:
    """Take an engine out of the registry again (its stored models then no longer open); returns
    its class."""
    if name not in HANDLERS:
        raise ValueError(f"engine {name!r} is not registered")
    return HANDLERS.pop(name)


for _cls in (ALSHandler, EASEHandler, ExplicitHandler, LightFMHandler, PopularityHandler, SparkALSHandler,
             SVDHandler):
    register(_cls)


def get_handler(name: object, where: str) -> type[Handler]:
    """The handler class of an engine name (any case), or an OptionError listing the engines."""
    if isinstance(name, str) and name.lower() in HANDLERS:
        return HANDLERS[name.lower()]
    raise OptionError(f"{where}: unknown engine {name!r}{did_you_mean(str(name), HANDLERS)}; "
                      f"engines: {', '.join(HANDLERS)}")


def tunable_engines() -> list[str]:
    """The engines tune = true can search alone: those with a search space, in registry order."""
    return [name for name, cls in HANDLERS.items() if cls.search_space]


def create_option_specs(handler_cls: type[Handler] | None = None) -> list[opts.Option]:
    """Every option CREATE MODEL accepts with this engine (with None: with any engine)."""
    classes = [handler_cls] if handler_cls is not None else list(HANDLERS.values())
    specs = [o for o in opts.COMMON_OPTIONS if o.name != "engine" or handler_cls is None]
    for cls in classes:
        specs += [o for o in cls.params_spec if o not in specs]
    if any(cls.supports_features for cls in classes):
        specs += opts.FEATURE_OPTIONS
    return specs


__all__ = ["ALSHandler", "EASEHandler", "ExplicitHandler", "Handler", "HANDLERS", "Param", "get_handler",
           "create_option_specs", "LightFMHandler", "PopularityHandler", "register", "SparkALSHandler",
           "SVDHandler", "tunable_engines", "unregister"]
