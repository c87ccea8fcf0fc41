"""Per-example evaluation outputs: ``samples.jsonl`` rows, the main metric's bootstrap
interval, and metrics of the `evaluate` library. Functions of the per-example scores
(:meth:`taskhub.Task.score_examples`), so they work the same on predictions gathered
from several processes."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskhub.errors import TaskhubError
from taskhub.task import score_columns

if TYPE_CHECKING:
    from taskhub.task import Task

SAMPLES = "samples.jsonl"


def sample_rows(task: Task, examples: list[dict[str, Any]], rows: Iterable[Mapping[str, Any]], predictions: list[dict] | None = None) -> list[dict[str, Any]]:
    """One ``samples.jsonl`` row per evaluated example, in input order: its input columns,
    reference, prediction (the task's own, else the prediction record's fields) and scores."""
    inputs = (*task.input_columns, *task.optional_columns)
    samples = []
    for i, (example, row) in enumerate(zip(examples, rows)):
        prediction = example.get("prediction")
        if prediction is None and predictions is not None:
            prediction = {field: predictions[i].get(field) for field in task.prediction_fields}
        reference = example.get("reference")
        if reference is None:
            targets = [c for c in task.target_columns if c not in inputs]
            reference = row.get(targets[0]) if len(targets) == 1 else {c: row.get(c) for c in targets}
        sample = {"row": i + 1, "input": {c: row[c] for c in inputs if row.get(c) is not None}, "reference": reference, "prediction": prediction}
        sample["scores"] = example["scores"]
        if example.get("stats"):
            sample["stats"] = example["stats"]
        samples.append(sample)
    return samples


def write_samples(path: Path, samples: list[dict[str, Any]]) -> None:
    from taskhub.rundir import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(s, ensure_ascii=False, default=str) + "\n" for s in samples), encoding="utf-8")


def read_samples(path: str | Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def main_statistic(task: Task):
    """The task's main metric as a function of per-example columns."""
    return lambda columns: task.aggregate_examples(columns)[task.main_metric]


def confidence_metrics(task: Task, examples: list[dict[str, Any]], prefix: str, resamples: int, seed: int) -> dict[str, float]:
    """``<prefix>_<main>_ci_low`` / ``_ci_high`` / ``_stderr``: the main metric's 95% bootstrap
    interval over the examples (nothing when resampling is off or the task has no main
    metric among its per-example aggregates)."""
    from taskhub.stats import bootstrap

    columns = score_columns(examples)
    if not resamples or not examples or task.main_metric not in task.aggregate_examples(columns):
        return {}
    interval = bootstrap(columns, main_statistic(task), resamples, seed)
    return {f"{prefix}_{task.main_metric}_{k}": v for k, v in interval.items()}


def library_metrics(task: Task, samples: list[dict[str, Any]], names: list[str], prefix: str, taken: Iterable[str]) -> dict[str, float]:
    """``evaluate.load(name).compute(...)`` for each metric named (a Hub metric or a local
    module path) on the samples' predictions and references; numbers only. A key the
    task's metrics already use gets the metric's name in front."""
    import evaluate

    predictions, references = task.metric_inputs(samples)
    taken = set(taken)
    results: dict[str, float] = {}
    for name in names:
        try:
            metric = evaluate.load(name)
        except Exception as exc:  # noqa: BLE001 - a missing module, no network, a broken script
            raise TaskhubError(f"evaluate.metrics: cannot load '{name}': {' '.join(str(exc).split())[:300]}") from None
        try:
            values = metric.compute(predictions=predictions, references=references) or {}
        except Exception as exc:  # noqa: BLE001 - inputs the metric does not take
            raise TaskhubError(f"evaluate.metrics: '{name}' failed on {task.name} predictions: {' '.join(str(exc).split())[:300]}") from None
        for key, value in values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                column = f"{prefix}_{key}"
                if column in taken or column in results:
                    column = f"{prefix}_{Path(name).stem}_{key}"
                results[column] = float(value)
    return results
