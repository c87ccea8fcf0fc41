"""Row 8: one run on 2 processes (``torchrun --nproc_per_node=2 -m taskhub``) against the
same run on 1 process, each process with ``--threads`` intra-op threads (1 on the 2-core
machine: 2 processes x 1 thread vs 1 x 1). Predict: rows/s of the whole input
(``predict_rows_per_second``: no start-up or model load); training: the Trainer's own
``train_samples_per_second`` at the same global batch (1 x 32 vs 2 x 16), so both runs
take the same optimizer steps."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import fixtures
from bench import CACHE, TASKHUB, RowResult, Settings, compare, load, ratio

TORCHRUN = str(Path(TASKHUB).with_name("torchrun"))


def scale_out(s: Settings, log=print) -> RowResult:
    started, load_start = time.perf_counter(), load()
    model = _classifier()
    texts = fixtures.mixed_texts(s.pick(2000, 400))
    data = fixtures.jsonl_file(f"scale_texts_{len(texts)}", texts)
    train_rows = s.pick(256, 64)
    predict = ["task=text_classification", "mode=predict", f"model.name_or_path={model}", f"data.predict={data}", "device=cpu"]
    train = ["task=text_classification", "mode=train", f"model.name_or_path={fixtures.minilm_path()}", f"data.train={fixtures.food_train_file()}",
             f"data.limit={train_rows}", "train.num_train_epochs=1", "train.learning_rate=5e-5", "train.save_strategy=no",
             "device=cpu", "seed=42", "results_cache=null"]  # with data.train given, no validation or test split
    figures: dict[str, list[float]] = {}

    def competitor(name: str, processes: int, overrides: list[str], metric: str):
        def run(_):
            run_dir = tempfile.mkdtemp(prefix="scale-", dir=CACHE)
            try:
                launcher = [TORCHRUN, "--standalone", f"--nproc_per_node={processes}", "-m", "taskhub"] if processes > 1 else [TASKHUB]
                env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(s.threads)}
                subprocess.run([*launcher, *overrides, f"hydra.run.dir={run_dir}"], check=True, capture_output=True, env=env)
                value = json.loads(Path(run_dir, "metrics.json").read_text())["metrics"][metric]
            finally:
                shutil.rmtree(run_dir, ignore_errors=True)
            figures.setdefault(name, []).append(value)
            return value
        return run

    competitors = {
        "predict, 1 process": competitor("predict, 1 process", 1, predict, "predict_rows_per_second"),
        "predict, 2 processes": competitor("predict, 2 processes", 2, predict, "predict_rows_per_second"),
        "train, 1 process x bs 32": competitor("train, 1 process x bs 32", 1, [*train, "train.per_device_train_batch_size=32"], "train_samples_per_second"),
        "train, 2 processes x bs 16": competitor("train, 2 processes x bs 16", 2, [*train, "train.per_device_train_batch_size=16"], "train_samples_per_second"),
    }
    timings, _ = compare(competitors, None, None, 0, s.repeats, log)
    median = {name: statistics.median(values[1:]) for name, values in figures.items()}  # [0]: the warm-up
    for t in timings.values():
        t.note = f"{'rows' if t.name.startswith('predict') else 'samples'}/s median {median[t.name]:.1f}; time is the whole command"
    result = RowResult("8", f"2 processes (torchrun) vs 1, {s.threads} thread each: predict {len(texts)} mixed texts, train {train_rows} captions", list(timings.values()))
    result.ratios = [
        ratio("8", "predict rows/s, 2 processes / 1", median["predict, 2 processes"] / median["predict, 1 process"], 1.7),
        ratio("8", "train samples/s, 2 processes / 1 (same global batch)", median["train, 2 processes x bs 16"] / median["train, 1 process x bs 32"]),
        ratio("8", "predict whole command, 2 processes / 1", timings["predict, 1 process"].median / timings["predict, 2 processes"].median),
    ]
    result.facts = {"per_second": median}
    result.load, result.wall_s = (load_start, load()), time.perf_counter() - started
    return result


def _classifier() -> str:
    """MiniLM with a random 2-label head (speed does not depend on the weights)."""
    from taskhub.testing import save_task_model

    path = CACHE / "models" / "minilm_random_head"
    if not (path / "config.json").is_file():
        save_task_model("text_classification", fixtures.minilm_path(), path, num_labels=2,
                        id2label={0: "food", 1: "not_food"}, label2id={"food": 0, "not_food": 1})
    return str(path)
