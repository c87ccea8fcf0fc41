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
from taskhub.fingerprints import file_digest, folder_digest
from taskhub.rundir import atomic_path, write_atomically

RESULT_FILE = "metrics.json"
TABLE_STEM = "results"
FIRST_COLUMNS = ("job", "task", "mode", "model", "status", "best", "step", "epoch")
LAST_COLUMNS = ("examples_per_s", "wall_time_s", "error", "samples", "job_dir")

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
    """Finished evaluation results by content key, in ``<dir>/<key>.json``, with their
    ``samples.jsonl`` as ``<key>.samples.jsonl``."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(os.path.expanduser(str(folder)))

    def get(self, key: str, run_dir: str | os.PathLike | None = None) -> dict[str, Any] | None:
        """The stored result; its samples copied into ``run_dir`` (a hit without them,
        stored before samples existed, is a miss when the result lists them)."""
        path = self.folder / f"{key}.json"
        try:
            result = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        if "samples" in result.get("outputs", {}):
            samples = self.folder / f"{key}.samples.jsonl"
            if not samples.is_file():
                return None
            if run_dir is not None:
                _copy(samples, Path(run_dir) / Path(result["outputs"]["samples"]).name)
        return result

    def put(self, key: str, result: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        samples = result.get("outputs", {}).get("samples")
        if samples:
            _copy(Path(samples), self.folder / f"{key}.samples.jsonl")
        write_atomically(self.folder / f"{key}.json", json.dumps(result))


def _copy(source: Path, target: Path) -> None:
    import shutil

    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


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
#: The current sweep of a sweep dir (written when a multirun starts): rows of earlier
#: sweeps into the same dir, e.g. with a longer job list, are not this sweep's.
SWEEP_MARK = ".taskhub-sweep.json"


def sweep_size(config) -> int | None:
    """How many jobs a multirun will run: the sweeper's trial budget (Optuna), else the
    product of the swept values' counts (the basic sweeper); None when a value is a range
    to sample from."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    trials = OmegaConf.select(config, "hydra.sweeper.n_trials", default=None)
    if trials:
        return int(trials)
    total = 1
    try:
        for override in OverridesParser.create().parse_overrides(list(config.hydra.overrides.task)):
            if override.is_sweep_override():
                total *= len(list(override.sweep_string_iterator()))
    except Exception:  # an interval or other value to sample from: no count
        return None
    return total


def start_sweep(sweep_dir: str | os.PathLike) -> None:
    import uuid

    folder = Path(sweep_dir)
    folder.mkdir(parents=True, exist_ok=True)
    write_atomically(folder / SWEEP_MARK, json.dumps({"sweep": uuid.uuid4().hex}))


def _current_sweep(sweep_dir: str | os.PathLike) -> str | None:
    try:
        return json.loads((Path(sweep_dir) / SWEEP_MARK).read_text())["sweep"]
    except (OSError, ValueError, KeyError):
        return None  # a sweep dir from before marks: every row counts


def _of_current_sweep(result: dict[str, Any], path: Path, current: str | None, started: float) -> bool:
    """Stamped with the current sweep's mark, or unstamped (a job that stopped the sweep:
    fail_fast, Ctrl-C) but written after the mark."""
    if current is None or result.get("sweep") == current:
        return True
    return result.get("sweep") is None and path.stat().st_mtime >= started


def stamp_job(job_dir: str | os.PathLike, sweep_dir: str | os.PathLike, wall_time_s: float | None) -> None:
    """Mark a finished job's result as the current sweep's; a failed job's gets its wall time."""
    path = Path(job_dir) / RESULT_FILE
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    result["sweep"] = _current_sweep(sweep_dir)
    if result.get("wall_time_s") is None and wall_time_s is not None:
        result["wall_time_s"] = round(wall_time_s, 3)
    write_atomically(path, json.dumps(result, indent=2) + "\n")


def collect_rows(sweep_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """One row per job of the sweep dir's current sweep that has a result file, in job
    order, with the swept values (every override whose value differs between jobs), the
    checkpoint's training step and epoch, its samples file, and ``best``: whether it is
    its task's best job by the main metric (:func:`taskhub.search.mark_best`)."""
    from taskhub.search import mark_best

    current = _current_sweep(sweep_dir)
    started = (Path(sweep_dir) / SWEEP_MARK).stat().st_mtime if current else 0.0
    rows = []
    for path in sorted(Path(sweep_dir).glob(f"**/{RESULT_FILE}"), key=lambda p: _natural(str(p))):
        try:
            result = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if "task" not in result or not _of_current_sweep(result, path, current, started):
            continue
        status = result.get("status", "ok")
        row: dict[str, Any] = {
            "job": result.get("job", path.parent.name),
            "task": result["task"],
            "mode": result.get("mode"),
            "model": result.get("model"),
            "status": status,
            **_training_progress(result.get("model")),
            "overrides": dict(o.split("=", 1) for o in result.get("overrides", []) if "=" in o),
        }
        metrics = result.get("metrics", {})
        row.update(metrics)
        # A cached row's throughput was measured by another run, its wall time by this one.
        row["examples_per_s"] = _throughput(metrics) if status == "ok" else None
        row["wall_time_s"] = result.get("wall_time_s")
        row["error"] = result.get("error", "")
        row["job_dir"] = str(path.parent)
        if (path.parent / "samples.jsonl").is_file():
            row["samples"] = str(path.parent / "samples.jsonl")
        rows.append(row)
    swept = sorted({k for r in rows for k in r["overrides"] if len({r2["overrides"].get(k) for r2 in rows}) > 1} - set(NOT_SWEPT))
    for row in rows:
        overrides = row.pop("overrides")
        row.update({key: overrides.get(key, "") for key in swept})
    mark_best(rows)
    return rows


#: Overrides that have columns of their own.
NOT_SWEPT = ("task", "model.name_or_path", "mode")


def _training_progress(model: str | None) -> dict[str, Any]:
    """``step`` and ``epoch`` of a checkpoint taskhub (or a Trainer) saved."""
    from taskhub.provenance import read_provenance

    if not model or not os.path.isdir(model):
        return {}
    record = read_provenance(model) or {}
    if "step" not in record:
        try:
            record = json.loads((Path(model) / "trainer_state.json").read_text())
            record = {"step": record.get("global_step"), "epoch": record.get("epoch")}
        except (OSError, ValueError):
            return {}
    return {key: record.get(key) for key in ("step", "epoch") if record.get(key) is not None}


def _throughput(metrics: dict[str, Any]) -> float | None:
    for key in ("test_samples_per_second", "predict_rows_per_second", "validation_samples_per_second"):
        if isinstance(metrics.get(key), (int, float)):
            return metrics[key]
    return None


def sort_rows(rows: list[dict[str, Any]], by: str | None, descending: bool = True) -> list[dict[str, Any]]:
    """Rows grouped by task (in name order) and sorted by ``by`` within each task, rows
    without it last; job order when ``by`` is unset."""
    if by and not any(by in row for row in rows):
        names = sorted({k for row in rows for k in row})
        raise TaskhubError(f"cannot sort by '{by}': no such column (columns: {', '.join(names)})")
    ordered = []
    for task in sorted({row["task"] for row in rows}):
        group = [r for r in rows if r["task"] == task]
        if by:
            present = [r for r in group if isinstance(r.get(by), (int, float))]
            group = sorted(present, key=lambda r: r[by], reverse=descending) + [r for r in group if r not in present]
        ordered.extend(group)
    return ordered


def columns_of(rows: list[dict[str, Any]]) -> list[str]:
    seen = {k for row in rows for k in row}
    metrics = sorted(seen - set(FIRST_COLUMNS) - set(LAST_COLUMNS))
    return [c for c in FIRST_COLUMNS if c in seen] + metrics + [c for c in LAST_COLUMNS if c in seen]


def render_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns_of(rows), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def write_table(
    sweep_dir: str | os.PathLike, sort_by: str | None = None, descending: bool = True, sections: tuple[str, ...] = (), plots: bool = True
) -> list[dict[str, Any]]:
    """Write results.{csv,md,json} into the sweep dir (atomically, rows sorted) and return
    the rows: csv / json hold every column of every row, results.md the leaderboard
    (:mod:`taskhub.leaderboard`) and any extra ``sections``; with ``plots``, the training
    curves beside them."""
    from taskhub.leaderboard import plot_curves, render_leaderboard

    rows = sort_rows(collect_rows(sweep_dir), sort_by, descending)
    folder = Path(sweep_dir)
    for suffix, text in (
        ("csv", render_csv(rows)),
        ("md", "\n".join([render_leaderboard(rows), *sections])),
        ("json", json.dumps(rows, indent=2) + "\n"),
    ):
        write_atomically(folder / f"{TABLE_STEM}.{suffix}", text)
    if plots:
        plot_curves(rows, folder)
    return rows
