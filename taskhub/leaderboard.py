"""The sweep leaderboard (``results.md``), its plots and paired comparisons.

``results.md`` leads with a pivot: one row per checkpoint, one column per task's main
metric with its 95% interval, the best per task in bold. Below it, one table per task
with that task's metrics only (no cells left blank by another task's columns, no runtime
columns: those stay in ``results.json``), the swept values and the checkpoint's training
step and epoch as columns, each task's best job marked ``(best)`` and named in a line
under its table with the metric it is best by (:func:`taskhub.search.mark_best`); then
the failed jobs. A sweep over the checkpoints of one training run also gets
``results_<task>.png``: each metric against the training step.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from taskhub.rundir import atomic_path

log = logging.getLogger("taskhub")

#: Metric columns that describe the run rather than the model.
NOISE = ("_runtime", "_per_second", "_model_preparation_time", "_errors")
INTERVAL = ("_ci_low", "_ci_high", "_stderr")
#: Columns of a row that are not metrics.
NOT_METRICS = {"job", "task", "mode", "model", "status", "best", "step", "epoch", "examples_per_s", "wall_time_s", "error", "samples", "job_dir"}


def main_key(task: str, rows: list[dict[str, Any]] | None = None) -> str | None:
    """The column of a task's main metric (``test_<main_metric>``), if the task is known."""
    from taskhub.manager import get_registry

    registry = get_registry()
    if task not in registry:
        return None
    key = f"test_{registry.get(task).task_cls.main_metric}"
    return key if rows is None or any(key in r for r in rows) else None


def greater_is_better(key: str) -> bool:
    from taskhub.tracking import greater_is_better as better

    return better(key)


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def metric_cell(row: dict[str, Any], key: str) -> str:
    """``0.85 [0.8, 0.9]``: the value and, when bootstrapped, its 95% interval."""
    text = _number(row[key])
    if f"{key}_ci_low" in row:
        text += f" [{_number(row[f'{key}_ci_low'])}, {_number(row[f'{key}_ci_high'])}]"
    return text


def _table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines) + "\n"


def _done(rows):
    return [r for r in rows if r["status"] != "failed"]


def _best(rows: list[dict[str, Any]], key: str):
    values = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
    if not values:
        return None
    return max(values) if greater_is_better(key) else min(values)


def render_pivot(rows: list[dict[str, Any]]) -> str:
    done = _done(rows)
    tasks = [t for t in dict.fromkeys(r["task"] for r in done) if main_key(t, done)]
    if not tasks:
        return ""
    keys = {t: main_key(t) for t in tasks}
    best = {t: _best([r for r in done if r["task"] == t], keys[t]) for t in tasks}
    body = []
    for model in dict.fromkeys(r["model"] for r in done):
        cells = [_number(model)]
        for task in tasks:
            row = next((r for r in done if r["model"] == model and r["task"] == task and keys[task] in r), None)
            if row is None:
                cells.append("–")
            else:
                cell = metric_cell(row, keys[task])
                cells.append(f"**{cell}**" if row[keys[task]] == best[task] else cell)
        body.append(cells)
    return "## Leaderboard\n\n" + _table(["model", *(f"{t} ({keys[t].removeprefix('test_')})" for t in tasks)], body)


def task_columns(rows: list[dict[str, Any]], main: str | None) -> list[str]:
    """A task's metric columns: those every one of its rows has, main metric first, no
    runtime or interval columns (intervals join their metric's cell)."""
    shared = set.intersection(*(set(r) for r in rows)) - NOT_METRICS
    metrics = sorted(
        k for k in shared if isinstance(rows[0][k], (int, float)) and not k.endswith(NOISE + INTERVAL) and not k.startswith("before_")
    )
    return sorted(metrics, key=lambda k: k != main)


def render_task_table(task: str, rows: list[dict[str, Any]]) -> str:
    main = main_key(task, rows)
    metrics = task_columns(rows, main)
    context = [c for c in ("step", "epoch") if all(c in r for r in rows)]
    swept = [k for k in rows[0] if k not in NOT_METRICS and isinstance(rows[0][k], str)]  # metrics are numbers
    header = ["job", "model", *context, *swept, *metrics, "status", *(["samples"] if any("samples" in r for r in rows) else [])]
    body = []
    for row in rows:
        job = f"**{_number(row['job'])} (best)**" if row.get("best") else _number(row["job"])
        cells = [job, _number(row["model"]), *(_number(row[c]) for c in context), *(_number(row[k]) for k in swept)]
        cells += [metric_cell(row, k) if k == main else _number(row[k]) for k in metrics]
        cells.append(row["status"])
        if "samples" in header:
            cells.append(f"[samples]({os.path.relpath(row['samples'], Path(row['job_dir']).parent)})" if row.get("samples") else "–")
        body.append(cells)
    return f"## {task}\n\n" + _table(header, body) + best_line(task, rows)


def best_line(task: str, rows: list[dict[str, Any]]) -> str:
    """``Best: job 3 by validation_accuracy (higher is better): 0.9375``, under a task's table."""
    from taskhub.search import ranking

    found = ranking(task, rows)
    best = [r for r in rows if r.get("best")]
    if found is None or not best:
        return ""
    key, higher = found
    jobs = ", ".join(_number(r["job"]) for r in best)
    return f"\nBest: job{'s' if len(best) > 1 else ''} {jobs} by {key} ({'higher' if higher else 'lower'} is better): {_number(best[0][key])}\n"


def render_failed(rows: list[dict[str, Any]]) -> str:
    failed = [r for r in rows if r["status"] == "failed"]
    if not failed:
        return ""
    body = [[_number(r["job"]), r["task"], _number(r["model"]), _number(r.get("wall_time_s") or ""), _number(r.get("error", ""))] for r in failed]
    return "## Failed jobs\n\n" + _table(["job", "task", "model", "wall_time_s", "error"], body)


def render_leaderboard(rows: list[dict[str, Any]]) -> str:
    """The whole ``results.md``: pivot, a table per task (rows in the order given), failures."""
    done = _done(rows)
    sections = [render_pivot(rows)]
    sections += [render_task_table(t, [r for r in done if r["task"] == t]) for t in dict.fromkeys(r["task"] for r in done)]
    sections.append(render_failed(rows))
    return "\n".join(s for s in sections if s)


# ---------------------------------------------------------------- comparisons
def paired_comparisons(rows: list[dict[str, Any]], baseline: str, resamples: int, seed: int) -> list[dict[str, Any]]:
    """Every finished row against the baseline row of its task (``baseline``: a job number
    or model path) by a paired test on their ``samples.jsonl`` (:func:`taskhub.stats.paired_test`)."""
    from taskhub.errors import TaskhubError
    from taskhub.manager import get_registry
    from taskhub.scoring import main_statistic, read_samples
    from taskhub.stats import binary_column, paired_test
    from taskhub.metric_declarations import score_columns

    done = _done(rows)
    bases = [r for r in done if baseline in (str(r["job"]), r["model"])]
    if not bases:
        raise TaskhubError(f"report.baseline={baseline}: no finished job has that number or model")
    results = []
    for base in bases:
        task = get_registry().get(base["task"]).task_cls()
        if "samples" not in base:
            raise TaskhubError(f"report.baseline={baseline}: job {base['job']} has no samples.jsonl to compare on (evaluate.samples=false?)")
        base_samples = read_samples(base["samples"])
        reference = score_columns(base_samples)
        statistic = main_statistic(task)
        for row in done:
            if row is base or row["task"] != base["task"] or "samples" not in row:
                continue
            samples = read_samples(row["samples"])
            entry = {"task": row["task"], "job": row["job"], "model": row["model"], "baseline": base["model"], "metric": main_key(row["task"])}
            if [s["input"] for s in samples] != [s["input"] for s in base_samples]:
                results.append({**entry, "test": "not comparable: different examples"})
                continue
            columns = score_columns(samples)
            entry.update(paired_test(columns, reference, statistic, resamples, seed, binary_column(columns, task.main_metric)))
            results.append(entry)
    return results


def render_comparisons(comparisons: list[dict[str, Any]]) -> str:
    body = []
    for c in comparisons:
        if "p_value" not in c:
            body.append([c["task"], _number(c["model"]), _number(c["baseline"]), "", "", "", c["test"], ""])
            continue
        verdict = "significant" if c["significant"] else "not significant"
        interval = f"[{_number(c['ci_low'])}, {_number(c['ci_high'])}]"
        body.append([c["task"], _number(c["model"]), _number(c["baseline"]), f"{c['difference']:+.4g}", interval, f"{c['p_value']:.3g}", c["test"], verdict])
    header = ["task", "model", "baseline", "difference", "95% CI", "p", "test", "verdict"]
    return "## Paired comparisons (main metric, same examples)\n\n" + _table(header, body)


def render_side_by_side(rows: list[dict[str, Any]], other: list[dict[str, Any]], names: tuple[str, str]) -> str:
    """Two sweeps' main metrics per task and checkpoint (matched by step, else model)."""
    def match(row):
        return row["task"], row.get("step", row["model"])

    theirs = {match(r): r for r in _done(other)}
    body = []
    for row in _done(rows):
        key = main_key(row["task"])
        if key is None or key not in row:
            continue
        twin = theirs.get(match(row))
        cell = metric_cell(twin, key) if twin is not None and key in twin else "–"
        body.append([row["task"], _number(row.get("step", row["model"])), metric_cell(row, key), cell])
    return f"## {names[0]} beside {names[1]}\n\n" + _table(["task", "checkpoint", names[0], names[1]], body)


# -------------------------------------------------------------------- plots
def run_of(model: str) -> str:
    """The training run a checkpoint folder belongs to."""
    path = Path(model)
    if path.name.startswith("checkpoint-"):
        path = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    else:
        path = path.parent
    return str(path)


def curves(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Task -> its rows, by step, when one training run has two or more checkpoints among them."""
    found = {}
    for task in dict.fromkeys(r["task"] for r in rows):
        by_run: dict[str, list[dict[str, Any]]] = {}
        for row in _done(rows):
            if row["task"] == task and "step" in row:
                by_run.setdefault(run_of(row["model"]), []).append(row)
        series = [points for points in by_run.values() if len(points) >= 2]
        if len(series) == 1:
            found[task] = sorted(series[0], key=lambda r: r["step"])
    return found


def plot_curves(rows: list[dict[str, Any]], folder: Path, other: list[dict[str, Any]] | None = None, names: tuple[str, str] = ("", "")) -> list[Path]:
    """``results_<task>.png``: each metric against the training step, the main metric with
    its interval as a band; with ``other`` (report.compare), its curves too. Needs
    matplotlib (``pip install 'taskhub[plots]'``); without it, a note and no plots."""
    mine = curves(rows)
    if not mine:
        return []
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("no plots: matplotlib is not installed (pip install 'taskhub[plots]')")
        return []
    theirs = curves(other) if other else {}
    written = []
    for task, series in mine.items():
        main = main_key(task, series)
        metrics = task_columns(series, main)[:6]
        figure, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.2), squeeze=False)
        for axis, key in zip(axes[0], metrics):
            for label, points in ((names[0], series), (names[1], theirs.get(task, []))):
                points = [p for p in points if key in p]
                if not points:
                    continue
                steps = [p["step"] for p in points]
                axis.plot(steps, [p[key] for p in points], marker="o", label=label or None)
                if all(f"{key}_ci_low" in p for p in points):
                    axis.fill_between(steps, [p[f"{key}_ci_low"] for p in points], [p[f"{key}_ci_high"] for p in points], alpha=0.2)
            axis.set_title(key.removeprefix("test_"))
            axis.set_xlabel("training step")
            if theirs:
                axis.legend()
        figure.suptitle(task)
        figure.tight_layout()
        path = folder / f"results_{task}.png"
        with atomic_path(path) as tmp:
            figure.savefig(tmp, dpi=100, format="png")
        plt.close(figure)
        written.append(path)
    return written
