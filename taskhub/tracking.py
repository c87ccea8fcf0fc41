"""Experiment tracking and training history: ``train.report_to`` trackers write into
``<run dir>/logs/`` (kept after the run, unlike the checkpoints), the Trainer's log
history becomes a per-epoch table in ``metrics.json``, and ``train.early_stopping_patience``
watches the task's main metric."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from taskhub.errors import TaskhubError

#: Tracker name -> the package that provides it, where the two differ.
PACKAGES = {"mlflow": "mlflow (or taskhub[mlflow])", "comet_ml": "comet-ml", "azure_ml": "azureml-core", "dagshub": "dagshub mlflow-skinny"}
#: Metrics where lower is better (by the name's last part); every other is higher-is-better.
LOWER_IS_BETTER = ("loss", "perplexity", "wer", "cer")
#: What the Trainer logs while training, besides the validation (``eval_``) metrics.
TRAINING_LOGS = ("loss", "learning_rate", "grad_norm")


def trackers(value: Any) -> list[str]:
    """``train.report_to`` as the Trainer takes it, each tracker checked to be known and installed."""
    from transformers.integrations import get_available_reporting_integrations
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    names = [value] if isinstance(value, str) else list(value or [])
    if names in ([], ["none"]):
        return []
    available = set(get_available_reporting_integrations())
    for name in names:
        if name not in INTEGRATION_TO_CALLBACK:
            raise TaskhubError(f"train.report_to={name}: not a tracker transformers knows ({', '.join(sorted(INTEGRATION_TO_CALLBACK))})")
        if name not in available:
            raise TaskhubError(f"train.report_to={name}: its package is not installed; pip install {PACKAGES.get(name, name)}")
    return names


@contextmanager
def logs_in(run_dir: Path):
    """Trackers that write files put them under ``<run dir>/logs/`` for the run (unless
    their own environment variables say otherwise): TensorBoard event files in
    ``logs/tensorboard``, an MLflow file store in ``logs/mlruns``."""
    logs = run_dir / "logs"
    settings = {"TENSORBOARD_LOGGING_DIR": str(logs / "tensorboard")}
    if "MLFLOW_TRACKING_URI" not in os.environ:  # a file store: no server, nothing outside the run dir
        settings.update(MLFLOW_TRACKING_URI=(logs / "mlruns").resolve().as_uri(), MLFLOW_ALLOW_FILE_STORE="true")
    added = {k: v for k, v in settings.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def epoch_history(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Trainer's log history as one row per epoch: training loss, learning rate and
    every validation metric logged in it (``eval_`` renamed ``validation_``)."""
    rows: dict[float, dict[str, Any]] = {}
    for entry in log_history:
        logged = {k: v for k, v in entry.items() if (k in TRAINING_LOGS or k.startswith("eval_")) and isinstance(v, (int, float))}
        if "epoch" not in entry or not logged:  # the end-of-run summary, the held-out evaluations after training
            continue
        epoch = round(float(entry["epoch"]), 4)
        row = rows.setdefault(epoch, {"epoch": epoch, "step": 0})
        row["step"] = max(row["step"], entry.get("step") or 0)
        row.update({f"validation_{k.removeprefix('eval_')}" if k.startswith("eval_") else k: v for k, v in logged.items()})
    return [rows[e] for e in sorted(rows)]


def greater_is_better(metric: str) -> bool:
    return metric.rsplit("_", 1)[-1] not in LOWER_IS_BETTER
