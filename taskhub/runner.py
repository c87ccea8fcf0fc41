"""Runs one composed config: train, evaluate or predict, and writes the outputs.

Outputs in the run dir: ``metrics.json`` (every mode), ``predictions.jsonl``
(predict), ``model/`` (train; ``save_pretrained`` of model and processor). Each
is written to a temporary name and renamed, so a killed run never leaves a
half-written file that looks complete.
"""

from __future__ import annotations

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

from taskhub.config import RunConfig
from taskhub.data import read_split
from taskhub.errors import TaskhubError
from taskhub.manager import get_plugin_manager, get_registry
from taskhub.task import model_inputs

if TYPE_CHECKING:
    from taskhub.task import Task

log = logging.getLogger("taskhub")


def execute(cfg: DictConfig, run_dir: str | os.PathLike, job: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run a composed config (as Hydra or :func:`taskhub.compose` builds it) in ``run_dir``.

    ``job`` (number, overrides) is recorded in ``metrics.json`` for sweep tables.
    """
    run: RunConfig = OmegaConf.to_object(cfg)
    if run.mode.value == "report":
        return _report_sweep(run)
    spec = get_registry().get(run.task.name)
    task = spec.task_cls(run.task, run.model, device=run.device.value)
    task.seed = run.seed
    _seed_everything(run.seed)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    mode = run.mode.value
    key = evaluation_key(cfg, task, run) if mode == "evaluate" else None
    reused = _reusable_result(key, run_dir, run)
    try:
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
    with atomic_path(run_dir / "metrics.json") as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")
    outputs["metrics"] = str(run_dir / "metrics.json")
    _report(result)
    get_plugin_manager().hook.taskhub_run_end(task=task, cfg=cfg, result=result)
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
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    with atomic_path(Path(run_dir) / "metrics.json") as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")
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
    return job_key(json.dumps(settings, sort_keys=True, default=str), model_dir, [resolve_path(data_file)])


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
    """Drop the task's model and free accelerator memory (sweeps run many jobs in one process)."""
    import gc

    loaded = task._model is not None  # noqa: SLF001
    task._model = None  # noqa: SLF001
    gc.collect()
    if loaded:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


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
    task.model = load_model(task, **task.model_init_kwargs(train.dataset))
    train_set = encode(task, train)
    held_out = [s for s in (validation, test) if s is not None]
    validation_set = encode(task, validation) if validation is not None else None

    args = training_arguments(task, run, run_dir, has_validation=validation is not None)
    callbacks = [cb for cbs in get_plugin_manager().hook.taskhub_trainer_callbacks(task=task, cfg=run) for cb in cbs]
    trainer = make_trainer(task, args, train_set, validation_set, callbacks)
    metrics: dict[str, Any] = {}
    before = run.evaluate_before_training
    if before if before is not None else task.evaluate_before_training:
        for split in held_out:
            metrics.update({f"before_{k}": v for k, v in evaluate_split(task, trainer, split, run).items()})
    log.info("training %s on %d rows (%s)", task.name, len(train_set), train.path)
    metrics.update({f"train_{k.removeprefix('train_')}": v for k, v in trainer.train().metrics.items()})
    for split in held_out:
        metrics.update(evaluate_split(task, trainer, split, run))
    model_dir = run_dir / "model"
    with atomic_path(model_dir) as tmp:
        trainer.save_model(str(tmp))
        task.processor.save_pretrained(str(tmp))
        # The Trainer pickles its arguments; keep a readable copy instead of a pickle.
        (tmp / "training_args.bin").unlink(missing_ok=True)
        (tmp / "training_args.json").write_text(args.to_json_string())
    return metrics, {"model": str(model_dir)}


#: Encoded splits kept in memory, so jobs of one sweep process reuse tokenized data.
_encoded: OrderedDict[str, Any] = OrderedDict()
ENCODED_SPLITS_KEPT = 4
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack", ".ckpt")


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
        folder_digest(source.name_or_path, exclude_suffixes=WEIGHT_SUFFIXES),
        json.dumps(source.processor, sort_keys=True, default=str),
        task.model.config.to_json_string(use_diff=False),
    ]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _encode(task: Task, split) -> Any:
    dataset = split.dataset

    def encode_batch(batch, indices):
        features = task.run_preprocess(batch, split.path, [i + 1 for i in indices], with_targets=True)
        return model_inputs(features)

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
        predictions = list(task.predict_iter(split.dataset, batch_size=run.batch_size, source=split.path))
        elapsed = time.perf_counter() - started
        scores = task.score_predictions(predictions, split.dataset)
        metrics = {f"{prefix}_{k}": v for k, v in scores.items()}
        metrics[f"{prefix}_runtime"] = elapsed
        metrics[f"{prefix}_samples_per_second"] = len(predictions) / elapsed
    else:
        metrics = trainer.evaluate(encode(task, split), metric_key_prefix=prefix)
        metrics.pop("epoch", None)
    metrics.update(task.derived_metrics(metrics, prefix))
    hook = get_plugin_manager().hook.taskhub_metrics
    if hook.get_hookimpls():
        if not task.evaluate_by_prediction:
            predictions = list(task.predict_iter(split.dataset, batch_size=run.batch_size, source=split.path))
        for extra in hook(task=task, split=prefix, predictions=predictions, references=split.dataset):
            metrics.update({f"{prefix}_{k}": v for k, v in (extra or {}).items()})
    return metrics


def training_arguments(task: Task, run: RunConfig, run_dir: Path, has_validation: bool):
    from transformers import TrainingArguments

    from taskhub.modeling import resolve_device

    values = {
        "output_dir": str(run_dir / "checkpoints"),
        "report_to": "none",
        "seed": run.seed,
        "eval_strategy": "epoch" if has_validation else "no",
        "save_strategy": "no",
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
    trainer = make_trainer(task, training_arguments(task, run, run_dir, has_validation=False), None, None)
    log.info("evaluating %s on %d rows (%s)", task.name, len(test.dataset), test.path)
    return evaluate_split(task, trainer, test, run), {}


# -------------------------------------------------------------------- predict
def _predict(task: Task, run: RunConfig, run_dir: Path):
    split = read_split(task, run.data, "predict", with_targets=False)
    path = run_dir / "predictions.jsonl"
    started = time.perf_counter()
    rows = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as out:
        predictions = task.predict_iter(split.dataset, batch_size=run.batch_size, source=split.path)
        for raw, prediction in zip(split.raw, predictions, strict=True):
            out.write(json.dumps(merge_prediction(raw, prediction), ensure_ascii=False, default=str) + "\n")
            rows += 1
    elapsed = time.perf_counter() - started
    metrics = {"predict_rows": rows, "predict_runtime": elapsed, "predict_rows_per_second": rows / elapsed}
    return metrics, {"predictions": str(path)}


def merge_prediction(raw: Mapping[str, Any], prediction: Mapping[str, Any]) -> dict[str, Any]:
    """The input row plus the prediction fields; an input field a prediction field
    would overwrite is kept as ``input_<name>``."""
    merged = {(f"input_{k}" if k in prediction else k): v for k, v in raw.items()}
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
