"""How a task is scored: the Trainer's metrics, per-example scores behind every reported
metric (``samples.jsonl``, bootstrap intervals, paired tests) and their aggregation.
:class:`~taskhub.task.Task` inherits these defaults; a plugin overrides them there."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import datasets


def score_columns(examples: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Per-example ``scores`` and ``stats`` as columns (numpy arrays, rows first), the form
    :meth:`Task.aggregate_examples` takes."""
    import numpy as np

    names = dict.fromkeys(k for e in examples[:1] for part in ("scores", "stats") for k in e.get(part, {}))
    return {k: np.asarray([e.get("scores", {}).get(k, e.get("stats", {}).get(k)) for e in examples], dtype=float) for k in names}


class MetricDeclarations:
    """The scoring half of the Task interface (see :mod:`taskhub.metric_declarations`)."""

    #: Evaluate by running :meth:`predict` and :meth:`score_predictions` (spans, generated
    #: text) instead of ``Trainer.evaluate`` with :meth:`compute_metrics`.
    evaluate_by_prediction: ClassVar[bool] = False
    #: Evaluate the held-out splits before training too (``before_*`` metrics).
    evaluate_before_training: ClassVar[bool] = False

    def compute_metrics(self, eval_pred) -> dict[str, float]:
        """``Trainer``'s ``compute_metrics``: predictions and label ids -> metric values."""
        return {}

    #: ``Trainer``'s ``preprocess_logits_for_metrics``, or None (the default: the logits are
    #: gathered as the model returns them). A task whose :meth:`score_examples` needs less
    #: than the logits defines it as a method ``(logits, labels) -> tensor(s)``, applied to
    #: each evaluation batch before the split's batches are gathered, e.g. vocabulary logits
    #: -> per-token negative log-likelihoods (N x L numbers instead of N x L x V).
    preprocess_logits_for_metrics: ClassVar[Any] = None

    def score_predictions(self, predictions: list[dict], references: datasets.Dataset) -> dict[str, float]:
        """Metrics from :meth:`predict` records and the rows they came from
        (used when :attr:`evaluate_by_prediction` is set). Default: the aggregate of the
        per-example scores, so ``samples.jsonl`` adds up to the reported metrics."""
        return self.aggregate_examples(score_columns(self.score_examples(predictions, references)))

    def score_examples(self, predictions: Any, references: datasets.Dataset | None) -> list[dict[str, Any]] | None:
        """Per-example scores behind the metrics: one dict per evaluated row, in order, for
        ``samples.jsonl``, bootstrap intervals and paired tests between checkpoints.

        ``predictions`` is what the task's evaluation produces: the :meth:`predict` records
        (:attr:`evaluate_by_prediction`), else the Trainer's ``PredictionOutput``
        (``predictions``, ``label_ids``, one row per example). Each dict has ``scores``
        (name -> number, e.g. ``accuracy``: 1.0), optionally ``stats`` (sufficient
        statistics, numbers or lists of numbers, for metrics that are not means: entity
        counts, BLEU n-gram counts) and ``prediction`` / ``reference`` to show. None: the
        task has no per-example scores (no samples, no interval).
        """
        return None

    def aggregate_examples(self, columns: Mapping[str, Any]) -> dict[str, float]:
        """Metrics from per-example columns (``scores`` and ``stats`` keys -> numpy arrays,
        rows along the first axis): what the bootstrap recomputes on each resample.
        Default: the mean of each score."""
        return {name: float(values.mean(axis=0)) for name, values in columns.items() if values.ndim == 1}

    def metric_inputs(self, samples: list[dict[str, Any]]) -> tuple[list, list]:
        """(predictions, references) for metrics of the `evaluate` library
        (``evaluate.metrics``), from the ``samples.jsonl`` rows. Default: as shown there."""
        return [s["prediction"] for s in samples], [s["reference"] for s in samples]

    def derived_metrics(self, metrics: dict[str, float], prefix: str) -> dict[str, float]:
        """Metrics computed from others after an evaluation, e.g. perplexity from loss."""
        return {}
