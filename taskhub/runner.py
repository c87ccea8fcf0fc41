"""Runs one composed config: checks it, owns the run dir, dispatches to the mode
(:mod:`taskhub.modes`), and records the result.

Outputs in the run dir: ``metrics.json`` (every mode) plus the mode's own
(``model/``, ``predictions.jsonl``, ...). Each is written to a temporary name and
renamed, so a killed run never leaves a half-written file that looks complete.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from taskhub.config import RunConfig
from taskhub.options import check_options
from taskhub.dataroot import confined_to
from taskhub.engine.sharding import broadcast, is_main, on_main
from taskhub.errors import TaskhubError
from taskhub.manager import call_hook, get_registry
from taskhub.modes.evaluate import evaluate, evaluation_key, reusable_result
from taskhub.modes.predict import predict
from taskhub.modes.report import report
from taskhub.modes.train import train
from taskhub.provenance import resolve_auto_task
from taskhub.resume import remove_partials
from taskhub.rundir import acquire, atomic_path, check_outputs, claim, release as release_dir, writing

if TYPE_CHECKING:
    from taskhub.task import Task

log = logging.getLogger("taskhub")

#: mode -> ``(task, run, run_dir) -> (metrics, outputs)``.
MODES = {"train": train, "evaluate": evaluate, "predict": predict}


def execute(cfg: DictConfig, run_dir: str | os.PathLike, job: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run a composed config (as Hydra or :func:`taskhub.compose` builds it) in ``run_dir``.

    ``job`` (number, overrides) is recorded in ``metrics.json`` for sweep tables.
    Under torchrun / accelerate every rank calls it with the same ``run_dir``; the main
    process alone locks the dir and writes ``metrics.json`` and the report, and every
    rank returns the main process's result.
    """
    resolve_auto_task(cfg)  # task=auto: the checkpoint's own task (taskhub.provenance)
    run: RunConfig = OmegaConf.to_object(cfg)
    check_options(run)
    if run.model.name_or_path == "":  # `model.name_or_path=` would quietly mean the task's default
        raise TaskhubError("model.name_or_path is empty: name a model folder or hub id, or leave the option out for the task's default model")
    if run.mode.value == "report":
        return report(run)
    if run.mode.value == "push":  # uploads a finished model folder; writes no run outputs
        from taskhub.modes.push import push

        return push(run)
    spec = get_registry().get(run.task.name)
    task = spec.task_cls(run.task, run.model, device=run.device.value)
    task.seed = run.seed
    if run.mode.value == "demo":  # serves until Ctrl-C; writes no run outputs
        from taskhub.modes.demo import serve

        try:
            return serve(task, run)
        finally:
            release(task)
    _seed_everything(run.seed)
    run_dir = Path(run_dir)
    started = time.perf_counter()
    mode = run.mode.value
    try:
        with _owned(run_dir, mode), confined_to(run.data.root):
            key = evaluation_key(cfg, task, run) if mode == "evaluate" else None
            reused = on_main(reusable_result, key, run_dir, run)
            return _execute(task, cfg, run, run_dir, job, key, reused, started)
    finally:
        release(task)


@contextmanager
def _owned(run_dir: Path, mode: str) -> Iterator[None]:
    """The run dir for the block: the main process locks it and checks its outputs for
    every rank of the run (the others hold no lock), after checking that they all run
    in the same dir (``${now}`` in hydra.run.dir is resolved by each rank)."""
    main_dir = broadcast(str(run_dir))
    if main_dir != str(run_dir):
        raise TaskhubError(f"this process runs in {run_dir}, the main one in {main_dir}: set hydra.run.dir to a path without ${{now}}")
    key = on_main(_lock, run_dir, mode)
    try:
        yield
    finally:
        if is_main():
            release_dir(key)


def _lock(run_dir: Path, mode: str) -> str:
    key = acquire(run_dir, mode)
    try:
        check_outputs(run_dir, mode)
    except BaseException:
        release_dir(key)
        raise
    return key


def _execute(task: Task, cfg, run: RunConfig, run_dir: Path, job, key, reused, started) -> dict[str, Any]:
    mode = run.mode.value
    if reused is not None:
        metrics, outputs, status = reused["metrics"], {}, "cached"
        log.info("reusing the stored result of an identical evaluation (key %s)", key[:12])
    else:
        metrics, outputs, status = *broadcast(MODES[mode](task, run, run_dir)), "ok"
    history = metrics.pop("history", None)  # training's per-epoch rows: beside the metrics, not a table column
    result = {
        **(job or {}),
        "task": task.name,
        "mode": mode,
        "model": run.model.name_or_path or task.default_model or "from config",
        "status": status,
        "metrics": {k: float(v) if isinstance(v, (int, float)) else v for k, v in metrics.items()},
        **({"history": history} if history else {}),
        "wall_time_s": round(time.perf_counter() - started, 3),
        "run_dir": str(run_dir),
        "outputs": outputs,
    }
    if not is_main():
        return result
    if key is not None:
        result["key"] = key
        if status == "ok" and run.results_cache:
            from taskhub.sweeps import ResultCache

            ResultCache(run.results_cache).put(key, result)
    with writing(run_dir / "metrics.json"), atomic_path(run_dir / "metrics.json") as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")
    if mode == "predict":  # removed last: a kill before this point resumes to the same files
        remove_partials(run_dir)
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
