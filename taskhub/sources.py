"""Where a split's rows come from: files, globs, folders and dataset repositories, read
through ``datasets`` (globbing, decompression, folder layouts, split slicing, streaming),
with the checks that make a bad source one line naming it (remote paths offline, text
that is not UTF-8, a JSON line that does not parse, a dataset without the split).

Each loader returns ``(where, rows, content key, folder relative paths resolve against)``
for :func:`taskhub.data.read_split`.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from taskhub.config import DataConfig
from taskhub.errors import TaskhubError
from taskhub.fingerprints import file_digest, tree_listing_key
from taskhub.modeling import resolve_path

if TYPE_CHECKING:
    import datasets

#: The ``datasets`` builder of each data file extension.
FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
#: Compressed files ``datasets`` decompresses while reading.
COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst")
#: The ``datasets`` folder layout read for a folder given to a task of this modality.
FOLDER_BUILDERS = {"image": "imagefolder", "audio": "audiofolder"}
METADATA_FILES = ("metadata.jsonl", "metadata.csv", "metadata.parquet")

def column_names(dataset: datasets.Dataset | datasets.IterableDataset) -> list[str]:
    """Column names; a stream whose features are not known yet shows its first row's."""
    if dataset.column_names is not None:
        return list(dataset.column_names)
    return list(next(iter(dataset.take(1)), {}))


def load_from_dataset(data: DataConfig, split: str, required: bool):
    """``(where, rows, key, folder of relative paths)`` of one split of ``data.dataset`` (a Hub id or a local dataset
    folder, with its ``README.md`` ``configs:``), or None when the dataset has no split of
    that role and none is named."""
    import datasets

    name = data.dataset
    expression = getattr(data.split, split)
    local = os.path.isdir(os.path.expanduser(name))
    if not local:
        refuse_remote(f"data.dataset={name}", local_hint="data.dataset=<the downloaded folder>")
    path = os.path.expanduser(name)
    with reading_dataset(f"data.dataset={name}"):
        builder = datasets.load_dataset_builder(path, data.config, revision=data.revision)
    available = list(builder.config.data_files or {})
    if expression is None:
        default = "test" if split == "predict" else split
        if default not in available:
            if required:
                raise TaskhubError(
                    f"data.dataset={name} has no {default} split (splits: {', '.join(available)}); set data.split.{split}=<split>"
                )
            return None
        expression = default
    if data.streaming and "[" in expression:
        raise TaskhubError(f"data.split.{split}={expression}: a slice of a split cannot be streamed; use data.limit, or data.streaming=false")
    with reading_dataset(f"data.split.{split}={expression}"):
        if data.streaming:
            rows = datasets.load_dataset(path, data.config, revision=data.revision, split=expression, streaming=True)
        else:
            rows = datasets.load_dataset(path, data.config, revision=data.revision, split=expression)
    where = f"{name} ({f'{data.config}, ' if data.config else ''}{expression})"
    source = (lambda: tree_listing_key(path)) if local else (lambda: f"{name}@{data.revision or builder.hash}")
    return where, rows, lambda: f"{source()}:{data.config}:{expression}", os.path.abspath(path) if local else os.getcwd()


def load_files(given: Any, key: str, modality: str, data: DataConfig, with_targets: bool):
    """``(where, rows, content key, folder of relative paths)`` of ``data.<split>``: a file, a glob, a list of them, a
    URL / ``hf://`` path, or (image and audio tasks) an imagefolder / audiofolder folder."""
    import datasets

    values = [given] if isinstance(given, str) else list(given)
    if not values or not all(isinstance(v, str) and v for v in values):
        raise TaskhubError(f"{key}={given}: expected a file, glob, folder or URL, or a list of them")
    where = values[0] if len(values) == 1 else f"{key}=[{', '.join(values)}]"
    if len(values) == 1 and os.path.isdir(resolve_path(values[0])):
        folder = resolve_path(values[0])
        return where, load_folder(folder, key, modality, data, with_targets), lambda: tree_listing_key(folder), folder
    files = [f for value in values for f in matching_files(value, key, data.root)]
    builders = {file_format(f) for f in files}
    if len(builders) > 1:
        raise TaskhubError(f"{key}={given}: the files mix formats ({', '.join(sorted(builders))}); give one format per split")
    local = [f for f in files if "://" not in f]
    for path in local:
        if os.path.getsize(path) == 0:
            raise TaskhubError(f"{path}: the file is empty")
        if not path.endswith((".parquet", *COMPRESSIONS)):
            check_utf8(path)

    def content() -> str:
        return hashlib.sha256("\0".join(file_digest(f) if f in local else f for f in files).encode()).hexdigest()

    builder = builders.pop()
    datasets.disable_progress_bars()
    try:
        with quiet_datasets_logger():
            rows = datasets.load_dataset(builder, data_files=files, split="train", streaming=data.streaming)
    except Exception as exc:
        located = first_bad_line(local[0]) if len(local) == 1 and local[0].endswith(".jsonl") else None
        if located:
            raise TaskhubError(f"{local[0]}, {located}") from None
        raise TaskhubError(f"{where}: cannot read as {builder.upper()}: {first_line(exc)}") from None
    if hasattr(rows, "__len__") and len(rows) == 0:
        raise TaskhubError(f"{where}: no rows")
    return where, rows, content, os.path.dirname(local[0]) if local else os.getcwd()


def matching_files(value: str, key: str, root: str | None) -> list[str]:
    """The files one ``data.<split>`` entry names, resolved by ``datasets`` (globs, ``hf://``)."""
    from datasets.data_files import resolve_pattern

    if "://" in value and not value.startswith("pkg://"):
        if root is not None:
            raise TaskhubError(f"{key}={value}: a remote path; with data.root only local files inside it are read")
        refuse_remote(f"{key}={value}", local_hint=f"{key}=<the downloaded file>")
        return [value]
    path = resolve_path(value)
    if not any(c in path for c in "*?["):
        file_format(path)  # an unsupported extension first, even for a missing file
        if not os.path.isfile(path):
            raise TaskhubError(f"data file not found: {path}")
        return [path]
    try:
        return sorted(resolve_pattern(path, base_path=os.getcwd()))
    except FileNotFoundError:
        raise TaskhubError(f"{key}={value}: no file matches the pattern") from None


def file_format(path: str) -> str:
    """The ``datasets`` builder of a data file, by its extension (after a compression suffix)."""
    stem = path.lower()
    for suffix in COMPRESSIONS:
        stem = stem.removesuffix(suffix)
    ext = os.path.splitext(stem)[1]
    if ext not in FORMATS:
        raise TaskhubError(
            f"{path}: unsupported data format '{ext or path}' (use .jsonl, .json, .csv or .parquet, "
            f"optionally compressed: {', '.join(COMPRESSIONS)})"
        )
    return FORMATS[ext]


def load_folder(folder: str, key: str, modality: str, data: DataConfig, with_targets: bool):
    """An imagefolder / audiofolder layout: one subfolder per label, or a metadata file."""
    import datasets

    kind = FOLDER_BUILDERS.get(modality)
    if kind is None:
        raise TaskhubError(
            f"{key}={folder} is a folder: folders are read as imagefolder / audiofolder for image and audio tasks; "
            "for a dataset repository set data.dataset=<folder>"
        )
    with reading_dataset(f"{key}={folder}"):
        builder = datasets.load_dataset_builder(kind, data_dir=folder)
        if kind == "audiofolder":
            builder.BASE_FEATURE = audio_file_feature()
        builder.download_and_prepare()
        rows = builder.as_streaming_dataset("train") if data.streaming else builder.as_dataset("train")
    names = column_names(rows)
    if with_targets and "label" not in names and not any(os.path.exists(os.path.join(folder, m)) for m in METADATA_FILES):
        raise TaskhubError(
            f"{key}={folder}: no labels: put the files in one subfolder per label, or name them in a "
            f"{' / '.join(METADATA_FILES)} with a label column"
        )
    return rows


@functools.cache
def audio_file_feature():
    """``datasets.Audio`` kept as ``{bytes, path}``: datasets 5 encodes every audio value,
    even a file path, with torchcodec, which taskhub does not use (soundfile reads the
    files, :mod:`taskhub.audio`). A path or bytes needs no encoding."""
    from dataclasses import dataclass as _dataclass

    import datasets

    @_dataclass
    class AudioFile(datasets.Audio):
        decode: bool = False

        def encode_example(self, value):
            if isinstance(value, str):
                return {"bytes": None, "path": value}
            return {"bytes": value.get("bytes"), "path": value.get("path")}

    return AudioFile


def refuse_remote(what: str, local_hint: str) -> None:
    """A remote source while offline: one line saying so and how to use a local copy."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        raise TaskhubError(
            f"{what}: not a local file or folder, and the run is offline (HF_HUB_OFFLINE=1); download it where "
            f"there is a network (e.g. hf download <repo> --repo-type dataset --local-dir <folder>) and set {local_hint}"
        )


@contextmanager
def reading_dataset(what: str):
    """``datasets``' errors while resolving a dataset, config, split or folder, in one line
    naming the key and value (an unknown config lists the available ones)."""
    import datasets

    datasets.disable_progress_bars()
    try:
        with quiet_datasets_logger():
            yield
    except TaskhubError:
        raise
    except Exception as exc:
        message = first_line(exc)
        if "Config name is missing" in str(exc) or "BuilderConfig" in message:
            available = str(exc).split("[", 1)[-1].split("]", 1)[0]
            message = f"{'no such config' if 'not found' in message else 'the dataset has several configs'}: set data.config to one of {available}"
        elif "corresponds to no data" in message:
            message = "no image or audio files in it"
        raise TaskhubError(f"{what}: {message}") from None


def first_line(exc: BaseException) -> str:
    cause = exc.__cause__ or exc
    text = str(cause).strip()
    return text.splitlines()[0] if text else type(cause).__name__


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
