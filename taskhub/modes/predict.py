"""``mode=predict``: stream the input through the task into ``predict.output`` (JSON
Lines, CSV or Parquet; your fields kept), resumable after a kill; or, with
``predict.output_format=parquet`` on Ray, a folder of Parquet shards Ray Data writes."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskhub.compiling import compile_metrics
from taskhub.config import RunConfig
from taskhub.data import iter_rows, read_split, rows_from
from taskhub.engine.sharding import gather, my_rows, world
from taskhub.errors import RowFailure, TaskhubError
from taskhub.outputs import finish_predictions, merge_prediction, output_path, parquet_folder
from taskhub.resume import PARTIAL, PartialWriter, partial_path, predict_key, resumable_rows, start_partial
from taskhub.progress import progress
from taskhub.rundir import atomic_path, writing

if TYPE_CHECKING:
    from taskhub.task import Task

log = logging.getLogger("taskhub")

RAY_UNDER_LAUNCHER = "predict.backend=ray spreads the rows over Ray actors itself: run it as one process, not under torchrun"


def predict(task: Task, run: RunConfig, run_dir: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """Predict the input into ``predict.output`` (+ ``errors.jsonl`` with ``on_error=skip``).

    Results go to a partial file as they come, one line per input row (a prediction or
    an error), flushed every 64 rows; the final files are split from it and renamed
    into place at the end. ``predict.resume`` continues a killed run from that file,
    when its content key matches (:mod:`taskhub.resume`).

    Under torchrun / accelerate each rank predicts a contiguous range of the rows into
    a partial file of its own (resumable on its own); the main process joins them in
    rank order and writes the outputs alone (the other ranks return nothing).
    """
    if run.predict.output_format == "parquet":
        return _predict_to_folder(task, run, run_dir)
    output = output_path(run.predict.output, run_dir)
    split = read_split(task, run.data, "predict", with_targets=False)
    here = world()
    total = None if split.streaming else len(split.raw)  # a stream's length is known at its end
    start, stop = my_rows(total)
    partial = partial_path(run_dir, here.rank, here.size)
    key = predict_key(task, run, split)
    shard_key = {**key, "shard": [start, stop]} if here.size > 1 else key
    mine = None if stop is None else stop - start
    done = resumable_rows(partial, shard_key, mine) if run.predict.resume else 0
    if done:
        log.info("resuming: %d of %s rows already predicted (%s)", done, mine or "the", partial)
    else:
        with writing(partial):
            start_partial(partial, shard_key)
    started = time.perf_counter()
    if mine is None or done < mine:  # all done: the kill came while the final files were written
        _predict_rows(task, run, split, partial, start + done, stop, done)
    done_by_rank = gather(done)  # every shard finished
    elapsed = time.perf_counter() - started
    if done_by_rank is None:
        return {}, {}
    if here.size > 1:
        partial = run_dir / PARTIAL
        _join_shards(run_dir, here.size, key, partial)
    rows, errors = finish_predictions(partial, output, run_dir / "errors.jsonl", total)
    metrics = {
        "predict_rows": rows,
        "predict_errors": errors,
        "predict_runtime": elapsed,
        "predict_rows_per_second": (rows + errors - sum(done_by_rank)) / elapsed if elapsed else 0.0,
    }
    metrics.update(compile_metrics(task, "predict"))  # model.compile: the part of predict_runtime spent compiling
    outputs = {"predictions": str(output)}
    if errors:
        outputs["errors"] = str(run_dir / "errors.jsonl")
        log.warning("%d of %d rows skipped: see %s", errors, rows + errors, outputs["errors"])
    return metrics, outputs


def _predict_to_folder(task: Task, run: RunConfig, run_dir: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """``predict.output_format=parquet`` (``predict.backend=ray``): Ray Data predicts and
    writes the Parquet shards itself, so no row passes through this process and there
    is no partial file (nor a resume)."""
    folder = parquet_folder(run.predict, run_dir)
    if world().size > 1:
        raise TaskhubError(RAY_UNDER_LAUNCHER)
    from taskhub.engine.ray_backend import write_parquet_folder

    split = read_split(task, run.data, "predict", with_targets=False)  # columns checked here, once
    total = None if split.streaming else len(split.raw)
    started = time.perf_counter()
    rows, errors = write_parquet_folder(task, run, split, folder, run_dir / "errors.jsonl", total)
    elapsed = time.perf_counter() - started
    metrics = {
        "predict_rows": rows,
        "predict_errors": errors,
        "predict_runtime": elapsed,
        "predict_rows_per_second": (rows + errors) / elapsed if elapsed else 0.0,
    }
    outputs = {"predictions": str(folder)}
    if errors:
        outputs["errors"] = str(run_dir / "errors.jsonl")
        log.warning("%d of %d rows skipped: see %s", errors, rows + errors, outputs["errors"])
    return metrics, outputs


def _predict_rows(task: Task, run: RunConfig, split, partial: Path, first: int, stop: int | None, done: int) -> None:
    """Append one line per input row of ``[first, stop)`` (None: to the end) after the
    ``done`` the partial file holds. A run that fails before its first row removes its
    partial file: a header alone is nothing to resume."""
    out = PartialWriter(partial)
    try:
        with out:
            total = None if stop is None else stop - first + done
            for raw, prediction in progress(_results(task, run, split, first, stop), total, "predict", run.progress, done):
                if isinstance(prediction, RowFailure):
                    out.write({"error": {"row": prediction.row + 1, "input": raw, "reason": prediction.reason}})
                else:
                    out.write({"prediction": merge_prediction(raw, prediction)})
    except BaseException:
        if done + out.rows == 0:
            partial.unlink(missing_ok=True)
        raise


def _results(task: Task, run: RunConfig, split, first: int, stop: int | None):
    """``(input row, prediction or RowFailure)`` for rows ``[first, stop)``, in input order,
    from the backend ``predict.backend`` names."""
    if run.predict.backend.value == "ray":
        if world().size > 1:
            raise TaskhubError(RAY_UNDER_LAUNCHER)
        from taskhub.engine.ray_backend import predict_rows

        return predict_rows(task, run, split, first)
    options = {**run.engine_options(), "on_error": run.on_error.value, "first_row": first}
    inputs, raw_rows = _rows(split.dataset, first, stop), _rows(split.raw, first, stop)
    return zip(iter_rows(raw_rows), task.predict_iter(iter_rows(inputs), source=split.path, **options), strict=True)


def _rows(dataset, first: int, stop: int | None):
    """Rows ``[first, stop)`` of a dataset (``stop`` None: to its end, a stream's too)."""
    return rows_from(dataset, first) if stop is None else dataset.select(range(first, stop))


def _join_shards(run_dir: Path, size: int, key: dict[str, Any], partial: Path) -> None:
    """The ranks' partial files, in rank order, as the one partial file a single process
    would have written (same header): a kill from here on resumes like one."""
    with writing(partial), atomic_path(partial) as tmp:
        start_partial(tmp, key)
        with open(tmp, "a", encoding="utf-8") as out:
            for rank in range(size):
                with open(partial_path(run_dir, rank, size), encoding="utf-8") as lines:
                    next(lines)  # the shard's own header
                    shutil.copyfileobj(lines, out)
