"""Reliability: bad rows skipped and accounted for, killed predict and train runs resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from conftest import TASKHUB, read_jsonl, run_cli, write_jsonl

import taskhub
from taskhub.testing import save_tiny_text_model


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A tiny random food / not_food classifier saved with its head."""
    base = tmp_path_factory.mktemp("base")
    save_tiny_text_model(base, num_labels=2, id2label={0: "food", 1: "not_food"}, label2id={"food": 0, "not_food": 1})
    task = taskhub.load_task("text_classification", model=str(base), device="cpu")
    path = tmp_path_factory.mktemp("classifier")
    task.model.save_pretrained(path)
    task.processor.save_pretrained(path)
    return str(path)


BAD_ROWS = {3: {"id": 3, "text": "   "}, 6: {"id": 6}, 9: {"id": 9, "text": 42}}


def rows_with_bad_ones(n: int = 12) -> list[dict]:
    return [BAD_ROWS.get(i, {"id": i, "text": f"bowl {i} of soup", "label": "food"}) for i in range(n)]


def test_predict_skip_accounts_for_every_row(classifier, tmp_path):
    data = write_jsonl(tmp_path / "in.jsonl", rows_with_bad_ones())
    result = taskhub.run(
        ["task=text_classification", "mode=predict", f"model.name_or_path={classifier}", f"data.predict={data}", "on_error=skip", "batch_size=4"],
        run_dir=tmp_path / "run",
    )
    predictions, errors = read_jsonl(result["outputs"]["predictions"]), read_jsonl(result["outputs"]["errors"])
    assert [p["id"] for p in predictions] == [i for i in range(12) if i not in BAD_ROWS]
    assert [(e["row"], e["input"]["id"], e["reason"]) for e in errors] == [
        (4, 3, "empty 'text'"),
        (7, 6, "missing 'text'"),
        (10, 9, "'text' must be a string, not int"),
    ]
    assert len(predictions) + len(errors) == 12
    assert result["metrics"]["predict_errors"] == 3
    assert not (tmp_path / "run" / ".predictions.partial.jsonl").exists()


def test_predict_raise_names_file_and_row(classifier, tmp_path):
    data = write_jsonl(tmp_path / "in.jsonl", rows_with_bad_ones())
    proc = run_cli("task=text_classification", "mode=predict", f"model.name_or_path={classifier}", f"data.predict={data}", f"hydra.run.dir={tmp_path / 'r'}", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == f"taskhub: error: {data}, row 4: empty 'text'"
    assert not (tmp_path / "r" / "predictions.jsonl").exists()


def test_evaluate_skip_scores_the_good_rows_and_lists_the_bad(classifier, tmp_path):
    rows = rows_with_bad_ones()
    rows[1]["label"] = "drink"  # a label the model does not know
    data = write_jsonl(tmp_path / "test.jsonl", rows)
    result = taskhub.run(
        ["task=text_classification", "mode=evaluate", f"model.name_or_path={classifier}", f"data.test={data}", "on_error=skip"],
        run_dir=tmp_path / "run",
    )
    errors = read_jsonl(result["outputs"]["errors"])
    assert [e["row"] for e in errors] == [2, 4, 7, 10]
    assert "label 'drink' is not known to the model" in errors[0]["reason"]
    assert result["metrics"]["test_errors"] == 4
    assert result["metrics"]["test_accuracy"] in (0.0, 1.0)  # 8 identical good rows: all right or all wrong


def kill_when(proc: subprocess.Popen, ready, timeout: float = 300) -> None:
    """kill -9 the process as soon as ``ready()`` holds; fail if it ends first."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"the run ended before it could be killed:\n{proc.stderr.read()[-2000:]}"
        assert time.monotonic() < deadline, "timed out waiting to kill the run"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def test_killed_predict_resumes_to_the_uninterrupted_result(classifier, tmp_path):
    rows = [{"id": i, "text": "soup " * (1 + i % 37)} for i in range(3000)]
    rows[2345] = {"id": 2345, "text": ""}
    data = write_jsonl(tmp_path / "in.jsonl", rows)
    args = ["task=text_classification", "mode=predict", f"model.name_or_path={classifier}", f"data.predict={data}", "on_error=skip", "batch_size=8"]
    run_cli(*args, f"hydra.run.dir={tmp_path / 'whole'}")

    run_dir = tmp_path / "killed"
    partial = run_dir / ".predictions.partial.jsonl"
    proc = subprocess.Popen([TASKHUB, *args, f"hydra.run.dir={run_dir}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    kill_when(proc, lambda: partial.exists() and partial.stat().st_size > 50_000)
    written = len(partial.read_bytes().splitlines()) - 1
    assert 0 < written < 3000 and not (run_dir / "predictions.jsonl").exists()

    proc = run_cli(*args, f"hydra.run.dir={run_dir}", "predict.resume=true")
    assert "rows already predicted" in proc.stdout + proc.stderr
    for name in ("predictions.jsonl", "errors.jsonl"):
        assert (run_dir / name).read_text() == (tmp_path / "whole" / name).read_text()


def test_resume_refuses_a_partial_file_of_another_input(classifier, tmp_path):
    first = write_jsonl(tmp_path / "a.jsonl", [{"text": "soup"}] * 3)
    second = write_jsonl(tmp_path / "b.jsonl", [{"text": "bread"}] * 3)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".predictions.partial.jsonl").write_text(json.dumps({"taskhub_partial": {"data": str(first)}}) + "\n")
    proc = run_cli("task=text_classification", "mode=predict", f"model.name_or_path={classifier}", f"data.predict={second}", "predict.resume=true", f"hydra.run.dir={run_dir}", check=False)
    assert proc.returncode == 2 and "cannot resume: it was written for another input, model or task options" in proc.stderr


@pytest.mark.slow
def test_killed_training_resumes_from_its_last_checkpoint(classifier, tmp_path):
    rows = [{"text": f"{w} number {i}", "label": "food" if w in ("soup", "bread") else "not_food"} for i in range(100) for w in ("soup", "bread", "chair", "lamp")]
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    run_dir = tmp_path / "run"
    args = [
        "task=text_classification", f"model.name_or_path={classifier}", f"data.train={data}", f"data.test={data}",
        "train.max_steps=200", "train.save_strategy=steps", "train.save_steps=20", "train.per_device_train_batch_size=8", "train.learning_rate=1e-3",
        "train.logging_steps=1000", f"hydra.run.dir={run_dir}",
    ]  # fmt: skip
    proc = subprocess.Popen([TASKHUB, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    checkpoints = run_dir / "checkpoints"
    kill_when(proc, lambda: any((c / "trainer_state.json").exists() for c in checkpoints.glob("checkpoint-*")) if checkpoints.exists() else False)
    assert not (run_dir / "model").exists() and not (run_dir / "metrics.json").exists()

    resumed = run_cli(*args, "train.resume=auto")
    log = resumed.stdout + resumed.stderr
    assert "resuming from" in log and "checkpoint-" in log
    state = json.loads(sorted(checkpoints.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))[-1].joinpath("trainer_state.json").read_text())
    assert state["global_step"] == 200
    metrics = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    assert metrics["test_accuracy"] == 1.0
    assert taskhub.load_task("text_classification", model=str(run_dir / "model"), device="cpu").predict([{"text": "soup number 7"}])[0]["label"] == "food"
