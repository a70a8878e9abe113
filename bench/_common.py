"""Shared benchmark helpers: machine banner, best-of-N timer, synthetic implicit data, LightFM fit."""

from __future__ import annotations

import datetime
import os
import platform
import time
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp


def machine() -> str:
    """One line: date, CPU, cores, Python, numpy and its BLAS."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas = f"{blas['name']} {blas.get('version', '')}".strip()
    except Exception:  # noqa: BLE001 - the banner must never stop a benchmark
        blas = "unknown BLAS"
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return (f"{now} | {cpu}, {os.cpu_count()} cores | Python {platform.python_version()} | "
            f"numpy {np.__version__} ({blas})")


def best_of(fn: Callable[[], object], repeats: int) -> float:
    """Fastest of `repeats` runs, in seconds (the least disturbed run is the most repeatable)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def implicit_interactions(n_users: int, n_items: int, per_user: float = 50, zipf: float = 0.8,
                          seed: int = 0) -> sp.csr_matrix:
    """Users x items 0/1 CSR: about `per_user` distinct items per user (Poisson), items drawn
    from a Zipf-like popularity (p ~ 1 / rank**zipf) over a shuffled catalogue."""
    rng = np.random.default_rng(seed)
    counts = np.maximum(rng.poisson(per_user, n_users), 1)
    p = 1.0 / np.arange(1, n_items + 1) ** zipf
    p /= p.sum()
    popular = rng.permutation(n_items)  # popularity rank -> item index, so hot items are not 0..k
    users = np.repeat(np.arange(n_users, dtype=np.int64), counts)
    items = popular[rng.choice(n_items, size=len(users), p=p)]
    pairs = np.unique(users * n_items + items)  # repeats collapse: a few users get fewer items
    m = sp.csr_matrix((np.ones(len(pairs), np.float32), (pairs // n_items, pairs % n_items)),
                      shape=(n_users, n_items))
    return m


def fit_lightfm(inter: sp.csr_matrix, no_components: int = 32, epochs: int = 3, seed: int = 0):
    """A real WARP model on all cores; the benchmarks only need its factors to be realistic."""
    from lightfm import LightFM

    model = LightFM(no_components=no_components, loss="warp", random_state=seed)
    model.fit(inter, epochs=epochs, num_threads=os.cpu_count() or 1)
    return model
