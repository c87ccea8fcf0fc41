"""Hyperparameter search through Hydra's Optuna sweeper (``hydra-optuna-sweeper``, the
``taskhub[optuna]`` extra): ``taskhub -m hydra/sweeper=optuna hydra.sweeper.n_trials=8
'train.learning_rate=tag(log, interval(1e-5, 1e-3))'``. Each trial returns the task's main
validation metric (the test one without a validation split) and the sweep's direction
follows the metric: maximise accuracy, minimise loss or perplexity.

The sweep's results table marks each task's best job by the same value (:func:`mark_best`):
the best trial of a search, the best checkpoint or setting of a grid sweep."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from taskhub.tracking import greater_is_better


#: The splits a job's value is read from, in order: the first one it has.
SPLITS = ("validation", "test")


def objective(result: dict[str, Any], main_metric: str) -> float:
    """The value a trial reports to the sweeper (NaN when the run had no held-out split)."""
    metrics = result.get("metrics", {})
    for split in SPLITS:
        value = metrics.get(f"{split}_{main_metric}")
        if isinstance(value, (int, float)):
            return float(value)
    return math.nan


def direction_overrides(argv: list[str], main_metric: Callable[[], str]) -> list[str]:
    """``hydra.sweeper.direction`` for an Optuna sweep that does not set it (``main_metric``:
    the task's, asked only then)."""
    optuna = any(arg.lstrip("+") == "hydra/sweeper=optuna" for arg in argv)
    if not optuna or any(arg.startswith("hydra.sweeper.direction=") for arg in argv):
        return []
    return [f"hydra.sweeper.direction={'maximize' if greater_is_better(main_metric()) else 'minimize'}"]


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def ranking(task: str, rows: list[dict[str, Any]]) -> tuple[str, bool] | None:
    """The column a task's jobs are ranked by and whether higher is better: the main
    metric on the first of :data:`SPLITS` that a finished job has (what :func:`objective`
    reports to the sweeper); None for a task that is not registered or has no such column."""
    from taskhub.manager import get_registry

    registry = get_registry()
    if task not in registry:
        return None
    main_metric = registry.get(task).task_cls.main_metric
    for split in SPLITS:
        key = f"{split}_{main_metric}"
        if any(r["task"] == task and r["status"] != "failed" and _finite(r.get(key)) for r in rows):
            return key, greater_is_better(main_metric)
    return None


def mark_best(rows: list[dict[str, Any]]) -> None:
    """``best`` on every row: True for each task's finished job(s) with the best value of
    its :func:`ranking` column (every one of them on a tie), False for the others. The
    direction is the one :func:`direction_overrides` gives the Optuna sweeper; a sweep that
    sets ``hydra.sweeper.direction`` against it is not followed."""
    for row in rows:
        row["best"] = False
    for task in dict.fromkeys(r["task"] for r in rows):
        found = ranking(task, rows)
        if found is None:
            continue
        key, higher = found
        ranked = [r for r in rows if r["task"] == task and r["status"] != "failed" and _finite(r.get(key))]
        best = (max if higher else min)(r[key] for r in ranked)
        for row in ranked:
            row["best"] = row[key] == best
