"""``mode=report``: the results table of a sweep dir, re-rendered and sorted."""

from __future__ import annotations

import os
from typing import Any

from taskhub.config import RunConfig
from taskhub.errors import TaskhubError


def report(run: RunConfig) -> dict[str, Any]:
    """Re-render and print the results table of an existing sweep dir."""
    from taskhub.sweeps import render_markdown, sort_rows, write_table

    if not run.report.dir:
        raise TaskhubError("mode=report needs report.dir=<a sweep dir, e.g. multirun/2026-11-22_10-00-00>")
    if not os.path.isdir(run.report.dir):
        raise TaskhubError(f"report.dir: no such folder: {run.report.dir}")
    rows = write_table(run.report.dir)
    rows = sort_rows(rows, run.report.sort, descending=not run.report.ascending)
    if not rows:
        raise TaskhubError(f"{run.report.dir}: no job results (metrics.json) found")
    print(render_markdown(rows), end="", flush=True)
    return {"mode": "report", "rows": rows, "outputs": {s: os.path.join(run.report.dir, f"results.{s}") for s in ("csv", "md", "json")}}
