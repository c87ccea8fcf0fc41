"""The partial file of a prediction, and when it may be continued.

Predict writes one line per input row to ``<run dir>/.predictions.partial.jsonl`` under
a header that keys it by content: the input's bytes (sha256 of each file: hashing costs
far less than predicting the rows; a dataset's id, revision, config and split), a stamp of each file in the model folder, the path,
size and modification time of each media file the input names, and every option that
changes outputs (task options, all ``model.*`` options but the path, e.g. ``model.dtype``
and ``model.quantize``, ``data.columns``, ``data.limit``, ``seed``). Batching options and
the device are left out: they do not change which label a row gets. ``predict.resume``
continues the file only when the header matches; otherwise it says what changed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import OmegaConf

from taskhub.data import media_digest
from taskhub.errors import TaskhubError
from taskhub.fingerprints import folder_stamp
from taskhub.rundir import writing

if TYPE_CHECKING:
    from taskhub.config import RunConfig
    from taskhub.task import Task

PARTIAL = ".predictions.partial.jsonl"
def predict_key(task: Task, run: RunConfig, split) -> dict[str, Any]:
    """What a continued prediction must share with the run it continues (JSON-normalised)."""
    from taskhub.modeling import model_source

    model = model_source(task).name_or_path
    if model is not None and os.path.isdir(model):
        model_key = folder_stamp(model)
    else:  # a hub id: its name and revision (offline, the cached files do not change)
        model_key = f"{model}@{run.model.revision}" if model else "built from model.config"
    model_options = OmegaConf.to_container(OmegaConf.structured(run.model), enum_to_str=True)
    model_options.pop("name_or_path")
    key = {
        "input": split.key,
        "model": model_key,
        "media": None if split.streaming else media_digest(task, split),
        "rows": None if split.streaming else len(split.raw),
        "options": {
            "task": OmegaConf.to_container(OmegaConf.structured(run.task), enum_to_str=True),
            "model": model_options,
            "data": {"columns": dict(run.data.columns), "limit": run.data.limit, "output": run.predict.output},
            "seed": run.seed,
        },
    }
    return json.loads(json.dumps(key, sort_keys=True, default=str))


def partial_path(run_dir: Path, rank: int, size: int) -> Path:
    """The partial file of one process of a predict split across ``size`` (torchrun):
    one per rank, the count in its name (a resume with another count starts over)."""
    return run_dir / (PARTIAL if size == 1 else f".predictions.partial.{rank}-of-{size}.jsonl")


def remove_partials(run_dir: Path) -> None:
    """Every partial file of the run dir (one process's, or each rank's)."""
    for path in run_dir.glob(".predictions.partial*.jsonl"):
        path.unlink(missing_ok=True)


def start_partial(partial: Path, key: dict[str, Any]) -> None:
    partial.write_text(json.dumps({"taskhub_partial": key}) + "\n")


class PartialWriter:
    """Appends rows to the partial file, flushed every :attr:`FLUSH_EVERY`; a failed
    write (a full disk) is one line naming the file and the way on."""

    FLUSH_EVERY = 64

    def __init__(self, path: Path):
        self.path, self.rows = path, 0
        with self._writing():
            self.file = open(path, "a", encoding="utf-8")

    def write(self, entry: dict[str, Any]) -> None:
        with self._writing():
            self.file.write(json.dumps(entry, ensure_ascii=False, default=str) + "\n")
            self.rows += 1
            if self.rows % self.FLUSH_EVERY == 0:
                self.file.flush()

    def __enter__(self) -> PartialWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        with self._writing():
            self.file.close()

    def _writing(self):
        return writing(self.path, then="the rows written so far are kept: free space, then re-run with predict.resume=true")


def resumable_rows(partial: Path, key: dict[str, Any], total: int | None) -> int:
    """Rows the partial file of an interrupted run holds (0 if there is none, or it was
    killed before its header was whole); a torn last line is cut off. A partial file
    of another input, model or options is an error that says what changed."""
    if not partial.exists():
        return 0
    with open(partial, "rb+") as f:
        data = f.read()
        complete = data[: data.rfind(b"\n") + 1]
        if len(complete) != len(data):
            f.truncate(len(complete))
    lines = complete.splitlines()
    if not lines:
        return 0
    try:
        header = json.loads(lines[0]).get("taskhub_partial")
    except (ValueError, AttributeError):
        header = None
    if header != key:
        raise TaskhubError(
            f"{partial}: cannot resume: it was written for another input, model or task options ({difference(header, key)}); "
            "set predict.resume=false to start over"
        )
    if total is not None and len(lines) - 1 > total:
        raise TaskhubError(f"{partial}: cannot resume: it holds {len(lines) - 1} rows for {total} input rows; set predict.resume=false to start over")
    return len(lines) - 1


def difference(old: dict[str, Any] | None, new: dict[str, Any]) -> str:
    """The first part of a partial file's key that changed, in words."""
    old = old if isinstance(old, dict) else {}
    for part, what in (("input", "the input file changed"), ("model", "the model's files changed"), ("media", "files the input names changed"), ("rows", "the number of input rows changed")):
        if old.get(part) != new[part]:
            return what
    before, now = _flat(old.get("options") or {}), _flat(new["options"])
    for name in sorted(before.keys() | now.keys()):
        if before.get(name) != now.get(name):
            return f"{name} was {before.get(name)}, now {now.get(name)}"
    return "the header differs"


def _flat(options: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in options.items():
        if isinstance(value, dict) and value:
            flat.update(_flat(value, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = value
    return flat
