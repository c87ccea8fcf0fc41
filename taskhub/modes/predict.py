"""``mode=predict``: stream the input through the task into ``predict.output`` (JSON
Lines, CSV or Parquet; your fields kept), resumable after a kill."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskhub.config import RunConfig
from taskhub.data import iter_rows, read_split, rows_from
from taskhub.errors import RowFailure
from taskhub.outputs import finish_predictions, output_path
from taskhub.resume import PARTIAL, PartialWriter, predict_key, resumable_rows, start_partial
from taskhub.rundir import writing

if TYPE_CHECKING:
    from taskhub.task import Task

log = logging.getLogger("taskhub")

def predict(task: Task, run: RunConfig, run_dir: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """Predict the input into ``predict.output`` (+ ``errors.jsonl`` with ``on_error=skip``).

    Results go to a partial file as they come, one line per input row (a prediction or
    an error), flushed every 64 rows; the final files are split from it and renamed
    into place at the end. ``predict.resume`` continues a killed run from that file,
    when its content key matches (:mod:`taskhub.resume`).
    """
    output = output_path(run.predict.output, run_dir)
    split = read_split(task, run.data, "predict", with_targets=False)
    partial = run_dir / PARTIAL
    total = None if split.streaming else len(split.raw)  # a stream's length is known at its end
    key = predict_key(task, run, split)
    done = resumable_rows(partial, key, total) if run.predict.resume else 0
    if done:
        log.info("resuming: %d of %s rows already predicted (%s)", done, total or "the", partial)
    else:
        with writing(partial):
            start_partial(partial, key)
    started = time.perf_counter()
    if total is None or done < total:  # all done: the kill came while the final files were written
        _predict_rows(task, run, split, partial, done)
    elapsed = time.perf_counter() - started
    rows, errors = finish_predictions(partial, output, run_dir / "errors.jsonl", total)
    metrics = {
        "predict_rows": rows,
        "predict_errors": errors,
        "predict_runtime": elapsed,
        "predict_rows_per_second": (rows + errors - done) / elapsed if elapsed else 0.0,
    }
    outputs = {"predictions": str(output)}
    if errors:
        outputs["errors"] = str(run_dir / "errors.jsonl")
        log.warning("%d of %d rows skipped: see %s", errors, rows + errors, outputs["errors"])
    return metrics, outputs


def _predict_rows(task: Task, run: RunConfig, split, partial: Path, done: int) -> None:
    """Append one line per input row from row ``done`` on. A run that fails before its
    first row removes its partial file: a header alone is nothing to resume."""
    options = {**run.engine_options(), "on_error": run.on_error.value, "first_row": done}
    inputs, raw_rows = rows_from(split.dataset, done), rows_from(split.raw, done)
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
