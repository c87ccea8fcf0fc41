"""Hydra callbacks: the results table of a sweep (``taskhub -m ...``).

The table is rewritten as each job ends (so a crash mid-sweep still leaves the
finished jobs' rows) and once more, with its plots, when the multirun ends. A multirun
marks its sweep dir as it starts and each job's result as it ends, so a sweep re-run
into the same dir with fewer jobs shows only its own rows.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from hydra.experimental.callback import Callback

#: Failed-job count of the last multirun in this process (the CLI's exit status).
last_sweep: dict[str, Any] = {"failed": 0, "rows": []}


class ResultsTable(Callback):
    """Writes ``results.csv``, ``results.md`` and ``results.json`` into the sweep dir."""

    def __init__(self, sort_by: str | None = None) -> None:
        self.sort_by = sort_by
        self.job_started: float | None = None
        self.jobs_bar = None  # jobs done, ETA: counted where the jobs run in this process
        self.bar_pid: int | None = None

    def on_multirun_start(self, config, **kwargs: Any) -> None:
        from taskhub.progress import bar
        from taskhub.sweeps import start_sweep, sweep_size

        start_sweep(config.hydra.sweep.dir)
        self.jobs_bar = bar(sweep_size(config), "sweep", config.get("progress"), unit=" jobs")
        self.bar_pid = os.getpid()

    def on_job_start(self, config, **kwargs: Any) -> None:
        self.job_started = time.perf_counter()  # a failed job's wall time (its record has none)

    def on_job_end(self, config, job_return, **kwargs: Any) -> None:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hydra_cfg = HydraConfig.get()
        if hydra_cfg.mode == RunMode.MULTIRUN:
            from taskhub.sweeps import stamp_job, write_table

            elapsed = time.perf_counter() - self.job_started if self.job_started is not None else None
            stamp_job(hydra_cfg.runtime.output_dir, hydra_cfg.sweep.dir, elapsed)
            write_table(hydra_cfg.sweep.dir, self.sort_by, plots=False)
            if self.jobs_bar is not None and os.getpid() == self.bar_pid:  # parallel launchers: jobs elsewhere
                self.jobs_bar.update(1)

    def on_multirun_end(self, config, **kwargs: Any) -> None:
        from taskhub.leaderboard import render_leaderboard
        from taskhub.sweeps import write_table

        if self.jobs_bar is not None:
            self.jobs_bar.close()
        sweep_dir = config.hydra.sweep.dir
        rows = write_table(sweep_dir, self.sort_by)
        last_sweep["rows"] = rows
        last_sweep["failed"] = sum(row["status"] == "failed" for row in rows)
        if rows:
            print(f"\nResults of {len(rows)} job(s) in {sweep_dir}/results.{{csv,md,json}}:\n", flush=True)
            print(render_leaderboard(rows), flush=True, file=sys.stdout)
