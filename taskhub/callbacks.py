"""Hydra callbacks: the results table of a sweep (``taskhub -m ...``).

The table is rewritten as each job ends (so a crash mid-sweep still leaves the
finished jobs' rows) and once more when the multirun ends.
"""

from __future__ import annotations

import sys
from typing import Any

from hydra.experimental.callback import Callback

#: Failed-job count of the last multirun in this process (the CLI's exit status).
last_sweep: dict[str, Any] = {"failed": 0, "rows": []}


class ResultsTable(Callback):
    """Writes ``results.csv``, ``results.md`` and ``results.json`` into the sweep dir."""

    def __init__(self, sort_by: str | None = None) -> None:
        self.sort_by = sort_by

    def on_job_end(self, config, job_return, **kwargs: Any) -> None:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hydra_cfg = HydraConfig.get()
        if hydra_cfg.mode == RunMode.MULTIRUN:
            from taskhub.sweeps import write_table

            write_table(hydra_cfg.sweep.dir, self.sort_by)

    def on_multirun_end(self, config, **kwargs: Any) -> None:
        from taskhub.sweeps import render_markdown, write_table

        sweep_dir = config.hydra.sweep.dir
        rows = write_table(sweep_dir, self.sort_by)
        last_sweep["rows"] = rows
        last_sweep["failed"] = sum(row["status"] == "failed" for row in rows)
        if rows:
            print(f"\nResults of {len(rows)} job(s) in {sweep_dir}/results.{{csv,md,json}}:\n", flush=True)
            print(render_markdown(rows), flush=True, file=sys.stdout)
