"""``predict.backend=ray``: the same task code on a Ray cluster through Ray Data.

The input files are read as a Ray dataset and go through ``map_batches`` on a pool of
actors; each actor builds the task once from the run config and runs its batches
through the in-process engine (:meth:`taskhub.Task.predict_iter`), so every task, built
in or external, scales out with no code of its own. Results come back to the driver
in input order (Ray Data's ``preserve_order``), which writes them as the local backend
does.

Ray Data has no global row index, so the actors predict with ``on_error=skip`` and send
each bad row's reason in its place; the driver, reading results in input order, knows
every row's number and applies ``on_error``: ``skip`` records the row, ``raise`` stops
at the first bad row naming file and row, as the local backend does.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from taskhub.config import RunConfig
from taskhub.data import split_path
from taskhub.sources import FORMATS, file_format, matching_files
from taskhub.errors import BadRowError, RowFailure, TaskhubError

if TYPE_CHECKING:
    import pyarrow

    from taskhub.data import Split
    from taskhub.task import Task

log = logging.getLogger("taskhub")

#: Ray Data's reader per ``datasets`` builder (:data:`taskhub.sources.FORMATS`).
READERS = {"json": "read_json", "csv": "read_csv", "parquet": "read_parquet"}


def predict_rows(task: Task, run: RunConfig, split: Split, first_row: int) -> Iterator[tuple[dict[str, Any], dict | RowFailure]]:
    """``(input row as written, prediction or RowFailure)`` from row ``first_row`` on, in
    input order. ``split`` is the input as the driver read it (columns checked)."""
    import ray

    files = input_files(task, run)
    started_here = connect(run)
    try:
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        results = _pipeline(run, files, split, first_row)
        yield from _in_order(results, split.path, first_row, skip=run.on_error.value == "skip")
    except ray.exceptions.RayError as exc:
        raise worker_error(exc) from None
    finally:
        if started_here:
            ray.shutdown()


def input_files(task: Task, run: RunConfig) -> list[str]:
    """The JSONL, CSV or Parquet files of ``data.predict`` (or the task's bundled inputs)."""
    given = None if run.data.dataset else split_path(task, run.data, "predict")
    values = [given] if isinstance(given, str) else list(given or [])
    files = [f for value in values for f in matching_files(value, "data.predict", run.data.root)]
    if not files or any(f.endswith("/") or file_format(f) not in READERS for f in files):
        raise TaskhubError(
            f"predict.backend=ray reads {', '.join(FORMATS)} files named in data.predict (not data.dataset or a folder); "
            "use predict.backend=local for this input"
        )
    return files


def connect(run: RunConfig) -> bool:
    """Join ``predict.ray.address`` (``auto``: the running cluster) or, unset, start a local
    Ray instance on this machine's resources; True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    address = run.predict.ray.address
    ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING, configure_logging=address is None)
    return address is None


def _pipeline(run: RunConfig, files: list[str], split: Split, first_row: int):
    import ray

    settings = run.predict.ray
    # Reading takes no CPU of its own: actors holding every CPU would otherwise starve it.
    dataset = getattr(ray.data, READERS[file_format(files[0])])(files, num_cpus=0)
    if run.data.limit is not None:
        dataset = dataset.limit(run.data.limit)
    if first_row:  # a resumed run: the rows before it are in the partial file already
        dataset = dataset.split_at_indices([first_row])[1]
    return dataset.map_batches(
        Predictor,
        fn_constructor_kwargs={"run": run, "source": split.path, "folder": _folder(files[0])},
        batch_size=settings.batch_size,
        batch_format="pyarrow",
        concurrency=settings.num_workers,
        num_gpus=settings.num_gpus_per_worker or None,
    )


def _folder(path: str) -> str:
    import os

    return os.path.dirname(path) if "://" not in path else os.getcwd()


def _in_order(results, source: str, first_row: int, skip: bool) -> Iterator[tuple[dict[str, Any], dict | RowFailure]]:
    row = first_row
    for batch in results.iter_batches(batch_format="pyarrow", batch_size=None):
        for text in batch.column("entry").to_pylist():
            entry = json.loads(text)
            if "fatal" in entry:
                raise TaskhubError(_placed(entry["fatal"], source, row))
            if "error" in entry:
                if not skip:
                    raise BadRowError(source, row + 1, entry["error"])
                yield entry["raw"], RowFailure(row, entry["error"])
            else:
                yield entry["raw"], entry["prediction"]
            row += 1


def _placed(message: str, source: str, batch_start: int) -> str:
    """An actor's error naming a row of its batch (``<source>, row N, ...``), renumbered
    to the row's place in the input."""
    prefix = re.escape(source) + r", row (\d+)"
    return re.sub(prefix, lambda m: f"{source}, row {batch_start + int(m.group(1))}", message, count=1)


def worker_error(exc: BaseException) -> TaskhubError:
    """A failure inside an actor (a model that will not load, a library error) as one
    line: a taskhub error as it is, anything else with its type."""
    cause = exc
    while cause.__cause__ is not None or getattr(cause, "cause", None) is not None:
        cause = cause.__cause__ or cause.cause
    if isinstance(cause, TaskhubError):
        return TaskhubError(str(cause))
    text = str(cause).strip().splitlines()
    return TaskhubError(f"predict.backend=ray: a worker failed: {type(cause).__name__}: {text[-1] if text else ''}")


class Predictor:
    """One actor of the pool: builds the task once, then predicts batch after batch.

    Returns one JSON entry per row: ``{"raw", "prediction"}`` or ``{"raw", "error"}``; an
    error that stops the run (a file path outside ``data.root``) as one ``{"fatal"}``
    entry at the start of the batch."""

    def __init__(self, run: RunConfig, source: str, folder: str):
        from transformers import logging as transformers_logging
        from transformers import set_seed

        from taskhub.manager import get_registry

        transformers_logging.set_verbosity_error()  # one load report per actor is noise
        set_seed(run.seed)
        self.run, self.source, self.folder = run, source, folder
        self.task = get_registry().get(run.task.name).task_cls(run.task, run.model, device=run.device.value)
        self.task.seed = run.seed

    def __call__(self, batch: pyarrow.Table) -> dict[str, list[str]]:
        import datasets
        from datasets.table import InMemoryTable

        from taskhub.data import canonical_view, iter_rows, readable, written_view
        from taskhub.dataroot import confined_to

        raw = readable(datasets.Dataset(InMemoryTable(batch)))
        try:
            rows = canonical_view(raw, self.task, self.run.data.columns, self.source, self.run.data.root, self.folder)
        except TaskhubError as err:
            return {"entry": [json.dumps({"fatal": str(err)})]}
        with confined_to(self.run.data.root):
            options = {**self.run.engine_options(), "on_error": "skip"}
            results = self.task.predict_iter(iter_rows(rows), source=self.source, **options)
            entries = [
                {"raw": written, "error": result.reason} if isinstance(result, RowFailure) else {"raw": written, "prediction": result}
                for written, result in zip(iter_rows(written_view(raw)), results, strict=True)
            ]
        return {"entry": [json.dumps(entry, ensure_ascii=False, default=str) for entry in entries]}
