"""Runs one composed config: train, evaluate or predict, and writes the outputs.

Outputs in the run dir: ``metrics.json`` (every mode), ``predictions.jsonl``
(predict), ``model/`` (train; ``save_pretrained`` of model and processor). Each
is written to a temporary name and renamed, so a killed run never leaves a
half-written file that looks complete.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from collections import OrderedDict
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from taskhub.config import RunConfig, check_options
from taskhub.data import iter_rows, read_split
from taskhub.dataroot import confined_to
from taskhub.errors import BadRowError, RowError, RowFailure, TaskhubError
from taskhub.manager import call_hook, get_plugin_manager, get_registry
from taskhub.model_card import render_model_card
from taskhub.resume import PARTIAL, PartialWriter, predict_key, resumable_rows, start_partial
from taskhub.rundir import check_outputs, claim, writing
from taskhub.task import model_inputs
from taskhub.text import reporting_cuts

if TYPE_CHECKING:
    from taskhub.task import Task

log = logging.getLogger("taskhub")


def execute(cfg: DictConfig, run_dir: str | os.PathLike, job: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run a composed config (as Hydra or :func:`taskhub.compose` builds it) in ``run_dir``.

    ``job`` (number, overrides) is recorded in ``metrics.json`` for sweep tables.
    """
    run: RunConfig = OmegaConf.to_object(cfg)
    check_options(run)
    if run.model.name_or_path == "":  # `model.name_or_path=` would quietly mean the task's default
        raise TaskhubError("model.name_or_path is empty: name a model folder or hub id, or leave the option out for the task's default model")
    if run.mode.value == "report":
        return _report_sweep(run)
    spec = get_registry().get(run.task.name)
    task = spec.task_cls(run.task, run.model, device=run.device.value)
    task.seed = run.seed
    if run.mode.value == "demo":  # serves until Ctrl-C; writes no run outputs
        from taskhub.demo import serve

        try:
            return serve(task, run)
        finally:
            release(task)
    _seed_everything(run.seed)
    run_dir = Path(run_dir)
    started = time.perf_counter()
    mode = run.mode.value
    try:
        with claim(run_dir, mode), confined_to(run.data.root):
            check_outputs(run_dir, mode)
            key = evaluation_key(cfg, task, run) if mode == "evaluate" else None
            reused = _reusable_result(key, run_dir, run)
            return _execute(task, cfg, run, run_dir, job, key, reused, started)
    finally:
        release(task)


def _execute(task: Task, cfg, run: RunConfig, run_dir: Path, job, key, reused, started) -> dict[str, Any]:
    mode = run.mode.value
    if reused is not None:
        metrics, outputs, status = reused["metrics"], {}, "cached"
        log.info("reusing the stored result of an identical evaluation (key %s)", key[:12])
    elif mode == "train":
        metrics, outputs, status = *_train(task, run, run_dir), "ok"
    elif mode == "evaluate":
        metrics, outputs, status = *_evaluate(task, run, run_dir), "ok"
    else:
        metrics, outputs, status = *_predict(task, run, run_dir), "ok"
    result = {
        **(job or {}),
        "task": task.name,
        "mode": mode,
        "model": run.model.name_or_path or task.default_model or "from config",
        "status": status,
        "metrics": {k: float(v) if isinstance(v, (int, float)) else v for k, v in metrics.items()},
        "wall_time_s": round(time.perf_counter() - started, 3),
        "run_dir": str(run_dir),
        "outputs": outputs,
    }
    if key is not None:
        result["key"] = key
        if status == "ok" and run.results_cache:
            from taskhub.sweeps import ResultCache

            ResultCache(run.results_cache).put(key, result)
    with writing(run_dir / "metrics.json"), atomic_path(run_dir / "metrics.json") as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")
    if mode == "predict":  # removed last: a kill before this point resumes to the same files
        (run_dir / PARTIAL).unlink(missing_ok=True)
    outputs["metrics"] = str(run_dir / "metrics.json")
    _report(result)
    call_hook("taskhub_run_end", task=task, cfg=cfg, result=result)
    return result


def record_failure(cfg: DictConfig, run_dir: str | os.PathLike, error: BaseException, job: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write a failed job's ``metrics.json`` (status, error) so the sweep table shows it."""
    message = str(error) if isinstance(error, TaskhubError) else f"{type(error).__name__}: {error}"
    result = {
        **(job or {}),
        "task": cfg.task.name,
        "mode": getattr(cfg.mode, "value", cfg.mode),
        "model": OmegaConf.select(cfg, "model.name_or_path") or "default",
        "status": "failed",
        "error": " ".join(message.split()),
        "metrics": {},
        "run_dir": str(run_dir),
    }
    try:
        with claim(run_dir, result["mode"]):
            check_outputs(run_dir, result["mode"])
            with atomic_path(Path(run_dir) / "metrics.json") as tmp:
                tmp.write_text(json.dumps(result, indent=2) + "\n")
    except TaskhubError:
        pass  # the dir is another run's (or unwritable): its outputs stay as they are
    return result


def evaluation_key(cfg: DictConfig, task: Task, run: RunConfig) -> str | None:
    """Content key of an evaluation: resolved config + checkpoint bytes + data bytes."""
    from taskhub.data import split_path
    from taskhub.modeling import model_source, resolve_path
    from taskhub.sweeps import job_key

    data_file = split_path(task, run.data, "test")
    if data_file is None or not os.path.isfile(resolve_path(data_file)):
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
    settings["media"] = media_stamps(task, run)
    return job_key(json.dumps(settings, sort_keys=True, default=str), model_dir, [resolve_path(data_file)])


def media_stamps(task: Task, run: RunConfig) -> list[str]:
    """Path, size and modification time of each file the test split points to (images,
    audio): a file replaced in place must not be served a cached result."""
    if not task.path_columns:
        return []
    split = read_split(task, run.data, "test", with_targets=False)
    stamps = []
    for column in task.path_columns:
        if column in split.dataset.column_names:
            for value in split.dataset[column]:
                if isinstance(value, str) and os.path.isfile(value):
                    stat = os.stat(value)
                    stamps.append(f"{value}:{stat.st_size}:{stat.st_mtime_ns}")
    return stamps


def _reusable_result(key: str | None, run_dir: Path, run: RunConfig) -> dict[str, Any] | None:
    if key is None:
        return None
    previous = run_dir / "metrics.json"
    if previous.is_file():
        try:
            result = json.loads(previous.read_text())
        except json.JSONDecodeError:
            result = {}
        if result.get("key") == key and result.get("status") in ("ok", "cached"):
            return result
    if run.results_cache:
        from taskhub.sweeps import ResultCache

        return ResultCache(run.results_cache).get(key)
    return None


def _seed_everything(seed: int) -> None:
    from transformers import set_seed

    set_seed(seed)


def release(task: Task) -> None:
    """Drop the task's model; on an accelerator, also free its memory before the next
    sweep job loads one. On the CPU Python's own collector suffices: a full
    ``gc.collect()`` walks the whole heap (0.3-0.4 s after a run) for nothing."""
    model, task._model = task._model, None  # noqa: SLF001
    if model is None:
        return
    device = getattr(model, "device", None)
    del model
    if device is not None and device.type != "cpu":
        import gc

        import torch

        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        elif device.type == "mps":
            torch.mps.empty_cache()


def _report_sweep(run: RunConfig) -> dict[str, Any]:
    from taskhub.sweeps import render_markdown, sort_rows, write_table

    if not run.report.dir:
        raise TaskhubError("mode=report needs report.dir=<a sweep dir, e.g. multirun/2026-11-22_10-00-00>")
    if not os.path.isdir(run.report.dir):
        raise TaskhubError(f"report.dir: no such folder: {run.report.dir}")
    rows = write_table(run.report.dir)
    rows = sort_rows(rows, run.report.sort, descending=not run.report.ascending)
    if not rows:
        raise TaskhubError(f"{run.report.dir}: no job results (metrics.json) found")
    print(render_markdown(rows), end="", flush=True)
    return {"mode": "report", "rows": rows, "outputs": {s: os.path.join(run.report.dir, f"results.{s}") for s in ("csv", "md", "json")}}


# ---------------------------------------------------------------------- train
def _train(task: Task, run: RunConfig, run_dir: Path):
    from transformers import set_seed

    set_seed(run.seed)
    train = read_split(task, run.data, "train", with_targets=True)
    validation = read_split(task, run.data, "validation", with_targets=True, required=False)
    test = read_split(task, run.data, "test", with_targets=True, required=False)

    from taskhub.modeling import load_model, model_source, processor_from_data

    if processor_from_data(task):
        task.processor = task.train_processor(train.dataset, model_source(task).processor)
    try:
        init_kwargs = task.model_init_kwargs(train.dataset)
    except RowError as err:
        raise BadRowError(train.path, err.index + 1, err.message) from None
    task.model = load_model(task, **init_kwargs)
    train_set = encode(task, train)
    held_out = [s for s in (validation, test) if s is not None]
    validation_set = encode(task, validation) if validation is not None else None

    args = training_arguments(task, run, run_dir, has_validation=validation is not None)
    from taskhub.checkpoints import CheckpointSeal, saved_step, whole_run_loss

    callbacks = [CheckpointSeal(), *(cb for cbs in call_hook("taskhub_trainer_callbacks", task=task, cfg=run) for cb in cbs)]
    trainer = make_trainer(task, args, train_set, validation_set, callbacks)
    metrics: dict[str, Any] = {}
    before = run.evaluate_before_training
    if before if before is not None else task.evaluate_before_training:
        for split in held_out:
            metrics.update({f"before_{k}": v for k, v in evaluate_split(task, trainer, split, run).items()})
    checkpoint = resume_checkpoint(run, args.output_dir)
    resumed_at = saved_step(checkpoint) if checkpoint else 0  # read now: rotation may remove it
    log.info("training %s on %d rows (%s)%s", task.name, len(train_set), train.path, f", resuming from {checkpoint}" if checkpoint else "")
    trained = trainer.train(resume_from_checkpoint=checkpoint)
    metrics.update({f"train_{k.removeprefix('train_')}": v for k, v in trained.metrics.items()})
    if checkpoint:  # the Trainer's train_loss averages the resumed steps only
        whole = whole_run_loss(trainer.state.log_history, resumed_at, trainer.state.global_step)
        metrics["train_loss"] = whole if whole is not None else metrics["train_loss"]
    for split in held_out:
        metrics.update(evaluate_split(task, trainer, split, run))
    model_dir = run_dir / "model"
    with writing(model_dir), atomic_path(model_dir) as tmp:
        trainer.save_model(str(tmp))
        task.processor.save_pretrained(str(tmp))
        # The Trainer pickles its arguments; keep a readable copy instead of a pickle.
        (tmp / "training_args.bin").unlink(missing_ok=True)
        (tmp / "training_args.json").write_text(args.to_json_string())
        data = {split.name: split.path for split in (train, validation, test) if split is not None}
        card = render_model_card(task, run, metrics, data, json.loads(args.to_json_string()))
        (tmp / "README.md").write_text(card, encoding="utf-8")
    if run.train.save_strategy is None and "save_strategy" not in run.train.args:
        shutil.rmtree(args.output_dir, ignore_errors=True)  # only there for resuming
    return metrics, {"model": str(model_dir)}


def resume_checkpoint(run: RunConfig, checkpoints: str) -> str | None:
    """The checkpoint ``train.resume`` names: for "auto" the newest one that proves it is
    complete (None when there is none; see :mod:`taskhub.checkpoints`)."""
    from taskhub.checkpoints import check_named, newest_complete

    resume = run.train.resume
    if not resume:
        return None
    if resume == "auto":
        return newest_complete(checkpoints)
    if not os.path.isdir(resume):
        raise TaskhubError(f"train.resume={resume}: not a checkpoint folder (or use train.resume=auto)")
    check_named(resume)
    return resume


#: Encoded splits kept in memory, so jobs of one sweep process reuse tokenized data.
_encoded: OrderedDict[str, Any] = OrderedDict()
ENCODED_SPLITS_KEPT = 4
#: Checkpoint files that cannot change how data is encoded: weights, optimizer and
#: trainer state, the model card.
NOT_ENCODING_FILES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack", ".ckpt", "trainer_state.json", "training_args.json", "README.md")


def encode(task: Task, split) -> Any:
    """Preprocess a whole split for the Trainer, with errors naming file and row.

    The result is reused within the process when the same split is encoded with the same
    processor files, task options and model config (e.g. many checkpoints of one run).
    """
    key = _encoding_key(task, split)
    if key in _encoded:
        _encoded.move_to_end(key)
        return _encoded[key]
    encoded = _encode(task, split)
    if key is not None:
        _encoded[key] = encoded
        while len(_encoded) > ENCODED_SPLITS_KEPT:
            _encoded.popitem(last=False)
    return encoded


def _encoding_key(task: Task, split) -> str | None:
    import hashlib

    from taskhub.modeling import model_source, resolve_path
    from taskhub.sweeps import file_digest, folder_digest

    source = model_source(task)
    if source.name_or_path is None or not os.path.isdir(source.name_or_path):
        return None  # a processor trained in this run, or a hub id: nothing to key on
    parts = [
        type(task).__qualname__,
        repr(task.config),
        split.name,
        file_digest(resolve_path(split.path)),
        str(len(split.dataset)),
        ",".join(split.dataset.column_names),
        folder_digest(source.name_or_path, exclude_suffixes=NOT_ENCODING_FILES),
        json.dumps(source.processor, sort_keys=True, default=str),
        json.dumps({k: v for k, v in task.model.config.to_dict().items() if k != "_name_or_path"}, sort_keys=True, default=str),
    ]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _encode(task: Task, split) -> Any:
    dataset = split.dataset

    def encode_batch(batch, indices):
        features = task.run_preprocess(batch, split.path, [i + 1 for i in indices], with_targets=True)
        return model_inputs(features)

    with reporting_cuts(task):  # one warning per split for texts cut to a limit
        return dataset.map(
            encode_batch,
            batched=True,
            with_indices=True,
            remove_columns=dataset.column_names,
            keep_in_memory=True,
            load_from_cache_file=False,
            new_fingerprint=f"taskhub-{task.name}-{split.name}-{time.time_ns()}",
        )


def evaluate_split(task: Task, trainer, split, run: RunConfig) -> dict[str, Any]:
    """Metrics of the current model on one split, prefixed with the split's name."""
    prefix = split.name
    if task.evaluate_by_prediction:
        started = time.perf_counter()
        predictions = list(task.predict_iter(iter_rows(split.dataset), source=split.path, **engine_options(run)))
        elapsed = time.perf_counter() - started
        scores = task.score_predictions(predictions, split.dataset)
        metrics = {f"{prefix}_{k}": v for k, v in scores.items()}
        metrics[f"{prefix}_runtime"] = elapsed
        metrics[f"{prefix}_samples_per_second"] = len(predictions) / elapsed
    else:
        metrics = trainer.evaluate(encode(task, split), metric_key_prefix=prefix)
        metrics.pop("epoch", None)
    metrics.update(task.derived_metrics(metrics, prefix))
    if get_plugin_manager().hook.taskhub_metrics.get_hookimpls():
        if not task.evaluate_by_prediction:
            predictions = list(task.predict_iter(iter_rows(split.dataset), source=split.path, **engine_options(run)))
        for extra in call_hook("taskhub_metrics", task=task, split=prefix, predictions=predictions, references=split.dataset):
            metrics.update({f"{prefix}_{k}": v for k, v in extra.items()})
    return metrics


def training_arguments(task: Task, run: RunConfig, run_dir: Path, has_validation: bool, training: bool = True):
    from transformers import TrainingArguments

    from taskhub.modeling import resolve_device

    values = {
        # Evaluation saves nothing: no empty checkpoints/ folder in its run dir.
        "output_dir": str(run_dir / "checkpoints" if training else run_dir),
        "report_to": "none",
        "seed": run.seed,
        "eval_strategy": "epoch" if has_validation else "no",
        # A checkpoint per epoch (the newest kept) for train.resume; removed after a
        # successful run unless the user set the save strategy.
        "save_strategy": "epoch",
        "save_total_limit": 1,
        "logging_strategy": "epoch",
        "use_cpu": resolve_device(run.device.value) == "cpu",
        **task.training_defaults,
        **run.train.set_values(),
    }
    known = {f.name for f in fields(TrainingArguments)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise TaskhubError(f"train.args.{unknown[0]}: not a transformers.TrainingArguments field")
    try:
        return TrainingArguments(**values)
    except (ValueError, TypeError) as exc:
        raise TaskhubError(f"invalid training arguments: {str(exc).strip().splitlines()[0]}") from None


def make_trainer(task: Task, args, train_set, eval_set, callbacks=()):
    from taskhub.modeling import transformers_attr

    trainer_cls = transformers_attr(task.trainer_class)
    return trainer_cls(
        model=task.model,
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        data_collator=task.build_training_collator(),
        processing_class=task.processor,
        compute_metrics=task.compute_metrics,
        callbacks=list(callbacks),
    )


# ------------------------------------------------------------------- evaluate
def _evaluate(task: Task, run: RunConfig, run_dir: Path):
    test = read_split(task, run.data, "test", with_targets=True)
    errors: list[dict[str, Any]] = []
    if run.on_error.value == "skip":
        test = without_bad_rows(task, test, errors)
    elif task.evaluate_by_prediction:  # references are never preprocessed there: check them first
        without_bad_rows(task, test, None)
    trainer = make_trainer(task, training_arguments(task, run, run_dir, has_validation=False, training=False), None, None)
    log.info("evaluating %s on %d rows (%s)", task.name, len(test.dataset), test.path)
    metrics = evaluate_split(task, trainer, test, run)
    outputs = {}
    if run.on_error.value == "skip":
        metrics["test_errors"] = len(errors)
    if errors:
        with atomic_path(run_dir / "errors.jsonl") as tmp:
            tmp.write_text("".join(json.dumps(e, ensure_ascii=False, default=str) + "\n" for e in errors))
        outputs["errors"] = str(run_dir / "errors.jsonl")
        log.warning("%d rows of %s skipped: see %s", len(errors), test.path, outputs["errors"])
    return metrics, outputs


def without_bad_rows(task: Task, split, errors: list[dict[str, Any]] | None, chunk: int = 256):
    """``on_error=skip`` for evaluation: the split minus the rows whose inputs or targets
    do not preprocess; each of those is appended to ``errors`` (row, input, reason).
    With ``errors=None`` the first bad row raises."""
    bad: list[int] = []
    for start in range(0, len(split.dataset), chunk):
        columns = split.dataset[start : start + chunk]
        live = list(range(len(next(iter(columns.values())))))
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
                errors.append({"row": err.row_number, "input": split.raw[index], "reason": err.reason})
                live.remove(index - start)
    if not bad:
        return split
    errors.sort(key=lambda e: e["row"])
    keep = sorted(set(range(len(split.dataset))) - set(bad))
    if not keep:
        raise TaskhubError(f"{split.path}: every row is bad (first: row {errors[0]['row']}: {errors[0]['reason']})")
    return dataclasses.replace(split, raw=split.raw.select(keep), dataset=split.dataset.select(keep))


# -------------------------------------------------------------------- predict
def _predict(task: Task, run: RunConfig, run_dir: Path):
    """Predict a file into ``predictions.jsonl`` (+ ``errors.jsonl`` with ``on_error=skip``).

    Results go to a partial file as they come, one line per input row (a prediction or
    an error), flushed every 64 rows; the final files are split from it and renamed
    into place at the end. ``predict.resume`` continues a killed run from that file,
    when its content key matches (:mod:`taskhub.resume`).
    """
    split = read_split(task, run.data, "predict", with_targets=False)
    partial = run_dir / PARTIAL
    total = len(split.raw)
    key = predict_key(task, run, split)
    done = resumable_rows(partial, key, total) if run.predict.resume else 0
    if done:
        log.info("resuming: %d of %d rows already predicted (%s)", done, total, partial)
    else:
        with writing(partial):
            start_partial(partial, key)
    started = time.perf_counter()
    if done < total:  # all done: the kill came while the final files were written
        _predict_rows(task, run, split, partial, done)
    elapsed = time.perf_counter() - started
    rows, errors = _finish_predictions(partial, run_dir, total)
    metrics = {
        "predict_rows": rows,
        "predict_errors": errors,
        "predict_runtime": elapsed,
        "predict_rows_per_second": (total - done) / elapsed if elapsed else 0.0,
    }
    outputs = {"predictions": str(run_dir / "predictions.jsonl")}
    if errors:
        outputs["errors"] = str(run_dir / "errors.jsonl")
        log.warning("%d of %d rows skipped: see %s", errors, total, outputs["errors"])
    return metrics, outputs


def _predict_rows(task: Task, run: RunConfig, split, partial: Path, done: int) -> None:
    """Append one line per input row from row ``done`` on. A run that fails before its
    first row removes its partial file: a header alone is nothing to resume."""
    options = {**engine_options(run), "on_error": run.on_error.value, "first_row": done}
    inputs = split.dataset.select(range(done, len(split.dataset))) if done else split.dataset
    raw_rows = split.raw.select(range(done, len(split.raw))) if done else split.raw
    out = PartialWriter(partial)
    try:
        with out:
            predictions = task.predict_iter(iter_rows(inputs), source=split.path, **options)
            for raw, prediction in zip(iter_rows(raw_rows), predictions, strict=True):
                if isinstance(prediction, RowFailure):
                    out.write({"error": {"row": prediction.row + 1, "input": raw, "reason": prediction.reason}})
                else:
                    out.write({"prediction": merge_prediction(raw, prediction)})
    except BaseException:
        if done + out.rows == 0:
            partial.unlink(missing_ok=True)
        raise


def _finish_predictions(partial: Path, run_dir: Path, total: int) -> tuple[int, int]:
    """Split the partial file into ``predictions.jsonl`` and ``errors.jsonl``; they are
    renamed into place only once their rows add up to the input's. The partial file stays
    until ``metrics.json`` is written, so a kill in between resumes to the same files."""
    rows = errors = 0
    with (
        writing(f"the predictions into {run_dir}", then="the partial file is kept: free space, then re-run with predict.resume=true"),
        atomic_path(run_dir / "predictions.jsonl") as predictions_tmp,
        atomic_path(run_dir / "errors.jsonl") as errors_tmp,
        open(partial, encoding="utf-8") as lines,
        open(predictions_tmp, "w", encoding="utf-8") as predictions,
        open(errors_tmp, "w", encoding="utf-8") as failures,
    ):
        next(lines)  # the header
        for line in lines:
            entry = json.loads(line)
            if "prediction" in entry:
                predictions.write(json.dumps(entry["prediction"], ensure_ascii=False) + "\n")
                rows += 1
            else:
                failures.write(json.dumps(entry["error"], ensure_ascii=False) + "\n")
                errors += 1
        if rows + errors != total:
            raise RuntimeError(f"{partial}: {rows} predictions and {errors} errors for {total} input rows")
    if not errors:
        (run_dir / "errors.jsonl").unlink()
    return rows, errors


def engine_options(run: RunConfig) -> dict[str, Any]:
    """The run's batching settings, as :meth:`Task.predict_iter` takes them."""
    for key, value in (("batch_size", run.batch_size), ("predict.max_tokens", run.predict.max_tokens)):
        if value is not None and value < 1:
            raise TaskhubError(f"{key}={value}: must be at least 1")
    return {"batch_size": run.batch_size, "max_tokens": run.predict.max_tokens, "sort_by_length": run.predict.sort_by_length}


def merge_prediction(raw: Mapping[str, Any], prediction: Mapping[str, Any]) -> dict[str, Any]:
    """The input row plus the prediction fields. An input field a prediction field would
    overwrite is kept as ``input_<name>`` (``input_<name>_2``, ... when the row already has
    that name too): every value the user wrote stays in the output."""
    taken = set(raw) | set(prediction)
    merged = {}
    for key, value in raw.items():
        if key in prediction:
            renamed, n = f"input_{key}", 2
            while renamed in taken:
                renamed, n = f"input_{key}_{n}", n + 1
            taken.add(renamed)
            key = renamed
        merged[key] = value
    merged.update(prediction)
    return merged


# -------------------------------------------------------------------- helpers
@contextmanager
def atomic_path(final: Path):
    """Yield a temporary sibling path; rename it onto ``final`` only if the block succeeds."""
    tmp = final.with_name(f".{final.name}.tmp")
    _remove(tmp)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    _remove(final)
    os.replace(tmp, final)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _report(result: dict[str, Any]) -> None:
    """Print the metrics; ``before_*`` values (evaluated before training) side by side."""
    metrics = result["metrics"]
    shown = {k: v for k, v in metrics.items() if not k.startswith("before_")}
    width = max((len(k) for k in shown), default=0)
    lines = [f"taskhub {result['task']} {result['mode']}: {result['run_dir']}"]
    if any(k.startswith("before_") for k in metrics):
        lines.append(f"  {'':<{width}}  {'before':>12}  {'after':>12}")
    for key, value in shown.items():
        before = metrics.get(f"before_{key}")
        text = _fmt(value) if before is None else f"{_fmt(before):>12}  {_fmt(value):>12}"
        lines.append(f"  {key:<{width}}  {text}")
    print("\n".join(lines), flush=True)


def _fmt(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)
