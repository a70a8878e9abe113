"""USING / OPTIONS validation: one declarative table per statement kind.

Each option says its type, default, allowed range or choices and its aliases (ThanoSQL's names),
so validation, error messages, DESCRIBE and REPL completion all read the same table.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlrec.errors import OptionError, did_you_mean
from sqlrec.numeric.evaluation import METRIC_NAMES
from sqlrec.numeric.machine import usable_memory
from sqlrec.numeric.scoring import usable_cores

# Properties of the whole top-k list, not of how well one user's held-out items rank: a curve
# over epochs says nothing to stop on.
CATALOGUE_METRICS = ("coverage_at_k", "popularity_bias_at_k")


# Integer options end up in C ints (LightFM, numpy): a bound no option may exceed.
INT_MAX = 2**31 - 1

# Training threads above this many per usable core only add contention; far above it LightFM's
# and implicit's OpenMP runtimes crash the process (100,000 threads: a segfault). Refused, not
# clamped: a user who asked for 100,000 threads should learn that the machine has 4 cores.
THREADS_PER_CORE = 4


def thread_limit() -> tuple[int, str]:
    """The most training threads this machine allows, and why (num_threads' bound)."""
    cores = usable_cores()
    return THREADS_PER_CORE * cores, f"{THREADS_PER_CORE} x the {cores} usable cores"


# The share of the memory this process can still allocate that one model's training may plan for:
# the rest holds scoring's and DuckDB's buffers and the copy the catalog writes when it saves the
# model; the estimates (Handler.training_bytes) are rough, and a refusal is better than an OOM kill.
MEMORY_SHARE = 0.5


def capped_threads(stored: int | None) -> int | None:
    """A thread count read from a stored model (the machine that trained it), capped at this
    machine's bound: a model trained on 64 cores still fine-tunes on a laptop, and a crafted
    count never reaches an OpenMP runtime."""
    return None if stored is None else min(int(stored), thread_limit()[0])


def memory_budget() -> tuple[int, str]:
    """Bytes one model's training may plan for, and why."""
    usable = usable_memory()
    return int(usable * MEMORY_SHARE), f"{MEMORY_SHARE:.0%} of the {size(usable)} this process can still allocate"


def size(n: float) -> str:
    """Bytes as a user reads them: 1.5 GiB."""
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} TiB"


@dataclass(frozen=True)
class Option:
    """One option. NULL (None) stands for the option's default, as if it were not given."""

    name: str
    kind: type  # int, float, str, bool, or list (of strings)
    default: Any = None
    help: str = ""
    choices: tuple[str, ...] | None = None
    low: float | None = None  # inclusive bounds
    # A number, or a function of the machine giving (bound, why) (num_threads: thread_limit)
    high: float | Callable[[], tuple[float, str]] | None = None
    aliases: tuple[str, ...] = field(default=())
    low_open: bool = False  # True: value must be > low

    def coerce(self, value: Any, where: str, *, stored: bool = False) -> Any:
        """The value in the option's type, within its bounds; OptionError naming the option.
        stored: a value read from a model in a file, which holds the machine that wrote it:
        a bound of this machine (threads) is not applied; the caller caps the value instead."""
        label = f"{where}: option {self.name}"
        if value is None:
            return None
        if self.kind is list:
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, list) or not items or not all(isinstance(v, str) for v in items):
                raise OptionError(f"{label} must be a quoted string or a list of them, e.g. ['lightfm', 'als'], "
                                  f"got {value!r}")
            return list(dict.fromkeys(v.lower() for v in items))
        if self.kind is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off"):
                return value.lower() in ("true", "yes", "on")
            if isinstance(value, str) and self.choices is not None and value.lower() in self.choices:
                return value.lower()  # a named setting beside true / false (approximate = 'auto')
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            allowed = ["true", "false", *(repr(c) for c in self.choices or ())]
            raise OptionError(f"{label} must be {', '.join(allowed[:-1])} or {allowed[-1]}, got {value!r}")
        if self.kind is int:
            if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                    or int(value) != value):
                raise OptionError(f"{label} must be an integer, got {value!r}")
            value = int(value)
        elif self.kind is float:
            if isinstance(value, str) and self.choices is not None and value.lower() in self.choices:
                return value.lower()  # a named setting beside the numbers (feature_weight = 'lightfm')
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise OptionError(f"{label} must be a finite number, got {value!r}")
            value = float(value)
        elif self.kind is str:
            if not isinstance(value, str):
                raise OptionError(f"{label} must be a quoted string, got {value!r}")
            if self.choices is not None:
                if value.lower() not in self.choices:
                    raise OptionError(
                        f"{label} must be one of {', '.join(repr(c) for c in self.choices)}, got {value!r}"
                        + did_you_mean(value, self.choices)
                    )
                value = value.lower()
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            bound = f"> {_number(self.low)}" if self.low_open else f">= {_number(self.low)}"
            raise OptionError(f"{label} must be {bound}, got {value!r}")
        high, why = self.high, ""
        if callable(high):
            high, why = (None, "") if stored else high()
            why = f" ({why})" if why else ""
        if high is None and self.kind is int:
            high = INT_MAX
        if high is not None and value > high:
            raise OptionError(f"{label} must be <= {_number(high)}{why}, got {value!r}")
        return value


def _number(x: float) -> str:
    """A bound as a user would write it: 100000, not 1e+05."""
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


# 'rating' is no ranking: the predicted rating (an implicit engine's score) of asked pairs.
RECOMMENDER_TYPE_CHOICES = ("user_item", "item_user", "item_item", "user_user", "rating")

# Options every CREATE MODEL understands, whatever the engine. The engine's own model parameters
# are the handler's `params` table; the engine names are the handler registry's (sqlrec.engines).
COMMON_OPTIONS: tuple[Option, ...] = (
    Option("engine", str, "lightfm", "model engine (see sqlrec.engines.HANDLERS)"),
    Option("user_id", str, None, "user id column", aliases=("user_col",)),
    Option("item_id", str, None, "item id column (default: the PREDICT column)", aliases=("item_col",)),
    Option("rating", str, None, "explicit feedback column", aliases=("rating_col",)),
    Option("threshold", float, None, "with rating: rows with rating >= threshold are positives (default: the "
           "middle of the ratings' range, e.g. 2.75 on a 0.5-5 scale)"),
    Option("weight", str, None, "sample weight column (e.g. play counts)"),
    Option("timestamp", str, None, "column ordering interactions (latest rating wins, time split)"),
    Option("num_threads", int, None, f"training threads (default: all cores; at most {THREADS_PER_CORE} per core)",
           low=1, high=thread_limit, aliases=("n_jobs",)),
    Option("n_recommendations", int, 10, "default top-N at query time", low=1, high=100_000, aliases=("nrec",)),
    Option("evaluation", bool, False, "hold out a test split, report metrics, then train on all data"),
    Option("test_size", float, 0.2, "held-out fraction", low=0.0, high=0.9, low_open=True),
    Option("split", str, "random", "held-out split kind", choices=("random", "user", "time")),
    Option("cold_start", str, None, "unknown users/items at query time (default: features when the model has "
           "item_features or user_features, else popularity)", choices=("popularity", "error", "features")),
    Option("random_state", int, None, "seed; with it training is reproducible (see num_threads)", low=0,
           high=2**32 - 1),
    Option("verbose", bool, None, "progress bar (default: when output is a terminal)"),
    Option("item_names", str, None, "column of item labels (titles) that PREDICT USING shows (ThanoSQL)"),
    # Catalogue ids (sqlrec.ingest.known_ids): known before their first interaction.
    Option("items", str, None, "table or quoted SELECT of every item id: ones without interactions are known too "
           "(scored from item_features; otherwise below the liked items)"),
    Option("users", str, None, "table or quoted SELECT of every user id: ones without interactions are known too"),
    Option("overwrite", bool, False, "replace an existing model (ThanoSQL's name for OR REPLACE)"),
    # Model lifecycle: versions whose arrays stay stored, for rollback and USING version.
    Option("keep_versions", int, 3, "versions whose arrays are kept (rollback, USING version); older ones "
           "keep their metadata only", low=1, high=1000),
    # Model selection. Not `k`: that is LightFM's own warp-kos parameter.
    Option("eval_k", int, None, "cut-off k of the @k metrics (default: n_recommendations)", low=1, high=100_000,
           aliases=("metric_k",)),
    Option("history", bool, True, "with evaluation: measure held-out metrics after every epoch (m.history)"),
    Option("early_stopping", bool, False, "with evaluation: stop when the validation metric stops improving"),
    Option("patience", int, 5, "early_stopping: epochs without improvement before stopping", low=1,
           high=100_000),  # no engine trains more epochs
    Option("stopping_metric", str, "auc", "metric early_stopping watches",
           choices=tuple(m for m in METRIC_NAMES if m not in CATALOGUE_METRICS)),
    # Hyperparameter search (sqlrec.exec.tuning), over the engines that have a search space.
    Option("tune", bool, False, "search the parameters not set in USING on a validation split, "
           "then train the best (m.trials)"),
    Option("tune_engines", list, None, "tune: engines the search may choose from, e.g. ['lightfm', 'als', 'ease', 'svd'] "
           "(default: the engine option's only)"),
    Option("tune_trials", int, 20, "tune: number of trials", low=1, high=10_000),
    Option("tune_seconds", float, None, "tune: start no new trial after this many seconds", low=0.0, low_open=True),
    Option("tune_metric", str, "precision_at_k", "tune: validation metric to optimise", choices=METRIC_NAMES),
    # Approximate top-N (sqlrec.numeric.approx): a faiss IVF index built at CREATE, FINETUNE, RETRAIN.
    Option("approximate", bool, "auto", "top-N of user_item and item_item from a faiss IVF index (sqlrec[approx]); "
           "'auto': from 200,000 items when faiss is installed", choices=("auto",)),
    Option("nlist", int, None, "approximate: k-means lists of the index (default: 2 sqrt(items))", low=1,
           high=65_536),
    Option("nprobe", int, None, "approximate: lists a query scans (default: 32); more is slower and nearer exact",
           low=1, high=65_536),
)

# feature_weight's named setting: the row scaling of LightFM's own Dataset (every feature of a row
# alike), an option value named after the library, not an engine (sqlrec.ingest.features.weighting).
LIGHTFM_SCALING = "lightfm"

# Hybrid models (sqlrec.ingest.features), for the engines whose handler supports features: read at
# CREATE time by sqlrec itself, so no SQL text ever reaches a handler.
FEATURE_OPTIONS: tuple[Option, ...] = (
    Option("item_features", str, None, "table or quoted SELECT: item id column + feature columns"),
    Option("user_features", str, None, "table or quoted SELECT: user id column + feature columns"),
    Option("item_identity", bool, True, "with item_features: also one identity feature per item"),
    Option("user_identity", bool, True, "with user_features: also one identity feature per user"),
    Option("bucket_numeric", int, None, "numeric feature columns as N quantile buckets (default: scaled to [0, 1])",
           low=2, high=1000),
    # 0.5 measured (bench/feature_weight.py): warm P@10 above LightFM's scaling with genres (0.956x
    # vs 0.921x no features) and with 30 tags a movie (1.007x vs 0.589x), cold-item AUC kept for genres.
    Option("feature_weight", float, 0.5, "share of a row's weight on its metadata features, the identity keeping "
           "the rest; 'lightfm' keeps LightFM's scaling (every feature alike)", low=0.0, high=1.0, low_open=True,
           choices=(LIGHTFM_SCALING,)),
    Option("feature_values", str, "raw", "metadata values as given, log1p of them (counts) or 1 (binary)",
           choices=("raw", "log", "binary")),
)


@dataclass(frozen=True)
class Rule:
    """A constraint between CREATE options: when `when` holds for the resolved options, `need` must."""

    when: Callable[[dict[str, Any]], bool]
    need: Callable[[dict[str, Any]], bool]
    message: str  # formatted with the resolved options

    def check(self, resolved: dict[str, Any], where: str) -> None:
        if self.when(resolved) and not self.need(resolved):
            raise OptionError(f"{where}: {self.message.format(**resolved)}")


def _features(o: dict[str, Any]) -> bool:
    return o.get("item_features") is not None or o.get("user_features") is not None


# Between options alone; the rules that read what an engine declares (a search space for tune,
# a personalised ranking for approximate) are sqlrec.exec.training's, which sees the registry.
CREATE_RULES: tuple[Rule, ...] = (
    Rule(lambda o: o["threshold"] is not None, lambda o: o["rating"] is not None,
         "option threshold needs option rating (the column it applies to)"),
    Rule(lambda o: o["early_stopping"], lambda o: o["evaluation"],
         "option early_stopping needs evaluation = true (it watches held-out metrics)"),
    Rule(lambda o: o["tune_engines"] is not None, lambda o: o["tune"],
         "option tune_engines needs tune = true"),
    Rule(lambda o: o["split"] == "time" and (o["evaluation"] or o["tune"]), lambda o: o["timestamp"] is not None,
         "split = 'time' needs option timestamp"),
    *(Rule(lambda o, s=side: o.get(f"{s}_identity") is False, lambda o, s=side: o.get(f"{s}_features") is not None,
           f"option {side}_identity = false needs option {side}_features "
           f"(without features a {side} has nothing but its identity)") for side in ("user", "item")),
    *(Rule(lambda o, n=name: o.get(n) is not None, lambda o: o["approximate"] is not False,
           f"option {name} sets up the approximate index; it needs approximate = true or 'auto'")
      for name in ("nlist", "nprobe")),
    Rule(lambda o: o["nlist"] is not None and o["nprobe"] is not None, lambda o: o["nprobe"] <= o["nlist"],
         "option nprobe ({nprobe}) cannot exceed nlist ({nlist}): a query scans at most every list"),
    *(Rule(lambda o, n=name, d=default: o.get(n) not in (None, d), _features,
           f"option {name} needs option item_features or user_features")
      for name, default in (("bucket_numeric", None), ("feature_weight", 0.5), ("feature_values", "raw"))),
)


def check_rules(resolved: dict[str, Any], where: str, rules: Iterable[Rule] = CREATE_RULES) -> None:
    for rule in rules:
        rule.check(resolved, where)


# EVALUATE MODEL m [FROM (SELECT ...)] USING ...
EVALUATE_OPTIONS: tuple[Option, ...] = (
    Option("k", int, None, "cut-off k of the @k metrics (default: the model's)", low=1, high=100_000,
           aliases=("eval_k", "n_recommendations")),
    Option("exclude_seen", bool, True, "with FROM: rank only items the user had not in training, "
           "dropping test pairs seen in training"),
    Option("threshold", float, None, "with FROM: rows whose rating column is >= threshold are positives "
           "(default: the model's threshold)"),
)

# The default of USING max_scored (README, Recommend: why 100,000).
MAX_SCORED = 100_000

QUERY_OPTIONS: tuple[Option, ...] = (
    Option("recommender_type", str, "user_item", "what to recommend", choices=RECOMMENDER_TYPE_CHOICES),
    Option("n_recommendations", int, None, "top-N per query row (default: the model's)", low=1, high=100_000, aliases=("nrec", "n")),
    Option("exclude_seen", bool, None, "drop items the user already has (default true for user_item, item_user)"),
    Option("candidates", str, None, "quoted SELECT of allowed item ids, applied before top-N"),
    # Cold start (sqlrec.exec.coldstart): information about ids the model has not seen.
    Option("user_features", str, None, "table or quoted SELECT: features of new users (user id column first)"),
    Option("item_features", str, None, "table or quoted SELECT: features of new items (item id column first)"),
    Option("interactions", str, None, "quoted SELECT of (user id, item id[, rating]): fold in new users/items"),
    Option("version", int, None, "read this stored version instead of the active one (see m.versions)", low=1),
    Option("approximate", bool, None, "false: exact top-N even when the model has an approximate index"),
    Option("nprobe", int, None, "approximate: lists to scan (default: the model's)", low=1, high=65_536),
    # A SELECT over every key of a large model runs for minutes (ML-25M's 162,541 users: 440 s):
    # refused unless asked for; CREATE TABLE AS and INSERT store every key's rows by intent.
    Option("max_scored", int, None, f"most keys (users of user_item) one SELECT may score (default {MAX_SCORED:,}); "
           "0: no bound (CREATE TABLE AS and INSERT have none)", low=0),
)


# EXPORT RECOMMENDATIONS m TO 'dir/' (FORMAT parquet, ...): every user's top-N on Spark.
EXPORT_OPTIONS: tuple[Option, ...] = (
    Option("format", str, "parquet", "file format of the written files", choices=("parquet",)),
    Option("n_recommendations", int, None, "top-N per user (default: the model's)", low=1, high=100_000,
           aliases=("k", "nrec", "n")),
    Option("exclude_seen", bool, True, "drop items the user had in training"),
    Option("candidates", str, None, "quoted SELECT of allowed item ids, applied before top-N"),
    Option("overwrite", bool, False, "replace what the path holds (a local directory only if it holds "
           "nothing but Parquet output)"),
    Option("partitions", int, None, "Spark partitions the users are split into (default: the session's "
           "default parallelism); one file each", low=1, high=1_000_000),
    Option("spark_master", str, None, "Spark master URL (default: $SQLREC_SPARK_MASTER, else 'local[*]')"),
)


def resolve(given: Mapping[str, Any], specs: Iterable[Option], where: str, *, fill_defaults: bool = True) -> dict[str, Any]:
    """Validate user options against specs: canonical names, coerced values, defaults filled."""
    specs = list(specs)
    by_name: dict[str, Option] = {}
    for spec in specs:
        by_name[spec.name] = spec
        for alias in spec.aliases:
            by_name[alias] = spec
    out: dict[str, Any] = {}
    for key, value in given.items():
        spec = by_name.get(key.lower())
        if spec is None:
            names = sorted({s.name for s in specs})
            hint = did_you_mean(key, names) or did_you_mean(key, list(by_name))
            raise OptionError(
                f"{where}: unknown option {key!r}{hint}; "
                f"valid options: {', '.join(names)}"
            )
        if spec.name in out:
            raise OptionError(f"{where}: option {spec.name} given twice (once as {key!r})")
        if value is None:  # NULL: the default, as if not given
            continue
        out[spec.name] = spec.coerce(value, where)
    if fill_defaults:
        for spec in specs:
            out.setdefault(spec.name, spec.default)
    return out


def all_option_names(specs: Iterable[Option]) -> list[str]:
    """Every name and alias, for completion."""
    names: set[str] = set()
    for spec in specs:
        names.add(spec.name)
        names.update(spec.aliases)
    return sorted(names)


default_threads = usable_cores
