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

``predict.output_format=parquet`` (:func:`write_parquet_folder`) keeps the results off the
driver: the input is read into Ray's object store and each block gets its rows' numbers
(from the blocks' lengths, in order), the actors turn rows into prediction tables (and
apply ``on_error`` themselves, knowing every row's number), and Ray Data's
``write_parquet`` writes the shards into a temporary folder renamed into place.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskhub.config import RunConfig
from taskhub.data import split_path
from taskhub.sources import FORMATS, file_format, matching_files
from taskhub.errors import BadRowError, RowFailure, TaskhubError
from taskhub.rundir import atomic_path, writing

if TYPE_CHECKING:
    import pyarrow

    from taskhub.data import Split
    from taskhub.task import Task

log = logging.getLogger("taskhub")

#: Ray Data's reader per ``datasets`` builder (:data:`taskhub.sources.FORMATS`).
READERS = {"json": "read_json", "csv": "read_csv", "parquet": "read_parquet"}
#: ``output_format=parquet``: the 0-based input row number given to each input row, and
#: a bad row's ``errors.jsonl`` line in the predicted tables; neither column is written.
ROW, ERROR = "__taskhub_row__", "__taskhub_error__"
#: The output column holding each prediction's 1-based input row number (as in errors.jsonl).
ROW_FIELD = "row"


def predict_rows(task: Task, run: RunConfig, split: Split, first_row: int) -> Iterator[tuple[dict[str, Any], dict | RowFailure]]:
    """``(input row as written, prediction or RowFailure)`` from row ``first_row`` on, in
    input order. ``split`` is the input as the driver read it (columns checked)."""
    import ray

    files = input_files(task, run)
    started_here = connect(run)
    try:
        _configure()
        dataset = _read(run, files)
        if first_row:  # a resumed run: the rows before it are in the partial file already
            dataset = dataset.split_at_indices([first_row])[1]
        results = _predicted(run, dataset, split, files)
        yield from _in_order(results, split.path, first_row, skip=run.on_error.value == "skip")
    except ray.exceptions.RayError as exc:
        raise worker_error(exc) from None
    finally:
        if started_here:
            ray.shutdown()


def write_parquet_folder(task: Task, run: RunConfig, split: Split, folder: Path, errors_file: Path, total: int | None) -> tuple[int, int]:
    """``predict.output_format=parquet``: the predictions as a folder of Parquet shards
    written by Ray Data's ``write_parquet`` (one schema for every shard, the input row
    number in column :data:`ROW_FIELD`), bad rows in ``errors_file`` with ``on_error=skip``
    (removed when there are none). Both are written under temporary names and renamed
    once complete. Returns ``(predictions, errors)``; ``total`` input rows (None: not
    known ahead) must equal their sum."""
    import ray

    files = input_files(task, run)
    started_here = connect(run)
    try:
        _configure()
        numbered = _numbered(_read(run, files))
        # Held in the object store (spilled to disk when it fills) until the bad rows are
        # known and one schema is found for every shard.
        predicted = _predicted(run, numbered, split, files, tables=True).materialize()
        with (
            writing(f"the predictions into {folder}"),
            atomic_path(folder) as shards,
            atomic_path(errors_file) as errors_tmp,
        ):
            errors, schema = _scan(predicted, errors_tmp)
            rows = predicted.count() - errors  # a materialized dataset's count is in its metadata
            _write_shards(predicted, shards, schema, rows)
            if total is not None and rows + errors != total:
                raise RuntimeError(f"{folder}: {rows} predictions and {errors} errors for {total} input rows")
    except ray.exceptions.RayError as exc:
        raise worker_error(exc) from None
    finally:
        if started_here:
            ray.shutdown()
    if not errors:
        errors_file.unlink()
    return rows, errors


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


def _configure() -> None:
    import ray

    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    context.raise_original_map_exception = True  # not Ray's UserCodeException: see worker_error
    logging.getLogger("ray.data").setLevel(logging.WARNING)


def _read(run: RunConfig, files: list[str]):
    import ray

    # Reading takes no CPU of its own: actors holding every CPU would otherwise starve it.
    dataset = getattr(ray.data, READERS[file_format(files[0])])(files, num_cpus=0)
    return dataset if run.data.limit is None else dataset.limit(run.data.limit)


def _predicted(run: RunConfig, dataset, split: Split, files: list[str], tables: bool = False):
    import ray

    settings = run.predict.ray
    return dataset.map_batches(
        Predictor,
        fn_constructor_kwargs={"run": run, "source": split.path, "folder": _folder(files[0]), "tables": tables},
        batch_size=settings.batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=settings.num_workers),
        num_gpus=settings.num_gpus_per_worker or None,
    )


def _numbered(dataset):
    """The input with each row's 0-based number in column :data:`ROW`. Ray Data has no
    row index (``Dataset.zip`` with a range is deprecated and waits for CPUs the actors
    hold): the input is read into the object store and each block, in order, is numbered
    from the lengths of the blocks before it, by CPU-free tasks."""
    import ray

    length, number = ray.remote(num_cpus=0)(_length), ray.remote(num_cpus=0)(_number)
    blocks = dataset.to_arrow_refs()
    starts = itertools.accumulate(ray.get([length.remote(block) for block in blocks]), initial=0)
    return ray.data.from_arrow_refs([number.remote(block, start) for block, start in zip(blocks, starts)])


def _length(table: pyarrow.Table) -> int:
    return table.num_rows


def _number(table: pyarrow.Table, start: int) -> pyarrow.Table:
    import pyarrow as pa

    return table.append_column(ROW, pa.array(range(start, start + table.num_rows), pa.int64()))


def _scan(predicted, errors_file: Path) -> tuple[int, pyarrow.Schema]:
    """One pass over the predicted blocks: the bad rows' ``errors.jsonl`` lines into
    ``errors_file``, in input order (they travel as text), and the predictions' schema,
    unified over every block's (``Dataset.schema()`` is the first block's only), with
    :data:`ROW_FIELD` last."""
    import pyarrow as pa

    errors, schemas = 0, []
    with open(errors_file, "w", encoding="utf-8") as out:
        for batch in predicted.map_batches(_errors_and_schema, batch_size=None, batch_format="pyarrow").iter_batches(
            batch_format="pyarrow", batch_size=None
        ):
            for line, schema in zip(batch.column("error").to_pylist(), batch.column("schema").to_pylist(), strict=True):
                if line is not None:
                    out.write(line + "\n")
                    errors += 1
                else:
                    schemas.append(pa.ipc.read_schema(pa.py_buffer(schema)))
    found = pa.unify_schemas(schemas, promote_options="permissive")  # fields in first-seen order
    return errors, pa.schema([*(f for f in found if f.name not in (ROW_FIELD, ERROR)), found.field(ROW_FIELD)])


def _errors_and_schema(table: pyarrow.Table) -> pyarrow.Table:
    """A block's bad-row lines, then one row with the block's schema (serialized)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    lines = table.filter(pc.is_valid(table[ERROR]))[ERROR].to_pylist()
    return pa.table(
        {
            "error": pa.array([*lines, None], pa.string()),
            "schema": pa.array([None] * len(lines) + [table.schema.serialize().to_pybytes()], pa.binary()),
        }
    )


def _good_rows(table: pyarrow.Table, schema: pyarrow.Schema) -> pyarrow.Table:
    """A block's predictions in ``schema``: bad rows and their column left out, a column
    the block lacks (a field no row of it has) added as nulls."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table = table.filter(pc.is_null(table[ERROR]))
    columns = [table[f.name] if f.name in table.column_names else pa.nulls(table.num_rows, f.type) for f in schema]
    return pa.table(columns, names=schema.names).cast(schema)


def _write_shards(predicted, folder: Path, schema: pyarrow.Schema, rows: int) -> None:
    """The ``rows`` predictions (bad rows left out) as Parquet shards in ``folder``, every
    shard in ``schema`` (a column null in one block and text in another is text); no
    predictions: one empty shard in that schema."""
    import pyarrow.parquet as pq

    folder.mkdir(parents=True)
    if rows:
        good = predicted.map_batches(_good_rows, fn_kwargs={"schema": schema}, batch_size=None, batch_format="pyarrow")
        good.write_parquet(str(folder.resolve()), schema=schema)
    else:
        pq.write_table(schema.empty_table(), folder / "empty.parquet")


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
    line: a taskhub error as it is, anything else with its type. An error raised while
    predicting comes back as the ``cause`` of Ray's task error (with
    ``raise_original_map_exception``, see :func:`_configure`); one raised while an actor
    starts only as the last line of its traceback's text."""
    import ray

    cause = exc
    while getattr(cause, "cause", None) is not None:
        cause = cause.cause
    if isinstance(cause, ray.exceptions.RayError):  # e.g. ActorDiedError
        lines = str(cause).strip().splitlines()
        last = lines[-1].strip() if lines else type(cause).__name__
        name, _, message = last.partition(": ")
        if name.startswith("taskhub.errors."):
            return TaskhubError(message)
        return TaskhubError(f"predict.backend=ray: a worker failed: {last}")
    # Ray Data appends its retry advice to the message: the error's own text comes first.
    text = re.split(r"\nFailed to .* after \d+/\d+ attempts \(total backoff", str(cause))[0].strip().splitlines()
    if isinstance(cause, TaskhubError):
        return TaskhubError(text[0] if text else "")
    return TaskhubError(f"predict.backend=ray: a worker failed: {type(cause).__name__}: {text[-1] if text else ''}")


class Predictor:
    """One actor of the pool: builds the task once, then predicts batch after batch.

    Returns one JSON entry per row: ``{"raw", "prediction"}`` or ``{"raw", "error"}``; an
    error that stops the run (a file path outside ``data.root``) as one ``{"fatal"}``
    entry at the start of the batch.

    With ``tables`` (``output_format=parquet``) each batch carries its rows' numbers
    (column :data:`ROW`) and comes back as a table of output rows: the input row plus
    the prediction fields and :data:`ROW_FIELD`, or a bad row's ``errors.jsonl`` line in
    column :data:`ERROR`. ``on_error=raise`` and a fatal error fail the actor with the
    row's number in the input."""

    def __init__(self, run: RunConfig, source: str, folder: str, tables: bool = False):
        from transformers import logging as transformers_logging
        from transformers import set_seed

        from taskhub.manager import get_registry

        transformers_logging.set_verbosity_error()  # one load report per actor is noise
        set_seed(run.seed)
        self.run, self.source, self.folder, self.tables = run, source, folder, tables
        self.task = get_registry().get(run.task.name).task_cls(run.task, run.model, device=run.device.value)
        self.task.seed = run.seed

    def __call__(self, batch: pyarrow.Table) -> dict[str, list[str]] | pyarrow.Table:
        import datasets
        from datasets.table import InMemoryTable

        from taskhub.data import canonical_view, iter_rows, readable, written_view
        from taskhub.dataroot import confined_to

        numbers = batch.column(ROW).to_pylist() if self.tables else None
        if self.tables:
            batch = batch.drop_columns([ROW])
        raw = readable(datasets.Dataset(InMemoryTable(batch)))
        try:
            rows = canonical_view(raw, self.task, self.run.data.columns, self.source, self.run.data.root, self.folder)
        except TaskhubError as err:
            if self.tables:
                raise TaskhubError(_placed(str(err), self.source, numbers[0])) from None
            return {"entry": [json.dumps({"fatal": str(err)})]}
        with confined_to(self.run.data.root):
            options = {**self.run.engine_options(), "on_error": "skip"}
            results = self.task.predict_iter(iter_rows(rows), source=self.source, **options)
            if self.tables:
                return self._table(zip(numbers, iter_rows(written_view(raw)), results, strict=True))
            entries = [
                {"raw": written, "error": result.reason} if isinstance(result, RowFailure) else {"raw": written, "prediction": result}
                for written, result in zip(iter_rows(written_view(raw)), results, strict=True)
            ]
        return {"entry": [json.dumps(entry, ensure_ascii=False, default=str) for entry in entries]}

    def _table(self, rows) -> pyarrow.Table:
        """``(number, input row as written, prediction or RowFailure)`` as output rows."""
        import pyarrow as pa

        from taskhub.outputs import merge_prediction

        out = []
        for number, written, result in rows:
            if isinstance(result, RowFailure):
                if self.run.on_error.value != "skip":  # a plain TaskhubError: it crosses to the driver pickled
                    raise TaskhubError(str(BadRowError(self.source, number + 1, result.reason)))
                line = json.dumps({"row": number + 1, "input": written, "reason": result.reason}, ensure_ascii=False, default=str)
                out.append({ROW_FIELD: number + 1, ERROR: line})
            else:
                out.append(merge_prediction(written, {**result, ROW_FIELD: number + 1, ERROR: None}))
        columns = list(dict.fromkeys(key for row in out for key in row))
        return pa.Table.from_pydict({column: [row.get(column) for row in out] for column in columns})
