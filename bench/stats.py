"""Statistics and reporting shared by the benches: percentiles and summaries, ratios, CPU and
memory readings from /proc, machine info, the figures table and the results JSON files."""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

import grpc


def log(message: str) -> None:
    """Progress goes to stderr (results go to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# =============================================================================================
# Numbers
# =============================================================================================


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


def summarize_ms(values: Sequence[float], *, mean: bool = False) -> dict[str, Any]:
    """count, p50/p90/p99/max (and the mean with `mean=True`) of latencies in ms."""
    summary: dict[str, Any] = {
        "count": len(values),
        "p50_ms": percentile(values, 50),
        "p90_ms": percentile(values, 90),
        "p99_ms": percentile(values, 99),
        "max_ms": max(values) if values else None,
    }
    if mean:
        summary["mean_ms"] = sum(values) / len(values) if values else None
    return summary


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b; None when either is missing or b is 0."""
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt(value: float | None, digits: int = 1) -> str:
    """A figure for a table: `n/a`, thousands without decimals, else `digits` decimals."""
    if value is None:
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


# =============================================================================================
# Processes and the machine
# =============================================================================================


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all threads), from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    """Resident memory of a process (VmRSS), KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


class CpuMeter:
    """CPU use of a process between construction and `percent()` (100 = one core)."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self._cpu = cpu_seconds(pid)
        self._wall = time.monotonic()

    def percent(self) -> float:
        return 100 * (cpu_seconds(self._pid) - self._cpu) / (time.monotonic() - self._wall)


class OtherCpuMeter:
    """CPU used by processes outside this run (machine total minus this process and its reaped
    children), in cores: anything well above 0 makes the figures noisier."""

    def __init__(self) -> None:
        self._start = (time.monotonic(), self._machine_busy(), self._ours())

    @staticmethod
    def _machine_busy() -> float:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        idle = fields[3] + fields[4]  # idle + iowait
        return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _ours() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def elapsed(self) -> float:
        return time.monotonic() - self._start[0]

    def cores(self) -> float:
        wall, busy, ours = self._start
        other = (self._machine_busy() - busy) - (self._ours() - ours)
        return max(0.0, other) / (time.monotonic() - wall)


def machine_info(note: str = "") -> dict[str, Any]:
    """CPUs, CPU model, memory, kernel, Python, grpcio and the load average right now."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_kib / (1 << 20), 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "loadavg_at_start": list(os.getloadavg()),
    }
    if note:
        info["note"] = note
    return info


# =============================================================================================
# Figures: the table on stdout and the results JSON
# =============================================================================================


@dataclass(slots=True)
class Figure:
    """One figure of a bench: Baton's value against the baseline measured in the same run."""

    key: str
    title: str
    unit: str
    baton: float | None
    baseline: float | None
    ratio: float | None
    goal: str
    met: bool | None
    details: dict[str, Any] = field(default_factory=dict)


def render_table(figures: Sequence[Figure]) -> str:
    header = ("Figure", "Baton", "Baseline", "Ratio", "Goal", "Met?")
    rows = [header]
    for f in figures:
        met = "n/a" if f.met is None else ("yes" if f.met else "NO")
        rows.append(
            (
                f"{f.title} [{f.unit}]",
                fmt(f.baton),
                fmt(f.baseline),
                fmt(f.ratio, 2),
                f.goal,
                met,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("| " + " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) + " |")
        if n == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def figures_report(quick: bool, seconds: float, plan: Any, figures: Sequence[Figure]) -> dict:
    """The results document of a figure bench (bench/results-core.json, -handoffs.json)."""
    return {
        "quick": quick,
        "seconds": round(seconds, 1),
        "plan": asdict(plan) if is_dataclass(plan) and not isinstance(plan, type) else plan,
        "figures": [asdict(f) for f in figures],
    }


def write_json(path: Path, document: Any) -> None:
    """Writes a results document, indented, with a final newline."""
    path.write_text(json.dumps(document, indent=2) + "\n")
