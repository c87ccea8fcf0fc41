"""Hyperparameter search through Hydra's Optuna sweeper (``hydra-optuna-sweeper``, the
``taskhub[optuna]`` extra): ``taskhub -m hydra/sweeper=optuna hydra.sweeper.n_trials=8
'train.learning_rate=tag(log, interval(1e-5, 1e-3))'``. Each trial returns the task's main
validation metric (the test one without a validation split) and the sweep's direction
follows the metric: maximise accuracy, minimise loss or perplexity."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from taskhub.tracking import greater_is_better


def objective(result: dict[str, Any], main_metric: str) -> float:
    """The value a trial reports to the sweeper (NaN when the run had no held-out split)."""
    metrics = result.get("metrics", {})
    for split in ("validation", "test"):
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
