"""Reading data files into datasets with the task's canonical column names.

Every split keeps two views: ``raw`` (the user's columns as written, carried into
``predictions.jsonl`` so nothing a user wrote is lost) and ``dataset`` (canonical
names from ``data.columns``, relative file paths resolved against the data file's
folder).
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from taskhub.config import DataConfig
from taskhub.errors import TaskhubError
from taskhub.modeling import resolve_path

if TYPE_CHECKING:
    import datasets

    from taskhub.task import Task

FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


@dataclass
class Split:
    name: str
    path: str
    raw: datasets.Dataset
    dataset: datasets.Dataset


SPLITS = ("train", "validation", "test", "predict")


def split_path(task: Task, data: DataConfig, split: str) -> str | None:
    """The file for a split: ``data.<split>``; when no data file is named at all, the
    task's bundled demo split (so your own train file never meets demo validation data)."""
    given = getattr(data, split)
    if given:
        return given
    if task.demo_data is None or any(getattr(data, s) for s in SPLITS):
        return None
    folder = resolve_path(task.demo_data)
    # Predict takes the demo's own inputs when it ships some (e.g. texts with a mask
    # token), else its test split.
    for demo_split in ("predict", "test") if split == "predict" else (split,):
        for ext in FORMATS:
            candidate = os.path.join(folder, demo_split + ext)
            if os.path.exists(candidate):
                return candidate
    return None


def read_split(task: Task, data: DataConfig, split: str, with_targets: bool, required: bool = True) -> Split | None:
    path = split_path(task, data, split)
    if path is None:
        if required:
            raise TaskhubError(f"no {split} data: set data.{split}=<file> (JSONL, CSV or Parquet)")
        return None
    raw = load_file(path)
    if data.limit is not None:
        raw = raw.select(range(min(data.limit, len(raw))))
    dataset = canonical_view(raw, task, data.columns, path, data.root)
    task.check_columns(dataset.column_names, path, with_targets)
    return Split(split, path, raw, dataset)


def iter_rows(dataset: datasets.Dataset, batch_size: int = 1024) -> Iterator[dict[str, Any]]:
    """A dataset's rows as dicts, read a batch of columns at a time: iterating a
    ``datasets.Dataset`` row by row costs about 0.1 ms per row in Arrow conversions."""
    for columns in dataset.iter(batch_size=batch_size):
        names = list(columns)
        yield from (dict(zip(names, values)) for values in zip(*(columns[n] for n in names)))


def load_file(path: str) -> datasets.Dataset:
    import datasets

    path = resolve_path(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise TaskhubError(f"{path}: unsupported data format '{ext or path}' (use .jsonl, .json, .csv or .parquet)")
    if not os.path.isfile(path):
        raise TaskhubError(f"data file not found: {path}")
    if os.path.getsize(path) == 0:
        raise TaskhubError(f"{path}: the file is empty")
    if ext != ".parquet":
        check_utf8(path)
    datasets.disable_progress_bars()
    try:
        with quiet_datasets_logger():
            dataset = datasets.load_dataset(FORMATS[ext], data_files=os.path.abspath(path), split="train")
    except Exception as exc:
        located = first_bad_line(path) if ext == ".jsonl" else None
        if located:
            raise TaskhubError(f"{path}, {located}") from None
        cause = exc.__cause__ or exc
        detail = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        raise TaskhubError(f"{path}: cannot read as {FORMATS[ext].upper()}: {detail}") from None
    if len(dataset) == 0:
        raise TaskhubError(f"{path}: no rows")
    return dataset


@contextmanager
def quiet_datasets_logger():
    """Silence the ``datasets`` library's log for the duration: a file it cannot read is
    our one-line error, not its log line followed by ours."""
    import datasets

    level = datasets.logging.get_verbosity()
    datasets.logging.set_verbosity(logging.CRITICAL + 1)
    try:
        yield
    finally:
        datasets.logging.set_verbosity(level)


def check_utf8(path: str) -> None:
    """Text data files must be UTF-8; the readers would fail later, row by row, or not at all."""
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise TaskhubError(
                    f"{path}, line {number}: not UTF-8 text (byte {line[exc.start]:#04x} at column {exc.start + 1}); save the file as UTF-8"
                ) from None


def first_bad_line(path: str) -> str | None:
    """Where a JSON Lines file goes wrong ("line N: ..."), for the error message; the
    reader's own message names neither line nor cause."""
    import json

    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            text = line.decode("utf-8")  # checked by check_utf8 before
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                return f"line {number}: not valid JSON ({exc.msg} at column {exc.pos + 1})"
            if not isinstance(value, dict):
                return f"line {number}: expected a JSON object per line, got {type(value).__name__}"
            surrogate = lone_surrogate(value)
            if surrogate:
                return (
                    f"line {number}: not valid JSON (a string holds \\u{ord(surrogate):04x}, half of a UTF-16 "
                    "surrogate pair, which is not a character)"
                )
    return None


def lone_surrogate(value) -> str | None:
    """The first unpaired UTF-16 surrogate in a parsed JSON value's strings (keys too), if
    any: Python's json accepts ``"\\ud800"``, the Arrow reader refuses the whole file."""
    if isinstance(value, str):
        return next((c for c in value if "\ud800" <= c <= "\udfff"), None)
    items = [*value.keys(), *value.values()] if isinstance(value, dict) else value if isinstance(value, list) else []
    return next((found for item in items if (found := lone_surrogate(item))), None)


def canonical_view(raw: datasets.Dataset, task: Task, columns: dict[str, str], path: str, root: str | None = None) -> datasets.Dataset:
    found = raw.column_names
    dataset = raw
    for canonical, actual in columns.items():
        if actual not in found:
            raise TaskhubError(
                f"{path}: data.columns.{canonical}='{actual}' but there is no column '{actual}' "
                f"(columns found: {', '.join(found)})"
            )
    renames = {actual: canonical for canonical, actual in columns.items() if actual != canonical}
    shadowed = [c for c in renames.values() if c in found and c not in renames]
    if shadowed:
        dataset = dataset.remove_columns(shadowed)
    if renames:
        dataset = dataset.rename_columns(renames)
    folder = os.path.dirname(os.path.abspath(resolve_path(path)))
    for column in task.path_columns:
        if column in dataset.column_names:
            dataset = dataset.map(
                lambda values, indices: {
                    column: [
                        _resolve_relative(value, folder, root, f"{path}, row {index + 1}, column '{column}'")
                        for value, index in zip(values, indices)
                    ]
                },
                input_columns=column,
                with_indices=True,
                batched=True,
                batch_size=4096,
                keep_in_memory=True,
                load_from_cache_file=False,
            )
    return dataset


def _resolve_relative(value, folder: str, root: str | None, where: str):
    if not isinstance(value, str) or not value:
        return value
    if "://" in value:
        if root is not None:
            raise TaskhubError(f"{where}: {value!r} is a URL; with data.root only files inside it are read")
        return value
    resolved = value if os.path.isabs(value) else os.path.join(folder, value)
    if root is not None:
        real_root = os.path.realpath(os.path.expanduser(root))
        if os.path.commonpath([real_root, os.path.realpath(resolved)]) != real_root:
            raise TaskhubError(f"{where}: path {value!r} is outside data.root ({real_root})")
    return resolved
