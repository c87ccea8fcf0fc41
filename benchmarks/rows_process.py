"""Rows measured with whole processes or whole training runs: start-up (5), peak memory of
predict on 2,000 vs 200,000 rows (6), training throughput against a plain Trainer (7)."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time

import fixtures
from bench import CACHE, PYTHON, TASKHUB, RowResult, Settings, Timing, compare, load, ratio


def _env(s: Settings, **extra: str) -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(s.threads), **extra}


# ------------------------------------------------------------------ 5 start-up
def startup(s: Settings, log=print) -> RowResult:
    """``taskhub --help`` vs ``python -c "import torch, transformers"`` (and a bare interpreter
    for scale), each a fresh process; one warm-up each (disk cache), then rotating rounds."""
    started, load_start = time.perf_counter(), load()
    commands = {
        "taskhub --help": [TASKHUB, "--help"],
        "python -c 'import torch, transformers'": [PYTHON, "-c", "import torch, transformers"],
        "python -c pass": [PYTHON, "-c", "pass"],
    }
    env = _env(s)

    def runner(argv):
        def run(_):
            subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return run

    rounds = s.pick(7, 3)
    timings, _ = compare({name: runner(argv) for name, argv in commands.items()}, None, None, 1, rounds, log)
    helped, imports = timings["taskhub --help"], timings["python -c 'import torch, transformers'"]
    result = RowResult("5", "start-up: separate processes", list(timings.values()))
    result.ratios = [
        ratio("5", "taskhub --help wall time (s)", helped.median, maximum=0.8),
        ratio("5", "taskhub --help / import torch+transformers", helped.median / imports.median, maximum=0.15),
    ]
    for t in result.timings:
        t.items = 0
    result.load, result.wall_s = (load_start, load()), time.perf_counter() - started
    return result


# ---------------------------------------------------------------- 6 peak memory
#: Runs a command and prints its exit status and peak RSS. A process forked from this (large)
#: benchmark process would count the parent's pages in its high-water mark before it execs;
#: forked from this small helper, the child's ru_maxrss is the command's own.
_RSS_HELPER = """
import json, os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
stderr = proc.stderr.read()
_, status, usage = os.wait4(proc.pid, 0)
print(json.dumps({"status": os.waitstatus_to_exitcode(status), "maxrss_kib": usage.ru_maxrss, "stderr": stderr.decode()[-2000:]}))
"""


def peak_rss(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(peak RSS in MiB, wall seconds) of one run of ``argv`` in a fresh process."""
    import json

    started = time.perf_counter()
    out = subprocess.run([PYTHON, "-c", _RSS_HELPER, *argv], env=env, capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - started
    report = json.loads(out.stdout.strip().splitlines()[-1])
    if report["status"] != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {report['status']}: {report['stderr']}")
    return report["maxrss_kib"] / 1024, elapsed


def memory(s: Settings, log=print) -> RowResult:
    """Peak RSS of ``taskhub mode=predict`` (the CLI, a fresh process each) on 2,000 and
    200,000 rows of the same short texts, with a tiny model so the big file takes minutes,
    not hours: read into a dataset (Arrow, memory-mapped) and read as a stream
    (``data.streaming=true``, an IterableDataset). Each run reads the JSONL with a fresh
    datasets cache (as on a new file)."""
    started, load_start = time.perf_counter(), load()
    model = fixtures.tiny_text_classifier(log)
    sizes = (2000, s.pick(200_000, 20_000))
    variants = {"": [], "streaming ": ["data.streaming=true"]}
    peaks, walls = {}, {}
    for name, extra in variants.items():
        for n in sizes:
            data = fixtures.short_texts(n)
            scratch = tempfile.mkdtemp(prefix="memory-", dir=CACHE)
            try:
                argv = [TASKHUB, "task=text_classification", "mode=predict", f"model.name_or_path={model}",
                        f"data.predict={data}", "device=cpu", f"hydra.run.dir={scratch}/run", "results_cache=null", *extra]
                peaks[name, n], walls[name, n] = peak_rss(argv, _env(s, HF_DATASETS_CACHE=f"{scratch}/datasets"))
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            log(f"    {name}{n:>7} rows: peak RSS {peaks[name, n]:7.1f} MiB, {walls[name, n]:6.1f} s   (load {load():.1f})")
    small, big = sizes
    result = RowResult("6", f"peak RSS of taskhub mode=predict, {small:,} vs {big:,} short texts (tiny BERT), as a dataset and streamed")
    result.timings = [Timing(f"predict {name}{n:,} rows", [walls[name, n]], n, note=f"peak RSS {peaks[name, n]:.0f} MiB")
                      for name in variants for n in sizes]
    result.ratios = [ratio("6", f"peak RSS {name}{big:,} / {small:,} rows", peaks[name, big] / peaks[name, small], maximum=1.25)
                     for name in variants]
    result.facts = {"peak_rss_mib": {f"{name}{n}": round(peaks[name, n], 1) for name in variants for n in sizes}}
    result.load, result.wall_s = (load_start, load()), time.perf_counter() - started
    return result


# -------------------------------------------------------------------- 7 training
def training(s: Settings, log=print) -> RowResult:
    """taskhub train (taskhub.run) vs the plain Trainer script: same MiniLM checkpoint, same
    food_captions training file, batch size 16, 1 epoch, learning rate 5e-5, seed 42, no
    evaluation; the ratio of the Trainer's own train_samples_per_second. A full run trains on the
    first 256 captions (--quick: 64)."""
    import taskhub
    from plain_trainer import train as plain_train

    started, load_start = time.perf_counter(), load()
    model = fixtures.minilm_path()
    data = str(fixtures.food_train_file())
    limit = s.pick(256, 64)
    samples: dict[str, list[float]] = {"taskhub": [], "plain Trainer": []}

    def run_taskhub(n):
        run_dir = tempfile.mkdtemp(prefix="train-", dir=CACHE)
        try:
            result = taskhub.run(
                ["task=text_classification", "mode=train", f"model.name_or_path={model}", f"data.train={data}",
                 "train.num_train_epochs=1", "train.per_device_train_batch_size=16", "train.learning_rate=5e-5",
                 f"device={s.device}", "seed=42", "results_cache=null", *([f"data.limit={n}"] if n else []),
                 # taskhub saves a resumable checkpoint per epoch by default; the plain script
                 # saves none, and train_samples_per_second counts the save: same work on both sides.
                 "train.save_strategy=no"],
                run_dir=run_dir,
            )
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
        return result["metrics"]["train_samples_per_second"]

    def run_plain(n):
        out = tempfile.mkdtemp(prefix="plain-", dir=CACHE)
        try:
            return plain_train(model, data, out, epochs=1, batch_size=16, learning_rate=5e-5, seed=42, limit=n,
                               use_cpu=s.device == "cpu")["train_samples_per_second"]
        finally:
            shutil.rmtree(out, ignore_errors=True)

    def record(name, fn):
        def run(n):
            value = fn(n)
            if n == limit:  # not the warm-up
                samples[name].append(value)
            return value
        return run

    # Two identical training loops: the difference is small and the rounds short, so more of them.
    rounds = s.pick(max(s.repeats, 5), s.repeats)
    timings, _ = compare({"taskhub": record("taskhub", run_taskhub), "plain Trainer": record("plain Trainer", run_plain)},
                         limit, 32, limit, rounds, log)
    sps = {name: statistics.median(values) for name, values in samples.items()}
    for t in timings.values():
        t.note = f"train_samples_per_second median {sps[t.name]:.2f} (rounds: {', '.join(f'{v:.2f}' for v in samples[t.name])}); time includes load/save"
    result = RowResult("7", f"training samples/s: taskhub train vs plain Trainer ({limit} food captions, 1 epoch, bs 16)", list(timings.values()))
    result.ratios = [
        ratio("7", "taskhub / plain Trainer (train_samples_per_second)", sps["taskhub"] / sps["plain Trainer"], 0.95),
        ratio("7", "taskhub / plain Trainer (whole run, wall time)", timings["plain Trainer"].median / timings["taskhub"].median),
    ]
    result.facts = {"train_samples_per_second": sps}
    result.load, result.wall_s = (load_start, load()), time.perf_counter() - started
    return result
