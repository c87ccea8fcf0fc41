"""Prediction files: ``predict.output``'s extension picks JSON Lines, CSV or Parquet.

The rows come from predict's partial file (one JSON line per input row, see
:mod:`taskhub.resume`), read twice for CSV and Parquet (once for the columns or the
schema, once to write), so memory does not grow with the input. Each file is written
under a temporary name and renamed into place once its rows add up to the input's.

``predict.output_format=parquet`` is a folder of Parquet shards instead, which Ray Data
writes (:func:`taskhub.engine.ray_backend.write_parquet_folder`); :func:`parquet_folder`
checks the options and names it.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from taskhub.config import PredictConfig
from taskhub.errors import TaskhubError
from taskhub.rundir import atomic_path, writing

FORMATS = (".jsonl", ".csv", ".parquet")
#: Rows per Parquet row group (and per schema sample).
PARQUET_BATCH = 4096


def output_path(output: str, run_dir: Path) -> Path:
    """Where ``predict.output`` goes (a relative path: inside the run dir); its extension
    must name a format, checked before any model loads."""
    if os.path.splitext(output)[1].lower() not in FORMATS:
        raise TaskhubError(f"predict.output={output}: the extension picks the format: use .jsonl, .csv or .parquet")
    path = Path(os.path.expanduser(output))
    return path if path.is_absolute() else run_dir / path


def parquet_folder(predict: PredictConfig, run_dir: Path) -> Path:
    """Where ``predict.output_format=parquet`` writes its shards: ``predict.output`` (left
    at its default file name: ``predictions/``; relative: inside the run dir). Checked
    before any model loads: the shards are written by Ray Data (``predict.backend=ray``),
    in one go (no ``predict.resume``)."""
    if predict.backend.value != "ray":
        raise TaskhubError(
            "predict.output_format=parquet: the Parquet folder is written by Ray Data and needs predict.backend=ray; "
            "for one Parquet file use predict.output=<name>.parquet"
        )
    if predict.resume:
        raise TaskhubError(
            "predict.resume=true: a Parquet folder (predict.output_format=parquet) is written in one go and cannot be resumed; "
            "set predict.resume=false, or use predict.output_format=file"
        )
    output = "predictions" if predict.output == PredictConfig.output else predict.output
    if os.path.splitext(output)[1].lower() in (".jsonl", ".csv"):
        raise TaskhubError(f"predict.output={output}: predict.output_format=parquet writes a folder of Parquet shards; name a folder, or use predict.output_format=file")
    path = Path(os.path.expanduser(output))
    return path if path.is_absolute() else run_dir / path


def finish_predictions(partial: Path, output: Path, errors_file: Path, total: int | None) -> tuple[int, int]:
    """Write the partial file's predictions to ``output`` and its errors to ``errors_file``
    (removed when there are none); ``total`` input rows (None: a stream, not known ahead)
    must equal predictions plus errors. The partial file is kept for the caller to remove
    once the run's metrics are written, so a kill in between resumes to the same files."""
    with (
        writing(f"the predictions into {output}", then="the partial file is kept: free space, then re-run with predict.resume=true"),
        atomic_path(output) as predictions_tmp,
        atomic_path(errors_file) as errors_tmp,
    ):
        with open(errors_tmp, "w", encoding="utf-8") as failures:
            errors = 0
            for error in _entries(partial, "error"):
                failures.write(json.dumps(error, ensure_ascii=False) + "\n")
                errors += 1
        rows = WRITERS[output.suffix.lower()](partial, predictions_tmp)
        if total is not None and rows + errors != total:
            raise RuntimeError(f"{partial}: {rows} predictions and {errors} errors for {total} input rows")
    if not errors:
        errors_file.unlink()
    return rows, errors


def _entries(partial: Path, kind: str) -> Iterator[dict[str, Any]]:
    """The partial file's ``prediction`` or ``error`` entries, in input order."""
    with open(partial, encoding="utf-8") as lines:
        next(lines)  # the header
        for line in lines:
            entry = json.loads(line)
            if kind in entry:
                yield entry[kind]


def write_jsonl(partial: Path, path: Path) -> int:
    rows = 0
    with open(path, "w", encoding="utf-8") as out:
        for row in _entries(partial, "prediction"):
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            rows += 1
    return rows


def write_csv(partial: Path, path: Path) -> int:
    """One column per field of any row (in first-seen order); lists and objects (entities,
    top-k labels) as JSON text, a missing value as an empty cell."""
    columns = list(dict.fromkeys(key for row in _entries(partial, "prediction") for key in row))
    rows = 0
    with open(path, "w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=columns)
        writer.writeheader()
        for row in _entries(partial, "prediction"):
            writer.writerow({k: json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else v for k, v in row.items()})
            rows += 1
    return rows


def write_parquet(partial: Path, path: Path) -> int:
    """One schema for the whole file, unified over every batch's (a column null in one
    batch and text in another is text)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = None
    for batch in _batches(partial):
        found = pa.Table.from_pylist(batch).schema
        schema = found if schema is None else pa.unify_schemas([schema, found], promote_options="permissive")
    rows = 0
    with pq.ParquetWriter(path, schema if schema is not None else pa.schema([])) as writer:
        for batch in _batches(partial):
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            rows += len(batch)
    return rows


def _batches(partial: Path) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in _entries(partial, "prediction"):
        batch.append(row)
        if len(batch) == PARQUET_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


WRITERS = {".jsonl": write_jsonl, ".csv": write_csv, ".parquet": write_parquet}


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
