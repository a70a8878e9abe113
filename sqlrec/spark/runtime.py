"""The SparkSession sqlrec uses: one per process, started on first use, and its failures as sqlrec errors.

Starting Spark (a JVM, then a Python worker per core on the first job) takes 10-20 s, so the
session outlives the statement: every spark_als CREATE and EXPORT RECOMMENDATIONS of the
process reuses it. A JVM holds one SparkContext, so asking for another master stops the
running session first (and pays the start again).

The master is the statement's `spark_master` option, else $SQLREC_SPARK_MASTER, else
`local[*]` (every core of this machine). A local session binds to the loopback interface, runs
its Python workers with this interpreter, and keeps Spark's UI and console progress off; a
cluster session takes Spark's own configuration (spark-defaults.conf, $PYSPARK_PYTHON for the
executors) untouched.

pyspark is an optional extra (`pip install 'sqlrec[spark]'`) and needs Java 17 or later;
`check_available` turns either missing into an OptionError that says what to install.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlrec.errors import Cancelled, OptionError, SparkError

MASTER_ENV = "SQLREC_SPARK_MASTER"
DEFAULT_MASTER = "local[*]"
_LOCAL = re.compile(r"local(\[(\*|\d+)(,\s*\d+)?\])?$")

_lock = threading.Lock()
_current: tuple[str, Any] | None = None  # (master, SparkSession) started by sqlrec


def pyspark_installed() -> bool:
    return importlib.util.find_spec("pyspark") is not None


def java_command() -> str | None:
    """The java that pyspark will launch ($JAVA_HOME/bin/java, else java on PATH), or None."""
    home = os.environ.get("JAVA_HOME")
    if home:
        java = os.path.join(home, "bin", "java")
        return java if os.access(java, os.X_OK) else None
    return shutil.which("java")


def check_available(what: str, where: str) -> None:
    """An OptionError naming `what` (e.g. "option engine = 'spark_als'") when pyspark or Java is missing."""
    if not pyspark_installed():
        raise OptionError(f"{where}: {what} needs pyspark, which is not installed; "
                          f"install sqlrec[spark] (pip install 'sqlrec[spark]')")
    if java_command() is None:
        home = os.environ.get("JAVA_HOME")
        found = f"JAVA_HOME={home} has no bin/java" if home else "no java on PATH and JAVA_HOME is not set"
        raise OptionError(f"{where}: {what} runs Spark, which needs Java 17 or later ({found}); install it "
                          f"(e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME")


def resolve_master(given: str | None, where: str) -> str:
    master = (given or os.environ.get(MASTER_ENV) or DEFAULT_MASTER).strip()
    if not master:
        raise OptionError(f"{where}: option spark_master is empty; give a master URL such as 'local[2]' "
                          f"or 'spark://host:7077'")
    if master.startswith("sc://"):
        raise OptionError(f"{where}: option spark_master {master!r} is a Spark Connect address; sqlrec "
                          f"needs a classic master ('spark://host:7077', 'yarn', 'k8s://...', 'local[*]')")
    return master


def is_local(master: str) -> bool:
    return bool(_LOCAL.match(master))


def local_cores(master: str) -> int:
    found = _LOCAL.match(master)
    count = found.group(2) if found and found.group(1) else "1"
    return (os.cpu_count() or 1) if count == "*" else int(count)


def get_session(master: str, where: str) -> Any:
    """The process's SparkSession on `master`, started (or restarted on another master) as needed."""
    global _current
    with _lock:
        if _current is not None and _current[0] == master and _current[1].sparkContext._jsc is not None:
            return _current[1]
        if _current is not None:
            _current[1].stop()
            _current = None
        with spark_errors(f"{where}: starting Spark on {master!r}"):
            session = _build(master)
        running = session.sparkContext.master
        if running != master:  # someone else's session already holds this process's JVM
            raise SparkError(f"{where}: this process already runs a SparkSession on {running!r}; "
                             f"set spark_master = {running!r} or stop that session")
        _current = (master, session)
        return session


def _build(master: str) -> Any:
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(master).appName("sqlrec")
    if is_local(master):
        cores = str(local_cores(master))
        for key, value in (("spark.ui.enabled", "false"), ("spark.ui.showConsoleProgress", "false"),
                           ("spark.driver.host", "127.0.0.1"), ("spark.driver.bindAddress", "127.0.0.1"),
                           # Spark's 200 shuffle partitions are for clusters: on one machine
                           # each costs a task and a file for a few rows
                           ("spark.sql.shuffle.partitions", cores), ("spark.default.parallelism", cores)):
            builder = builder.config(key, value)
    session = builder.getOrCreate()
    context = session.sparkContext
    context.setLogLevel("ERROR")
    if is_local(master) and "PYSPARK_PYTHON" not in os.environ:
        # Workers would start `python3` from PATH, which may lack numpy and pyarrow (a venv).
        context.pythonExec = sys.executable
    return session


def stop() -> None:
    """Stop the session sqlrec started (tests, and a process that is done with Spark)."""
    global _current
    with _lock:
        if _current is not None:
            _current[1].stop()
            _current = None


@contextmanager
def spark_errors(where: str) -> Iterator[None]:
    """Spark's and py4j's exceptions as SparkError (the first line that says what went wrong)."""
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    try:
        with warnings.catch_warnings():
            # pyspark warns on every Arrow call under pandas 3; sqlrec hands it Arrow, not pandas
            warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas", FutureWarning)
            yield
    except KeyboardInterrupt:
        raise Cancelled(f"{where}: cancelled; nothing was saved") from None
    except (PySparkException, Py4JError) as exc:
        raise SparkError(f"{where}: {spark_message(exc)}") from exc


def spark_message(exc: BaseException) -> str:
    """What a Spark failure says, without the JVM stack trace or the worker's Python traceback."""
    lines = [re.sub(r"^Caused by: ", "", line.strip()) for line in str(exc).splitlines() if line.strip()]
    if getattr(exc, "getCondition", None) and lines and lines[0].startswith("["):
        return lines[0][:400]
    python = [line for line in lines if re.match(r"^[A-Za-z_.]*(Error|Exception): ", line)]
    java = [line.lstrip(": ") for line in lines if re.match(r"^(: )?[a-z]+\.[\w.$]+(Exception|Error)\b", line)]
    if type(exc).__name__ == "PythonException" and python:
        return python[-1][:400]
    picked = java[-1] if java else (lines[0] if lines else type(exc).__name__)
    return re.sub(r"^(?:[a-z]+\.)+(?=[A-Z])", "", picked)[:400]
