"""``mode=report``: the leaderboard of a sweep dir, re-rendered and sorted; paired
comparisons with a baseline row (``report.baseline``) and another sweep beside it
(``report.compare``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from taskhub.config import RunConfig
from taskhub.errors import TaskhubError


def report(run: RunConfig) -> dict[str, Any]:
    """Re-render and print the leaderboard of an existing sweep dir."""
    from taskhub.leaderboard import paired_comparisons, plot_curves, render_comparisons, render_leaderboard, render_side_by_side
    from taskhub.sweeps import collect_rows, sort_rows, write_table

    folder = _sweep_dir(run.report.dir, "report.dir")
    descending = not run.report.ascending
    rows = sort_rows(collect_rows(folder), run.report.sort, descending)
    if not rows:
        raise TaskhubError(f"{folder}: no job results (metrics.json) found")
    sections = []
    result: dict[str, Any] = {"mode": "report", "rows": rows}
    if run.report.baseline:
        result["comparisons"] = paired_comparisons(rows, run.report.baseline, run.evaluate.bootstrap or 1000, run.seed)
        sections.append(render_comparisons(result["comparisons"]))
    if run.report.compare:
        other = collect_rows(_sweep_dir(run.report.compare, "report.compare"))
        names = (Path(folder).name, Path(run.report.compare).name)
        sections.append(render_side_by_side(rows, other, names))
    write_table(folder, run.report.sort, descending, tuple(sections), plots=not run.report.compare)
    if run.report.compare:
        plot_curves(rows, Path(folder), other, names)
    print("\n".join([render_leaderboard(rows), *sections]), end="", flush=True)
    result["outputs"] = {s: os.path.join(folder, f"results.{s}") for s in ("csv", "md", "json")}
    return result


def _sweep_dir(path: str | None, key: str) -> str:
    if not path:
        raise TaskhubError(f"mode=report needs {key}=<a sweep dir, e.g. multirun/2026-11-22_10-00-00>")
    if not os.path.isdir(path):
        raise TaskhubError(f"{key}: no such folder: {path}")
    return path
