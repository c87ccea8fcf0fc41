"""Reading a split of data into datasets with the task's canonical column names.

Every source goes through ``datasets`` (globbing, decompression, folder layouts, split
slicing, streaming): a file, a glob or a list of them (``data.<split>``), an
imagefolder / audiofolder folder, ``hf://`` paths and URLs, or a whole dataset
repository (``data.dataset`` with ``data.config`` / ``data.revision`` / ``data.split.*``).

Every split keeps two views: ``raw`` (the user's columns as written, carried into the
predictions so nothing a user wrote is lost; an image or audio stored in the data is
written out by its path) and ``dataset`` (canonical names from ``data.columns``,
relative file paths resolved against the data file's folder). Image and audio columns
are never decoded by ``datasets``: they stay ``{bytes, path}`` for taskhub's own
decoders (:mod:`taskhub.media`, :mod:`taskhub.audio`), and a ``ClassLabel`` column
holds its names.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from stat import S_ISREG
from typing import TYPE_CHECKING, Any

from taskhub.config import DataConfig
from taskhub.errors import TaskhubError
from taskhub.modeling import resolve_path
from taskhub.sources import FORMATS, column_names, load_files, load_from_dataset

if TYPE_CHECKING:
    import datasets

    from taskhub.task import Task

SPLITS = ("train", "validation", "test", "predict")


@dataclass
class Split:
    name: str
    #: What messages name: a file, a glob, a folder or "<dataset> (<config>, <split>)".
    path: str
    raw: datasets.Dataset | datasets.IterableDataset
    dataset: datasets.Dataset | datasets.IterableDataset
    #: Computes the content key of the source (file bytes, folder files, dataset id and
    #: revision): only a run that resumes a prediction or reuses encoded data pays for it.
    content_key: Callable[[], str] = str

    @functools.cached_property
    def key(self) -> str:
        """The source's content key, for resuming a prediction and reusing encoded data."""
        return self.content_key()

    @property
    def streaming(self) -> bool:
        """Read as a stream (``data.streaming=true``): no length, rows read as they go."""
        return not hasattr(self.raw, "__len__")


def split_path(task: Task, data: DataConfig, split: str) -> Any:
    """What a split reads: ``data.<split>`` (a file, glob, folder, URL or a list of them);
    when no data is named at all, the task's bundled demo split (so your own train file
    never meets demo validation data). None with ``data.dataset``: see :func:`read_split`."""
    given = getattr(data, split)
    if given:
        return given
    if task.demo_data is None or data.dataset or any(getattr(data, s) for s in SPLITS):
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
    if data.dataset:
        loaded = load_from_dataset(data, split, required)
    else:
        given = split_path(task, data, split)
        if given is None:
            if required:
                raise TaskhubError(f"no {split} data: set data.{split}=<file> (JSONL, CSV or Parquet), or data.dataset=<dataset>")
            return None
        loaded = load_files(given, f"data.{split}", task.modality, data, with_targets)
    if loaded is None:
        return None
    where, raw, key, folder = loaded
    if data.limit is not None:
        raw = raw.take(data.limit) if not hasattr(raw, "__len__") else raw.select(range(min(data.limit, len(raw))))
    raw = readable(raw)
    dataset = canonical_view(raw, task, data.columns, where, data.root, folder)
    task.check_columns(column_names(dataset), where, with_targets)
    return Split(split, where, written_view(raw), dataset, key)


def iter_rows(dataset: datasets.Dataset | datasets.IterableDataset, batch_size: int = 1024) -> Iterator[dict[str, Any]]:
    """A dataset's rows as dicts, read a batch of columns at a time: iterating a
    ``datasets.Dataset`` row by row costs about 0.1 ms per row in Arrow conversions."""
    for columns in dataset.iter(batch_size=batch_size):
        names = list(columns)
        yield from (dict(zip(names, values)) for values in zip(*(columns[n] for n in names)))


def media_digest(task: Task, split: Split) -> str | None:
    """Path, size and mtime of each media file a split names: a picture replaced in place
    changes it (content keys of resumed predictions and reused evaluations)."""
    columns = [c for c in task.path_columns if c in split.dataset.column_names]
    if not columns:
        return None
    digest = hashlib.sha256()
    for column in columns:
        for value in split.dataset[column]:
            if isinstance(value, dict) and value.get("bytes") is None:  # a {bytes, path} struct naming a file
                value = value.get("path")
            if isinstance(value, str):
                try:
                    stat = os.stat(value)
                except (OSError, ValueError):  # missing or not a path: the row's own error, later
                    continue
                if S_ISREG(stat.st_mode):
                    digest.update(f"{value}:{stat.st_size}:{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()


# ------------------------------------------------------------------ features
def readable(rows):
    """Image and audio columns as ``{bytes, path}`` (never decoded by ``datasets``), and
    ``ClassLabel`` columns (alone or in lists, e.g. NER tags) as their names."""
    import datasets

    features = rows.features
    if not features:
        return rows
    for column, feature in features.items():
        if isinstance(feature, datasets.Image) and feature.decode:
            rows = rows.cast_column(column, datasets.Image(decode=False))
        elif isinstance(feature, datasets.Audio) and feature.decode:
            rows = rows.cast_column(column, datasets.Audio(decode=False))
    names = {c: f for c, f in features.items() if isinstance(_label_feature(f), datasets.ClassLabel)}
    if not names:
        return rows
    new_features = rows.features.copy()
    for column, feature in names.items():
        new_features[column] = datasets.List(datasets.Value("string")) if isinstance(feature, (list, datasets.List)) else datasets.Value("string")

    def to_names(batch):
        for column, feature in names.items():
            label = _label_feature(feature)
            name = lambda i: None if i is None or i < 0 else label.int2str(i)  # noqa: E731 - -1: no label
            nested = isinstance(feature, (list, datasets.List))
            batch[column] = [[name(i) for i in v] if nested and v is not None else name(v) for v in batch[column]]
        return batch

    return rows.map(to_names, batched=True, features=new_features, **_eager(rows))


def _label_feature(feature):
    import datasets

    return feature.feature if isinstance(feature, datasets.List) else feature[0] if isinstance(feature, list) and feature else feature


def written_view(raw):
    """The rows as written into the predictions: an image or audio stored in the data
    (``{bytes, path}``) by its path, never its bytes."""
    import datasets

    media = [c for c, f in (raw.features or {}).items() if isinstance(f, (datasets.Image, datasets.Audio))]
    if not media:
        return raw

    def paths(batch):
        return {**batch, **{c: [v.get("path") if isinstance(v, dict) else v for v in batch[c]] for c in media}}

    return raw.map(paths, batched=True) if not hasattr(raw, "__len__") else raw.with_transform(paths)


def _eager(rows) -> dict[str, Any]:
    """``Dataset.map`` options for a map done once, in memory, now (a stream maps lazily)."""
    return {"keep_in_memory": True, "load_from_cache_file": False} if hasattr(rows, "__len__") else {}


def canonical_view(raw, task: Task, columns: dict[str, str], path: str, root: str | None, folder: str):
    """The rows with canonical column names and the file paths in :attr:`Task.path_columns`
    resolved against ``folder`` and checked against ``root`` (now for a file, as the rows
    are read for a stream)."""
    found = column_names(raw)
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
    for column in task.path_columns:
        if column in column_names(dataset):
            dataset = dataset.map(
                lambda values, indices, column=column: {
                    column: [
                        _resolve_relative(value, folder, root, f"{path}, row {index + 1}, column '{column}'")
                        for value, index in zip(values, indices)
                    ]
                },
                input_columns=column,
                with_indices=True,
                batched=True,
                batch_size=4096,
                **_eager(dataset),
            )
    return dataset


def _resolve_relative(value, folder: str, root: str | None, where: str):
    """A path resolved against the data's folder and checked against ``data.root``; an
    image or audio stored as ``{bytes, path}`` by its path only when it has no bytes."""
    if isinstance(value, dict):
        if value.get("bytes") is not None or not value.get("path"):
            return value
        return {**value, "path": _resolve_relative(value["path"], folder, root, where)}
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


def rows_from(dataset, start: int):
    """The rows from position ``start`` on (a resumed prediction): a slice of a dataset,
    the rest of a stream."""
    if not start:
        return dataset
    return dataset.select(range(start, len(dataset))) if hasattr(dataset, "__len__") else dataset.skip(start)
