"""``mode=evaluate``: metrics on the test split (by ``Trainer.evaluate`` or by prediction),
keyed by content so a sweep re-run reuses what did not change."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from taskhub.compiling import compile_metrics
from taskhub.config import RunConfig
from taskhub.data import iter_rows, media_digest, read_split
from taskhub.engine.sharding import broadcast, gather_rows, is_main, my_rows
from taskhub.errors import BadRowError, TaskhubError
from taskhub.manager import call_hook, get_plugin_manager
from taskhub.modes.trainer import encode, make_trainer, training_arguments
from taskhub.progress import progress
from taskhub.rundir import atomic_path

if TYPE_CHECKING:
    from taskhub.task import Task

log = logging.getLogger("taskhub")


def evaluate(task: Task, run: RunConfig, run_dir: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """Metrics of the model on the test split (bad rows set aside with ``on_error=skip``)."""
    test = read_split(task, run.data, "test", with_targets=True)
    errors: list[dict[str, Any]] = []
    if run.on_error.value == "skip":
        test = without_bad_rows(task, test, errors)
    elif task.evaluate_by_prediction:  # references are never preprocessed there: check them first
        without_bad_rows(task, test, None)
    trainer = make_trainer(task, training_arguments(task, run, run_dir, has_validation=False, training=False), None, None)
    log.info("evaluating %s on %s rows (%s)", task.name, "streamed" if test.streaming else len(test.dataset), test.path)
    samples: list[dict[str, Any]] = []
    metrics = evaluate_split(task, trainer, test, run, samples)
    metrics.update(compile_metrics(task, "test"))  # model.compile: the part of test_runtime spent compiling
    outputs = evaluator_outputs(task, run, run_dir, samples, metrics) if is_main() else {}
    if run.on_error.value == "skip":
        metrics["test_errors"] = len(errors)
    if errors and is_main():
        with atomic_path(run_dir / "errors.jsonl") as tmp:
            tmp.write_text("".join(json.dumps(e, ensure_ascii=False, default=str) + "\n" for e in errors))
        outputs["errors"] = str(run_dir / "errors.jsonl")
        log.warning("%d rows of %s skipped: see %s", len(errors), test.path, outputs["errors"])
    return metrics, outputs


def evaluator_outputs(task: Task, run: RunConfig, run_dir: Path, samples: list[dict[str, Any]], metrics: dict[str, Any]) -> dict[str, str]:
    """What mode=evaluate adds to the metrics from the per-example scores: the main
    metric's bootstrap interval, `evaluate` library metrics, and ``samples.jsonl``."""
    from taskhub.scoring import SAMPLES, confidence_metrics, library_metrics, write_samples

    if not samples:
        if run.evaluate.metrics:
            raise TaskhubError(f"evaluate.metrics: task {task.name} has no per-example predictions to give them")
        return {}
    metrics.update(confidence_metrics(task, samples, "test", run.evaluate.bootstrap, run.seed))
    if run.evaluate.metrics:
        metrics.update(library_metrics(task, samples, list(run.evaluate.metrics), "test", metrics))
    if not run.evaluate.samples:
        return {}
    write_samples(run_dir / SAMPLES, samples)
    return {"samples": str(run_dir / SAMPLES)}


def evaluate_split(task: Task, trainer, split, run: RunConfig, samples: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Metrics of the current model on one split, prefixed with the split's name; with a
    ``samples`` list, also each row's input, reference, prediction and scores into it
    (:meth:`~taskhub.Task.score_examples`, on the main process).

    Under torchrun every rank returns the same metrics, computed once over the whole
    split: ``Trainer.evaluate`` gathers the ranks' batches itself; scores by prediction
    and the ``taskhub_metrics`` hooks run on the main process over every rank's share."""
    prefix = split.name
    hooked = bool(get_plugin_manager().hook.taskhub_metrics.get_hookimpls())
    predictions = None
    if task.evaluate_by_prediction:
        started = time.perf_counter()
        predictions = _predictions(task, split, run)
        elapsed = time.perf_counter() - started
        metrics = {}
        if predictions is not None:
            metrics = {f"{prefix}_{k}": v for k, v in task.score_predictions(predictions, split.dataset).items()}
            examples = task.score_examples(predictions, split.dataset) if samples is not None else None
            if examples is not None:
                samples.extend(_samples(task, examples, split, predictions))
            metrics[f"{prefix}_runtime"] = elapsed
            metrics[f"{prefix}_samples_per_second"] = len(predictions) / elapsed
    else:
        from_examples = _metrics_from_examples(task)
        if from_examples or (samples is not None and _scores_examples(task)):  # the same metrics, and the logits behind them
            output = _predict(trainer, encode(task, split), prefix)
            metrics = dict(output.metrics)
            if is_main():
                examples = task.score_examples(output, split.dataset)  # None: none for this split (e.g. captions)
                if from_examples and examples is not None:
                    from taskhub.metric_declarations import score_columns

                    metrics.update({f"{prefix}_{k}": v for k, v in task.aggregate_examples(score_columns(examples)).items()})
                if samples is not None and examples is not None:
                    samples.extend(_samples(task, examples, split))
        else:
            metrics = trainer.evaluate(encode(task, split), metric_key_prefix=prefix)
            metrics.pop("epoch", None)
        if hooked:
            predictions = _predictions(task, split, run)
    if is_main():
        metrics.update(task.derived_metrics(metrics, prefix))
        if hooked:
            for extra in call_hook("taskhub_metrics", task=task, split=prefix, predictions=predictions, references=split.dataset):
                metrics.update({f"{prefix}_{k}": v for k, v in extra.items()})
    return broadcast(metrics)


def _predict(trainer, dataset, prefix: str):
    """``Trainer.predict`` with the (reduced) logits kept, even for a task whose training
    arguments keep only the loss (``prediction_loss_only``: language models)."""
    args = trainer.args
    loss_only = args.prediction_loss_only
    args.prediction_loss_only = False
    try:
        return trainer.predict(dataset, metric_key_prefix=prefix)
    finally:
        args.prediction_loss_only = loss_only


def _scores_examples(task: Task) -> bool:
    from taskhub.task import Task

    return type(task).score_examples is not Task.score_examples


def _metrics_from_examples(task: Task) -> bool:
    """Whether a task evaluated by the Trainer takes its metrics from the aggregate of its
    per-example scores: one with no ``compute_metrics`` of its own (its metric comes from
    the loss: perplexity), which scores examples. The Trainer's loss is a mean of its
    batches' mean losses (weighted by examples, not tokens) and, for models whose class name
    does not say ``ForCausalLM`` (GPT-2's ``GPT2LMHeadModel``), divides by one token per
    block too many (transformers 5.25 counts the unshifted labels); the aggregate is the
    corpus value, all the negative log-likelihood over all the predicted tokens, and what
    ``samples.jsonl`` and the bootstrap interval add up to."""
    from taskhub.task import Task

    return not task.evaluate_by_prediction and type(task).compute_metrics is Task.compute_metrics and _scores_examples(task)


def _samples(task: Task, examples, split, predictions=None) -> list[dict[str, Any]]:
    from taskhub.scoring import sample_rows

    return sample_rows(task, examples or [], iter_rows(split.dataset), predictions)


def _predictions(task: Task, split, run: RunConfig) -> list | None:
    """The split's predictions in row order, on the main process (None on the others):
    each rank predicts its contiguous share of the rows."""
    start, stop = my_rows(None if split.streaming else len(split.dataset))
    mine = split.dataset if stop is None else split.dataset.select(range(start, stop))
    predictions = task.predict_iter(iter_rows(mine), source=split.path, first_row=start, **run.engine_options())
    return gather_rows(list(progress(predictions, None if stop is None else stop - start, f"evaluate {split.name}", run.progress)))


def without_bad_rows(task: Task, split, errors: list[dict[str, Any]] | None, chunk: int = 256):
    """``on_error=skip`` for evaluation: the split minus the rows whose inputs or targets
    do not preprocess; each of those is appended to ``errors`` (row, input, reason).
    With ``errors=None`` the first bad row raises. Reads the split a chunk at a time (a
    stream too: its bad rows are then filtered out as it is read again)."""
    bad: list[int] = []
    rows = 0
    for columns, raw in zip(split.dataset.iter(batch_size=chunk), split.raw.iter(batch_size=chunk)):
        start = rows
        live = list(range(len(next(iter(columns.values())))))
        rows += len(live)
        while live:
            batch = {k: [values[i] for i in live] for k, values in columns.items()}
            try:
                task.run_preprocess(batch, split.path, [start + i + 1 for i in live], with_targets=True)
                break
            except BadRowError as err:
                if errors is None:
                    raise
                index = err.row_number - 1
                bad.append(index)
                errors.append({"row": err.row_number, "input": {k: v[index - start] for k, v in raw.items()}, "reason": err.reason})
                live.remove(index - start)
    if not bad:
        return split
    errors.sort(key=lambda e: e["row"])
    if len(bad) == rows:
        raise TaskhubError(f"{split.path}: every row is bad (first: row {errors[0]['row']}: {errors[0]['reason']})")
    if split.streaming:
        dropped = set(bad)
        keep = lambda _, index: index not in dropped  # noqa: E731
        return dataclasses.replace(split, raw=split.raw.filter(keep, with_indices=True), dataset=split.dataset.filter(keep, with_indices=True))
    keep = sorted(set(range(rows)) - set(bad))
    return dataclasses.replace(split, raw=split.raw.select(keep), dataset=split.dataset.select(keep))


def evaluation_key(cfg: DictConfig, task: Task, run: RunConfig) -> str | None:
    """Content key of an evaluation: resolved config + checkpoint bytes + data bytes."""
    from taskhub.data import split_path
    from taskhub.modeling import model_source, resolve_path
    from taskhub.sweeps import job_key

    data_file = split_path(task, run.data, "test")
    if not isinstance(data_file, str) or not os.path.isfile(resolve_path(data_file)):  # a glob, list or folder: no reuse
        return None
    settings = OmegaConf.to_container(cfg, resolve=True)
    for volatile in ("hydra", "results_cache", "fail_fast", "report"):
        settings.pop(volatile, None)
    settings["model"].pop("name_or_path", None)
    settings["data"]["test"] = None
    try:
        model_dir = model_source(task).name_or_path
    except TaskhubError:
        return None
    settings["media"] = media_digest(task, read_split(task, run.data, "test", with_targets=False)) if task.path_columns else None
    return job_key(json.dumps(settings, sort_keys=True, default=str), model_dir, [resolve_path(data_file)])


def reusable_result(key: str | None, run_dir: Path, run: RunConfig) -> dict[str, Any] | None:
    """A stored result of the same evaluation: the run dir's own (a sweep re-run into the
    same dir) or the results cache's, with its samples; none when ``results_cache=null``."""
    if key is None or not run.results_cache:
        return None
    previous = run_dir / "metrics.json"
    if previous.is_file():
        try:
            result = json.loads(previous.read_text())
        except json.JSONDecodeError:
            result = {}
        if result.get("key") == key and result.get("status") in ("ok", "cached"):
            return result
    from taskhub.sweeps import ResultCache

    return ResultCache(run.results_cache).get(key, run_dir)
