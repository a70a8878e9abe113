"""What the machine lets this process allocate, for the checks that refuse work before it runs
out of memory (sqlrec.sql.options.memory_budget). Linux's /proc and cgroup files where they exist;
elsewhere physical memory."""

from __future__ import annotations

import os


def usable_memory() -> int:
    """Bytes this process can still allocate: the least of the memory the system has available,
    what a cgroup (container) limit leaves, and what an address-space rlimit leaves."""
    room = []
    meminfo = _proc_kib("/proc/meminfo", "MemAvailable")
    if meminfo is not None:
        room.append(meminfo)
    else:
        try:
            room.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        except (ValueError, OSError, AttributeError):
            pass
    for limit, current in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                           ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        most, used = _read_int(limit), _read_int(current)
        if most is not None and used is not None:
            room.append(max(0, most - used))
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        mapped = _proc_kib("/proc/self/status", "VmSize")
        if soft != resource.RLIM_INFINITY and soft > 0:
            room.append(max(0, soft - (mapped or 0)))
    except (ImportError, ValueError, OSError):
        pass
    return min(room) if room else 2**40


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # cgroup v2 writes 'max' for no limit


def _proc_kib(path: str, key: str) -> int | None:
    """A 'Key:   123 kB' line of a /proc file, in bytes."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None
