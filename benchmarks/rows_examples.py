"""Row 7e: taskhub training against transformers' own example scripts, at their defaults.

``run_qa.py`` pads every window to ``max_seq_length=384`` (doc stride 128) and
``run_classification.py`` every text to 128 tokens (``pad_to_max_length=True``); taskhub
pads each batch to its longest member (and qa groups windows of similar length). Both
sides train the bundled MiniLM on the same mixed-length files with the same epochs,
batch size, learning rate, warm-up and seed, each in its own subprocess with the same
intra-op threads; the figure is each Trainer's own ``train_samples_per_second`` (windows
for qa: both sides cut contexts into the same windows). Both saved models are then
scored by the same scorer, taskhub's ``mode=evaluate`` on one held-out file. taskhub with
``train.bf16=true`` runs beside them.

The scripts are not part of this repository: put ``run_qa.py``, ``trainer_qa.py``,
``utils_qa.py`` and ``run_classification.py`` from transformers' ``examples/pytorch/``
into ``benchmarks/examples/`` (see the README there). They run unmodified; the launcher
below (:func:`launch`) only makes them start offline on transformers 5 (see its docstring).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import fixtures
from bench import CACHE, DATA, PYTHON, TASKHUB, RowResult, Settings, Timing, load, ratio, read_jsonl, write_jsonl

EXAMPLES = Path(__file__).resolve().parent / "examples"
SCRIPTS = {"qa": ("run_qa.py", "trainer_qa.py", "utils_qa.py"), "text_classification": ("run_classification.py",)}
#: Bump to rebuild the cached mixed-length files after changing how they are made.
DATA_VERSION = "2"


# ---------------------------------------------------------------------- data
def qa_rows(rows: list[dict], seed: int) -> list[dict]:
    """One question per row of ``rows``, over its own context (90%: the bundled contexts
    are 74-686 tokens, mean 161), or that context joined with 1 (7%) or 2-3 (3%) other
    bundled contexts in random order (up to about 1,500 tokens: 1-5 windows of 384)."""
    rng = random.Random(seed)
    contexts = sorted({r["context"] for r in rows})
    out = []
    for i, row in enumerate(rows):
        kind = rng.random()
        extra = 0 if kind < 0.90 else 1 if kind < 0.97 else rng.randint(2, 3)
        parts = [row["context"], *rng.sample([c for c in contexts if c != row["context"]], extra)]
        rng.shuffle(parts)
        context = "\n\n".join(parts)
        offset = context.index(row["context"])
        answers = {"text": list(row["answers"]["text"]), "answer_start": [offset + s for s in row["answers"]["answer_start"]]}
        assert all(context[s : s + len(t)] == t for s, t in zip(answers["answer_start"], answers["text"]))
        out.append({"id": str(row.get("id", i)), "question": row["question"], "context": context, "answers": answers})
    return out


def classification_rows(rows: list[dict], seed: int) -> list[dict]:
    """One text per row of ``rows``: its caption alone (60%), or followed by 1-3 (25%) or
    4-11 (15%) other captions with the same label (the label stays true): 8-29 tokens
    alone, up to about 250 joined (cut to 128 by both sides)."""
    rng = random.Random(seed)
    by_label: dict[str, list[str]] = {}
    for row in rows:
        by_label.setdefault(row["label"], []).append(row["text"])
    out = []
    for row in rows:
        kind = rng.random()
        extra = 0 if kind < 0.60 else rng.randint(1, 3) if kind < 0.85 else rng.randint(4, 11)
        others = [t for t in by_label[row["label"]] if t != row["text"]]
        out.append({"text": " ".join([row["text"], *rng.sample(others, extra)]), "label": row["label"]})
    return out


def datasets_for(task: str, n: int) -> dict[str, Path]:
    """The training file (JSONL for taskhub, and the script's format) and the held-out file,
    cached under benchmarks/.cache/data."""
    folder = CACHE / "data" / f"examples_{task}_{n}_v{DATA_VERSION}"
    files = {"train": folder / "train.jsonl", "script_train": folder / "train.json", "test": folder / "test.jsonl"}
    if all(p.is_file() for p in files.values()):
        return files
    source = "qa_demo" if task == "qa" else "food_captions"
    train = read_jsonl(DATA / source / "train.jsonl")
    held_out = read_jsonl(DATA / source / "test.jsonl") + read_jsonl(DATA / source / "validation.jsonl")
    random.Random(0).shuffle(train)
    build = qa_rows if task == "qa" else classification_rows
    train_rows, test_rows = build(train[:n], seed=1), build(held_out, seed=2)
    write_jsonl(files["train"], train_rows)
    write_jsonl(files["test"], test_rows)
    if task == "qa":  # run_qa.py reads SQuAD-style JSON: {"data": [rows]}
        files["script_train"].write_text(json.dumps({"data": train_rows}, ensure_ascii=False))
    else:  # run_classification.py wants a .json (or .csv) name; JSON lines are fine
        shutil.copyfile(files["train"], files["script_train"])
    return files


def token_lengths(task: str, path: Path) -> dict[str, float]:
    """Token counts of a file's rows (question + context for qa, before windowing)."""
    tokenizer = fixtures.minilm_tokenizer()
    rows = read_jsonl(path)
    if task == "qa":
        lengths = sorted(len(tokenizer(r["question"], r["context"])["input_ids"]) for r in rows)
    else:
        lengths = sorted(len(tokenizer(r["text"])["input_ids"]) for r in rows)
    pick = lambda q: lengths[min(len(lengths) - 1, int(q * len(lengths)))]  # noqa: E731
    return {"rows": len(lengths), "mean": round(statistics.fmean(lengths), 1), "p50": pick(0.5), "p90": pick(0.9), "max": lengths[-1]}


# ------------------------------------------------------------------ launcher
def launch(script: str, argv: list[str]) -> None:
    """Run an example script as ``__main__`` (in this process), unmodified, with two
    shims: ``evaluate.load`` returns a metric that refuses to compute (the scripts load
    SQuAD / accuracy from the Hub, unreachable offline, even with ``--do_train`` only;
    the row scores every model with taskhub instead), and
    ``transformers.utils.send_example_telemetry``, gone in transformers 5, is a no-op."""
    import runpy

    import evaluate
    import transformers.utils

    class NoMetric:
        def __init__(self, name):
            self.name = name

        def compute(self, *args, **kwargs):
            raise RuntimeError(f"evaluate.load({self.name!r}) is not available offline: row 7e scores with taskhub mode=evaluate")

    evaluate.load = lambda name, *args, **kwargs: NoMetric(name)
    if not hasattr(transformers.utils, "send_example_telemetry"):
        transformers.utils.send_example_telemetry = lambda *args, **kwargs: None
    sys.argv = [script, *argv]
    sys.path.insert(0, str(Path(script).resolve().parent))  # trainer_qa, utils_qa
    runpy.run_path(script, run_name="__main__")


# --------------------------------------------------------------- competitors
SETTINGS = {  # same on both sides; qa's are taskhub's task defaults (warm-up 10% of the steps) but 1 epoch
    "qa": {"epochs": 1, "batch_size": 16, "learning_rate": 3e-4, "warmup": 0.1},
    "text_classification": {"epochs": 1, "batch_size": 16, "learning_rate": 5e-5, "warmup": 0},
}


def _env(s: Settings) -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": str(s.threads),
            "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(Path(__file__).resolve().parent)}


def _check(proc: subprocess.CompletedProcess, what: str) -> None:
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-15:]
        raise RuntimeError(f"row 7e: {what} failed (exit {proc.returncode}):\n" + "\n".join(tail))


def train_script(task: str, files: dict[str, Path], out: Path, s: Settings) -> tuple[float, int]:
    """The example script at its defaults (static padding): its train_samples_per_second
    and the rows it trained on (qa: windows)."""
    cfg = SETTINGS[task]
    script = EXAMPLES / SCRIPTS[task][0]
    args = ["--model_name_or_path", fixtures.minilm_path(), "--train_file", str(files["script_train"]), "--do_train",
            "--num_train_epochs", str(cfg["epochs"]), "--per_device_train_batch_size", str(cfg["batch_size"]),
            "--learning_rate", str(cfg["learning_rate"]), "--warmup_steps", str(cfg["warmup"]), "--seed", "42",
            "--output_dir", str(out), "--save_strategy", "no", "--report_to", "none", "--use_cpu", "true"]
    if task == "text_classification":  # the script asks for a validation file even when it does not evaluate
        args += ["--validation_file", str(files["script_train"]), "--text_column_names", "text"]
    launcher = f"import rows_examples, sys; rows_examples.launch({str(script)!r}, sys.argv[1:])"
    proc = subprocess.run([PYTHON, "-c", launcher, *args], capture_output=True, text=True, env=_env(s))
    _check(proc, f"{script.name}")
    results = json.loads((out / "train_results.json").read_text())
    return results["train_samples_per_second"], results["train_samples"]


def train_taskhub(task: str, files: dict[str, Path], run_dir: Path, s: Settings, bf16: bool = False) -> float:
    """taskhub train at the task's defaults but the shared settings; its train_samples_per_second."""
    cfg = SETTINGS[task]
    overrides = [f"task={task}", "mode=train", f"model.name_or_path={fixtures.minilm_path()}", f"data.train={files['train']}",
                 f"train.num_train_epochs={cfg['epochs']}", f"train.per_device_train_batch_size={cfg['batch_size']}",
                 f"train.learning_rate={cfg['learning_rate']}", f"train.warmup_steps={cfg['warmup']}", "seed=42", "device=cpu",
                 # the script saves no checkpoint during training either (only the final model, as taskhub does)
                 "train.save_strategy=no", "results_cache=null", f"hydra.run.dir={run_dir}", *(["train.bf16=true"] if bf16 else [])]
    proc = subprocess.run([TASKHUB, *overrides], capture_output=True, text=True, env=_env(s))
    _check(proc, f"taskhub {task} train")
    return json.loads((run_dir / "metrics.json").read_text())["metrics"]["train_samples_per_second"]


def score(task: str, model: Path, test: Path, run_dir: Path, s: Settings) -> dict[str, float]:
    """The same scorer for every model: taskhub mode=evaluate on the held-out file."""
    overrides = [f"task={task}", "mode=evaluate", f"model.name_or_path={model}", f"data.test={test}", "device=cpu",
                 "results_cache=null", f"hydra.run.dir={run_dir}"]
    proc = subprocess.run([TASKHUB, *overrides], capture_output=True, text=True, env=_env(s))
    _check(proc, f"taskhub {task} evaluate of {model}")
    metrics = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    names = ("test_f1", "test_exact_match") if task == "qa" else ("test_accuracy",)
    return {name: metrics[name] for name in names}


# ----------------------------------------------------------------------- row
def examples(s: Settings, log=print) -> list[RowResult]:
    missing = [name for task in SCRIPTS for name in SCRIPTS[task] if not (EXAMPLES / name).is_file()]
    if missing:  # a full run goes on without this row
        log(f"  row 7e skipped: {', '.join(missing)} missing from {EXAMPLES} (see the README there)")
        return []
    return [_task_row(task, s, log) for task in SCRIPTS]


def _task_row(task: str, s: Settings, log) -> RowResult:
    started, load_start = time.perf_counter(), load()
    n = s.pick(128, 32) if task == "qa" else s.pick(256, 64)
    files = datasets_for(task, n)
    script = SCRIPTS[task][0]
    names = {f"{script} (static padding)": "script", "taskhub": "taskhub", "taskhub train.bf16=true": "bf16"}
    per_second: dict[str, list[float]] = {name: [] for name in names}
    timings = {name: Timing(name, items=0) for name in names}
    last_model: dict[str, Path] = {}
    work = Path(tempfile.mkdtemp(prefix="examples-", dir=CACHE))
    try:
        rounds = s.repeats if not s.quick else 1
        order = list(names)
        for round_ in range(rounds):
            shift = round_ % len(order)
            for name in order[shift:] + order[:shift]:  # rotating, as bench.compare does
                out = work / f"{names[name]}-{round_}"
                began = time.perf_counter()
                if names[name] == "script":
                    value, trained_rows = train_script(task, files, out, s)
                    model = out
                else:
                    value = train_taskhub(task, files, out, s, bf16=names[name] == "bf16")
                    model = out / "model"
                timings[name].seconds.append(time.perf_counter() - began)
                per_second[name].append(value)
                previous = last_model.get(name)
                if previous is not None:
                    shutil.rmtree(previous.parent if previous.name == "model" else previous, ignore_errors=True)
                last_model[name] = model
                log(f"    {name:<36} round {round_ + 1}/{rounds}: {value:8.2f} samples/s   (load {load():.1f})")
        scores = {name: score(task, last_model[name], files["test"], work / f"score-{names[name]}", s) for name in names}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    median = {name: statistics.median(values) for name, values in per_second.items()}
    main = "test_f1" if task == "qa" else "test_accuracy"
    for name, t in timings.items():
        shown = ", ".join(f"{k.removeprefix('test_')} {v:.3f}" for k, v in scores[name].items())
        t.note = f"train_samples_per_second median {median[name]:.2f} [{', '.join(f'{v:.2f}' for v in per_second[name])}]; {shown}; time is the whole command"
    script_name, bf16_name = f"{script} (static padding)", "taskhub train.bf16=true"
    what = f"questions, {trained_rows} windows" if task == "qa" else "texts"
    result = RowResult("7e", f"{task} training vs transformers' {script} at its defaults ({n} mixed-length {what}, 1 epoch, bs 16)",
                       list(timings.values()))
    result.ratios = [
        ratio("7e", f"{task}: taskhub / {script} (train samples/s)", median["taskhub"] / median[script_name], 1.5),
        ratio("7e", f"{task}: taskhub bf16 / fp32 (train samples/s)", median[bf16_name] / median["taskhub"]),
        ratio("7e", f"{task}: {main.removeprefix('test_')} taskhub - {script}", scores["taskhub"][main] - scores[script_name][main],
              note="held-out, same scorer"),
        ratio("7e", f"{task}: {main.removeprefix('test_')} taskhub bf16 - fp32", scores[bf16_name][main] - scores["taskhub"][main]),
    ]
    result.facts = {"train_samples_per_second": median, "held_out": scores, "settings": SETTINGS[task],
                    "train_tokens": token_lengths(task, files["train"]), "held_out_tokens": token_lengths(task, files["test"]),
                    "files": {k: str(v) for k, v in files.items()}}
    result.load, result.wall_s = (load_start, load()), time.perf_counter() - started
    return result


if __name__ == "__main__":  # python benchmarks/rows_examples.py SCRIPT ARGS...: run one example script as the row does
    launch(sys.argv[1], sys.argv[2:])
