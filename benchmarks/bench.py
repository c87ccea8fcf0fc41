"""Shared helpers of the benchmark suite: timing, machine description, results.

Timing protocol (every row): each competitor runs once on a small input as a warm-up
(imports, first-call allocations, Hydra and datasets start-up), then ``repeats`` rounds
in which every competitor runs once on the full input, in an order that rotates from
round to round (so a change in machine load hits all competitors alike); a
competitor's figure is the median of its rounds.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE = HERE / ".cache"
#: This process's taskhub run folders and kept predictions: cleared when a benchmark run
#: starts and ends, per process, so a second benchmark in the same checkout keeps its own.
RUNS = CACHE / "runs" / str(os.getpid())
DATA = REPO / "plugins" / "data"
PYTHON = sys.executable
TASKHUB = str(Path(sys.executable).with_name("taskhub"))


# ------------------------------------------------------------------ settings
@dataclass
class Settings:
    quick: bool
    threads: int
    repeats: int
    #: Rounds of the batched pipeline on mixed-length texts (rows 1, 2): the slowest competitor.
    batched_pipeline_rounds: int = 1
    #: Where the prediction and training rows run: cpu, or cuda on a GPU machine.
    device: str = "cpu"

    def pick(self, full, quick):
        """``full`` in a full run, ``quick`` with ``--quick``."""
        return quick if self.quick else full


# -------------------------------------------------------------------- timing
@dataclass
class Timing:
    name: str
    seconds: list[float] = field(default_factory=list)
    items: int = 0  # inputs per run (rows, images, clips)
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def per_second(self) -> float:
        return self.items / self.median if self.items else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "seconds": self.seconds, "median_s": self.median, "items": self.items,
                "items_per_s": self.per_second, "note": self.note}


def compare(competitors: dict[str, Callable[[Any], Any]], full_input, warmup_input, items: int, repeats: int,
            log=print, rounds: dict[str, int] | None = None) -> tuple[dict[str, Timing], dict[str, Any]]:
    """Warm up each competitor on ``warmup_input``, then time ``repeats`` rotating rounds on
    ``full_input`` (``rounds`` lowers that for named competitors). Returns the timings and
    each competitor's last output (to check agreement)."""
    outputs: dict[str, Any] = {}
    for name, run in competitors.items():
        with quiet():
            run(warmup_input)
    timings = {name: Timing(name, items=items) for name in competitors}
    names = list(competitors)
    wanted = {name: min(repeats, (rounds or {}).get(name, repeats)) for name in names}
    for round_ in range(repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            if round_ >= wanted[name]:
                continue
            started = time.perf_counter()
            with quiet():
                outputs[name] = competitors[name](full_input)
            elapsed = time.perf_counter() - started
            timings[name].seconds.append(elapsed)
            log(f"    {name:<36} round {round_ + 1}/{wanted[name]}: {elapsed:8.2f} s   (load {load():.1f})")
    return timings, outputs


def time_once(run: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    with quiet():
        out = run()
    return time.perf_counter() - started, out


@contextlib.contextmanager
def quiet():
    """Swallow what competitors print (taskhub's metrics report, progress bars, load reports).
    Exceptions still propagate."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


def load() -> float:
    return os.getloadavg()[0]


# ------------------------------------------------------------------- results
@dataclass
class Ratio:
    row: str
    name: str  # e.g. "taskhub / limit"
    value: float
    target: str = ""  # e.g. ">= 0.85"
    met: bool | None = None  # None: no target
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def ratio(row: str, name: str, value: float, minimum: float | None = None, maximum: float | None = None, note: str = "") -> Ratio:
    if minimum is not None:
        return Ratio(row, name, value, f">= {minimum:g}", value >= minimum, note)
    if maximum is not None:
        return Ratio(row, name, value, f"<= {maximum:g}", value <= maximum, note)
    return Ratio(row, name, value, "", None, note)


@dataclass
class RowResult:
    row: str
    title: str
    timings: list[Timing] = field(default_factory=list)
    ratios: list[Ratio] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)  # agreement, inputs, chosen batch size...
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average at start and end
    wall_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "title": self.title, "timings": [t.as_dict() for t in self.timings],
                "ratios": [r.as_dict() for r in self.ratios], "facts": self.facts, "load": self.load, "wall_s": self.wall_s}


# ------------------------------------------------------------------- machine
def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def native_bf16() -> bool:
    """Whether the CPU has bf16 instructions (AVX512-BF16 or AMX): else torch emulates bf16, slowly."""
    flags = cpu_flags()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def machine() -> dict[str, Any]:
    import torch
    import transformers

    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    flags = cpu_flags()
    memory = None
    try:
        with open("/proc/meminfo") as f:
            memory = round(int(f.readline().split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpu": model,
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": memory,
        "simd": " ".join(sorted(f for f in flags if f.startswith(("avx", "amx")))) or "none",
        "avx512_bf16": native_bf16(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


# ---------------------------------------------------------------------- misc
def write_jsonl(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


def read_jsonl(path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def subsample(rows: list, n: int) -> list:
    """``n`` rows spread evenly over ``rows`` (same length mix as the whole)."""
    if n >= len(rows):
        return list(rows)
    step = len(rows) / n
    return [rows[int(i * step)] for i in range(n)]
