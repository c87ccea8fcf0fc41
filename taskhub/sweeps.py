"""Sweeps over checkpoints and tasks: content-keyed result reuse and one results table.

A job's key hashes what decides its result: the resolved run config, the bytes of
the checkpoint's files and of the data files. Re-running a sweep reuses a stored
result only when the key matches, so a retrained checkpoint in the same folder is
evaluated again (lm-evaluation-harness keys its cache by model name and serves
stale results after retraining; we do not).
"""

from __future__ import annotations

import csv
import glob
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

from taskhub.errors import TaskhubError

RESULT_FILE = "metrics.json"
TABLE_STEM = "results"
FIRST_COLUMNS = ("job", "task", "mode", "model", "status")
LAST_COLUMNS = ("examples_per_s", "wall_time_s", "error", "job_dir")

_file_hashes: dict[tuple[str, int, int], str] = {}


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, memoised per (path, size, mtime) within the process."""
    stat = os.stat(path)
    memo = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
    if memo not in _file_hashes:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _file_hashes[memo] = digest.hexdigest()
    return _file_hashes[memo]


def folder_digest(folder: str | os.PathLike, exclude_suffixes: tuple[str, ...] = ()) -> str:
    """Hash of the names and bytes of the files directly in a folder (a checkpoint)."""
    digest = hashlib.sha256()
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if os.path.isfile(path) and not name.endswith(exclude_suffixes) and not name.startswith("."):
            digest.update(name.encode() + b"\0" + file_digest(path).encode())
    return digest.hexdigest()


def job_key(config_yaml: str, model_dir: str | None, data_files: list[str]) -> str | None:
    """The content key of an evaluation; None when the model is not a local folder
    (a hub id whose content cannot be hashed offline), which disables reuse."""
    if model_dir is None or not os.path.isdir(model_dir):
        return None
    digest = hashlib.sha256(config_yaml.encode())
    digest.update(folder_digest(model_dir).encode())
    for path in data_files:
        digest.update(file_digest(path).encode())
    return digest.hexdigest()


class ResultCache:
    """Finished evaluation results by content key, in ``<dir>/<key>.json``."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(os.path.expanduser(str(folder)))

    def get(self, key: str) -> dict[str, Any] | None:
        path = self.folder / f"{key}.json"
        try:
            return json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def put(self, key: str, result: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{key}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(result))
        os.replace(tmp, self.folder / f"{key}.json")


def expand_values(value: str) -> str:
    """``glob:<pattern>`` -> the matching paths, ``file:<list.txt>`` -> its non-empty lines,
    joined with commas for a Hydra sweep (e.g. every ``checkpoint-*`` of a training run)."""
    if value.startswith("glob:"):
        pattern = value[len("glob:") :]
        matches = sorted(glob.glob(os.path.expanduser(pattern)), key=_natural)
        if not matches:
            raise TaskhubError(f"glob:{pattern} matches no files or folders")
        return ",".join(matches)
    if value.startswith("file:"):
        path = value[len("file:") :]
        try:
            lines = [line.strip() for line in Path(path).read_text().splitlines()]
        except OSError as exc:
            raise TaskhubError(f"file:{path}: cannot read the list: {exc.strerror}") from None
        entries = [line for line in lines if line and not line.startswith("#")]
        if not entries:
            raise TaskhubError(f"file:{path}: the list is empty")
        return ",".join(entries)
    return value


def register_resolvers() -> None:
    """``${glob:<pattern>}`` and ``${lines:<file>}`` for sweep configs (``hydra.sweeper.params``),
    and ``${per_task:${task.name},{<task>: <value>, ...}}`` for per-task values (e.g. data)."""
    from omegaconf import OmegaConf

    for name in ("glob", "lines"):
        if not OmegaConf.has_resolver(name):
            prefix = "glob:" if name == "glob" else "file:"
            OmegaConf.register_new_resolver(name, lambda value, prefix=prefix: expand_values(prefix + str(value)))
    if not OmegaConf.has_resolver("per_task"):
        OmegaConf.register_new_resolver("per_task", per_task)


def per_task(task_name: str, values: Any = None) -> Any:
    """The value listed for this job's task; None (the task's default, e.g. its bundled
    test split) for a task not listed. In a sweep config::

        data:
          test: "${per_task:${task.name},{text_classification: reviews.jsonl, ner: ner_test.jsonl}}"
    """
    from omegaconf import DictConfig

    if not isinstance(values, (dict, DictConfig)):
        raise TaskhubError(f"per_task: expected a mapping of task name to value, got {values!r}")
    return values.get(str(task_name))


def expand_overrides(overrides: list[str]) -> list[str]:
    expanded = []
    for override in overrides:
        key, sep, value = override.partition("=")
        expanded.append(f"{key}{sep}{expand_values(value)}" if sep else override)
    return expanded


def _natural(text: str):
    import re

    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


# ------------------------------------------------------------------- the table
def collect_rows(sweep_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """One row per job dir under the sweep dir that has a result file."""
    rows = []
    for path in sorted(Path(sweep_dir).glob(f"**/{RESULT_FILE}"), key=lambda p: _natural(str(p))):
        try:
            result = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if "task" not in result:
            continue
        row: dict[str, Any] = {
            "job": result.get("job", path.parent.name),
            "task": result["task"],
            "mode": result.get("mode"),
            "model": result.get("model"),
            "status": result.get("status", "ok"),
        }
        metrics = result.get("metrics", {})
        row.update(metrics)
        row["examples_per_s"] = _throughput(metrics)
        row["wall_time_s"] = result.get("wall_time_s")
        row["error"] = result.get("error", "")
        row["job_dir"] = str(path.parent)
        rows.append(row)
    return rows


def _throughput(metrics: dict[str, Any]) -> float | None:
    for key in ("test_samples_per_second", "predict_rows_per_second", "validation_samples_per_second"):
        if isinstance(metrics.get(key), (int, float)):
            return metrics[key]
    return None


def sort_rows(rows: list[dict[str, Any]], by: str | None, descending: bool = True) -> list[dict[str, Any]]:
    if not by:
        return rows
    if not any(by in row for row in rows):
        names = sorted({k for row in rows for k in row})
        raise TaskhubError(f"cannot sort by '{by}': no such column (columns: {', '.join(names)})")
    present = [r for r in rows if isinstance(r.get(by), (int, float))]
    absent = [r for r in rows if not isinstance(r.get(by), (int, float))]
    return sorted(present, key=lambda r: r[by], reverse=descending) + absent


def columns_of(rows: list[dict[str, Any]]) -> list[str]:
    seen = {k for row in rows for k in row}
    metrics = sorted(seen - set(FIRST_COLUMNS) - set(LAST_COLUMNS))
    return [c for c in FIRST_COLUMNS if c in seen] + metrics + [c for c in LAST_COLUMNS if c in seen]


def render_markdown(rows: list[dict[str, Any]]) -> str:
    columns = columns_of(rows)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def render_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns_of(rows), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def write_table(sweep_dir: str | os.PathLike, sort_by: str | None = None) -> list[dict[str, Any]]:
    """Write results.{csv,md,json} into the sweep dir (atomically) and return the rows."""
    rows = sort_rows(collect_rows(sweep_dir), sort_by)
    folder = Path(sweep_dir)
    for suffix, text in (
        ("csv", render_csv(rows)),
        ("md", render_markdown(rows)),
        ("json", json.dumps(rows, indent=2) + "\n"),
    ):
        tmp = folder / f".{TABLE_STEM}.{suffix}.{os.getpid()}.tmp"
        tmp.write_text(text)
        os.replace(tmp, folder / f"{TABLE_STEM}.{suffix}")
    return rows
