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
from taskhub.metric_declarations import score_columns

if TYPE_CHECKING:
    from taskhub.task import Task

SAMPLES = "samples.jsonl"


#: Keys of a :meth:`~taskhub.Task.score_examples` dict that are not where an example is.
EXAMPLE_FIELDS = ("input", "reference", "prediction", "scores", "stats")
#: Characters of a text shown in ``samples.jsonl`` where the example is a block of text.
SHOWN_CHARS = 300


def sample_rows(task: Task, examples: list[dict[str, Any]], rows: Iterable[Mapping[str, Any]], predictions: list[dict] | None = None) -> list[dict[str, Any]]:
    """One ``samples.jsonl`` row per evaluated example, in input order: its input columns,
    reference, prediction (the task's own, else the prediction record's fields) and scores.

    An example that is not one input row (a block of packed text) brings its own ``input``
    and what locates it (e.g. ``block``, ``rows``: the input rows it holds text of), shown
    first in its place of ``row``."""
    if examples and "input" in examples[0]:
        samples = []
        for example in examples:
            sample = {k: v for k, v in example.items() if k not in EXAMPLE_FIELDS}
            sample.update({k: example.get(k) for k in ("input", "reference", "prediction", "scores")})
            if example.get("stats"):
                sample["stats"] = example["stats"]
            samples.append(sample)
        return samples
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


def shown(text: str, limit: int = SHOWN_CHARS) -> str:
    """``text`` cut to ``limit`` characters (an ellipsis saying so), for ``samples.jsonl``."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


# ------------------------------------------------------------------ perplexity
def token_nll(logits, labels, shift: bool = False, best: bool = False):
    """Per-token negative log-likelihood of ``labels`` under ``logits`` (batch x length x
    vocabulary -> batch x length, float32), -100 where no token is predicted (label -100):
    a language model's evaluation batch reduced before the Trainer gathers it. ``shift``:
    position t predicts label t + 1 (causal LMs); the value is put at the label's position.
    The loss the models compute is the mean of these over the predicted tokens. ``best``:
    also the most likely token at each predicted position (-100 elsewhere).

    Only the predicted positions' logits are read (a masked LM predicts about 15%)."""
    import torch

    if isinstance(logits, (tuple, list)):  # the model's other outputs (hidden states...) are not kept
        logits = logits[0]
    targets = labels.long()
    if shift:
        targets = torch.cat([targets[:, 1:], targets.new_full((targets.shape[0], 1), -100)], dim=1)
    valid = targets != -100
    chosen = logits[valid].float()  # predicted positions x vocabulary
    nll = torch.full(targets.shape, -100.0, device=logits.device)
    nll[valid] = torch.logsumexp(chosen, dim=-1) - chosen.gather(1, targets[valid].unsqueeze(1)).squeeze(1)
    top = None
    if best:
        top = torch.full(targets.shape, -100, dtype=torch.long, device=logits.device)
        top[valid] = chosen.argmax(dim=-1)
    if shift:  # the value of the prediction made at t belongs to label t + 1
        nll = torch.cat([nll.new_full((nll.shape[0], 1), -100.0), nll[:, :-1]], dim=1)
        top = None if top is None else torch.cat([top.new_full((top.shape[0], 1), -100), top[:, :-1]], dim=1)
    return (nll, top) if best else nll


def nll_stats(nll_row) -> dict[str, Any]:
    """``nll`` (sum) and ``tokens`` (count) of one example's predicted tokens, and their
    ``positions``: the entries of its :func:`token_nll` row that are not -100 (the Trainer
    pads the rows of its batches to one length with -100 too)."""
    import numpy as np

    values = np.asarray(nll_row, dtype=np.float64)
    positions = np.flatnonzero(values >= 0)
    return {"nll": float(values[positions].sum()), "tokens": int(len(positions)), "positions": positions}


def block_rows(row_lengths: list[int], block_lengths: list[int]) -> list[tuple[int, int]]:
    """For blocks cut from the concatenated rows, the first and last row (0-based) each
    block holds tokens of."""
    import bisect
    import itertools

    row_ends = list(itertools.accumulate(row_lengths))  # exclusive end of each row's tokens
    spans, start = [], 0
    for length in block_lengths:
        stop = start + length
        spans.append((bisect.bisect_right(row_ends, start), bisect.bisect_left(row_ends, stop)))
        start = stop
    return spans


def perplexity_scores(nll: float, tokens: int) -> dict[str, Any]:
    """One example's ``scores`` (its own perplexity, for reading: the metric is not their
    mean) and ``stats`` (the sums :func:`perplexity_metrics` adds up)."""
    import math

    return {"scores": {"perplexity": math.exp(min(nll / tokens, 700.0)) if tokens else None}, "stats": {"nll": nll, "tokens": tokens}}


def perplexity_metrics(columns: Mapping[str, Any]) -> dict[str, float]:
    """Corpus ``loss`` (mean negative log-likelihood per predicted token: all of it over all
    of them) and ``perplexity`` (its exp) from per-example ``nll`` / ``tokens`` columns."""
    import math

    tokens = float(columns["tokens"].sum())
    if not tokens:
        return {"loss": math.nan, "perplexity": math.nan}
    loss = float(columns["nll"].sum()) / tokens
    try:
        return {"loss": loss, "perplexity": math.exp(loss)}
    except OverflowError:
        return {"loss": loss, "perplexity": math.inf}


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
