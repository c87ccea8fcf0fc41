"""torchrun and accelerate launch runs (2 processes, gloo on the CPU): one set of outputs
written by the main process, the same results as one process, and a failure on any rank
fails the run. Real ``torchrun`` / ``accelerate launch`` subprocesses on tiny models."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import taskhub
from taskhub.testing import save_task_model, save_tiny_text_model
from conftest import read_jsonl, write_jsonl

TORCHRUN = str(Path(sys.executable).with_name("torchrun"))
ACCELERATE = str(Path(sys.executable).with_name("accelerate"))
LABELS = {"id2label": {0: "food", 1: "not_food"}, "label2id": {"food": 0, "not_food": 1}}
WORDS = "the a pizza salad car road tasty bread engine soup house".split()


def torchrun(*args: str, popen: bool = False, **kwargs):
    """``torchrun --nproc_per_node=2 -m taskhub <args>``, as a user launches it."""
    command = [TORCHRUN, "--standalone", "--nproc_per_node=2", "-m", "taskhub", *args]
    if popen:
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)
    return subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny base encoder and a food / not_food classifier made from it."""
    folder = tmp_path_factory.mktemp("models")
    save_tiny_text_model(folder / "base")
    save_task_model("text_classification", folder / "base", folder / "classifier", num_labels=2, **LABELS)
    return folder / "base", folder / "classifier"


def texts(n: int, seed: int = 0) -> list[dict]:
    """Rows of 1 to 40 words: shards and chunks get different length mixes."""
    rng = random.Random(seed)
    return [{"id": i, "text": " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 40)))} for i in range(n)]


def predict_args(model, data, *extra: str) -> list[str]:
    return ["task=text_classification", "mode=predict", f"model.name_or_path={model}", f"data.predict={data}", *extra]


def single_process(args: list[str], run_dir: Path) -> dict:
    return taskhub.run(args, run_dir=run_dir)


def assert_same_predictions(ours: Path, single: Path) -> None:
    """Row for row: fields and labels exact, scores within 1e-5 (batches differ)."""
    a, b = read_jsonl(ours), read_jsonl(single)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert {k: v for k, v in x.items() if k != "score"} == {k: v for k, v in y.items() if k != "score"}
        assert x["score"] == pytest.approx(y["score"], abs=1e-5)


def test_training_on_two_processes_writes_one_model_that_predicts(models, tmp_path):
    base, _ = models
    run_dir = tmp_path / "run"
    proc = ok(torchrun("task=text_classification", f"model.name_or_path={base}", "data.limit=64", "train.num_train_epochs=1", f"hydra.run.dir={run_dir}"))
    assert proc.stdout.count("taskhub text_classification train:") == 1  # the report, once
    result = json.loads((run_dir / "metrics.json").read_text())
    assert result["status"] == "ok" and 0 <= result["metrics"]["test_accuracy"] <= 1
    # The Trainer sharded the 64 rows: 2 steps of 16 per process, not 4 of 16.
    assert json.loads((run_dir / "model" / "trainer_state.json").read_text())["global_step"] == 2
    assert sorted(p.name for p in run_dir.iterdir()) == [".hydra", ".taskhub.lock", "metrics.json", "model", "taskhub.log"]
    task = taskhub.load_task("text_classification", model=str(run_dir / "model"), device="cpu")
    assert task("tasty soup")["label"] in ("food", "not_food")


def test_predict_on_two_processes_equals_one_process(models, tmp_path):
    _, classifier = models
    rows = texts(300)
    rows[40]["text"] = ""  # bad rows on both shards (150 rows each), set aside with on_error=skip
    rows[250]["text"] = None
    data = write_jsonl(tmp_path / "in.jsonl", rows)
    args = predict_args(classifier, data, "on_error=skip")
    single_process(args, tmp_path / "single")
    ok(torchrun(*args, f"hydra.run.dir={tmp_path / 'two'}"))
    assert_same_predictions(tmp_path / "two" / "predictions.jsonl", tmp_path / "single" / "predictions.jsonl")
    assert read_jsonl(tmp_path / "two" / "errors.jsonl") == read_jsonl(tmp_path / "single" / "errors.jsonl")
    assert [e["row"] for e in read_jsonl(tmp_path / "two" / "errors.jsonl")] == [41, 251]
    metrics = json.loads((tmp_path / "two" / "metrics.json").read_text())["metrics"]
    assert (metrics["predict_rows"], metrics["predict_errors"]) == (298, 2)
    assert not list((tmp_path / "two").glob(".predictions.partial*"))


def test_a_bad_row_on_rank_1_fails_the_run(models, tmp_path):
    _, classifier = models
    rows = texts(300)
    rows[250]["text"] = None  # in the second shard only
    run_dir = tmp_path / "run"
    proc = torchrun(*predict_args(classifier, write_jsonl(tmp_path / "in.jsonl", rows)), f"hydra.run.dir={run_dir}")
    assert proc.returncode != 0
    assert "row 251: missing 'text'" in proc.stderr
    assert not (run_dir / "metrics.json").exists() and not (run_dir / "predictions.jsonl").exists()


def test_killed_predict_resumes_each_shard(models, tmp_path):
    _, classifier = models
    data = write_jsonl(tmp_path / "in.jsonl", texts(600, seed=1))
    args = predict_args(classifier, data, "batch_size=1")  # chunks of 64 rows: each shard's file grows as it goes
    run_dir = tmp_path / "run"
    shards = [run_dir / f".predictions.partial.{rank}-of-2.jsonl" for rank in range(2)]
    proc = torchrun(*args, f"hydra.run.dir={run_dir}", popen=True)
    try:
        while not all(p.exists() and p.read_text().count("\n") > 1 for p in shards):
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            time.sleep(0.02)
    finally:
        for pid in [proc.pid, *descendants(proc.pid)]:  # torchrun starts each rank in a session of its own
            os.kill(pid, signal.SIGKILL)
        proc.wait()
    assert not (run_dir / "predictions.jsonl").exists()
    resumed = ok(torchrun(*args, "predict.resume=true", f"hydra.run.dir={run_dir}"))
    assert "resuming:" in resumed.stdout  # the main process's shard continued, not started over
    single_process(args, tmp_path / "single")
    assert_same_predictions(run_dir / "predictions.jsonl", tmp_path / "single" / "predictions.jsonl")
    assert not list(run_dir.glob(".predictions.partial*"))


def descendants(pid: int) -> list[int]:
    children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return [p for child in children for p in (child, *descendants(child))]


def test_evaluate_on_two_processes_equals_one_process(models, tmp_path):
    _, classifier = models
    rows = [{**row, "label": random.Random(row["id"]).choice(["food", "not_food"])} for row in texts(200, seed=2)]
    args = ["task=text_classification", "mode=evaluate", f"model.name_or_path={classifier}", f"data.test={write_jsonl(tmp_path / 'test.jsonl', rows)}"]
    single = single_process([*args, "results_cache=null"], tmp_path / "single")["metrics"]
    proc = ok(torchrun(*args, "results_cache=null", f"hydra.run.dir={tmp_path / 'two'}"))
    assert proc.stdout.count("taskhub text_classification evaluate:") == 1
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())["metrics"]
    for name in ("test_accuracy", "test_f1_macro", "test_loss"):
        assert two[name] == pytest.approx(single[name], abs=1e-5), name


def test_accelerate_launch_predict_on_two_processes_equals_one_process(models, tmp_path):
    """``accelerate launch --multi_gpu`` starts its processes through torchrun, on the CPU
    too when there is no GPU (gloo). ``--cpu --num_processes 2`` would start one process:
    accelerate spreads CPU processes only through mpirun (``--mpirun_hostfile``)."""
    _, classifier = models
    rows = texts(100, seed=3)
    rows[70]["text"] = ""  # on the second process's half
    data = write_jsonl(tmp_path / "in.jsonl", rows)
    args = predict_args(classifier, data, "on_error=skip", "device=cpu")
    single_process(args, tmp_path / "single")
    launch = [ACCELERATE, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no"]
    launch += ["--dynamo_backend", "no", "--main_process_port", "0", "--log_dir", str(tmp_path / "logs"), "--tee", "3"]
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "CUDA_VISIBLE_DEVICES": ""}  # no accelerate config of the user's; CPU processes
    ok(subprocess.run([*launch, "-m", "taskhub", *args, f"hydra.run.dir={tmp_path / 'two'}"], capture_output=True, text=True, timeout=600, env=env))
    assert sorted(p.name for p in (tmp_path / "logs").glob("*/attempt_0/*")) == ["0", "1"]  # torchrun started two processes
    assert_same_predictions(tmp_path / "two" / "predictions.jsonl", tmp_path / "single" / "predictions.jsonl")
    assert read_jsonl(tmp_path / "two" / "errors.jsonl") == read_jsonl(tmp_path / "single" / "errors.jsonl")
    assert [e["row"] for e in read_jsonl(tmp_path / "two" / "errors.jsonl")] == [71]
    metrics = json.loads((tmp_path / "two" / "metrics.json").read_text())["metrics"]
    assert (metrics["predict_rows"], metrics["predict_errors"]) == (99, 1)
