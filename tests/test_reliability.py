"""Reliability: bad rows skipped and accounted for, killed predict and train runs resumed."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import TASKHUB, read_jsonl, run_cli, write_jsonl

import taskhub
from taskhub.testing import save_tiny_text_model


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A tiny random food / not_food classifier saved with its head."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    base = tmp_path_factory.mktemp("base")
    save_tiny_text_model(base, num_labels=2, id2label={0: "food", 1: "not_food"}, label2id={"food": 0, "not_food": 1})
    path = tmp_path_factory.mktemp("classifier")
    AutoModelForSequenceClassification.from_pretrained(base).save_pretrained(path)
    AutoTokenizer.from_pretrained(base).save_pretrained(path)
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
    # In-process: the CLI prints the message as "taskhub: error: <message>" and exits 2
    # (tested on real subprocesses in test_bad_input.py and test_end_to_end.py).
    with pytest.raises(taskhub.TaskhubError) as err:
        taskhub.run(["task=text_classification", "mode=predict", f"model.name_or_path={classifier}", f"data.predict={data}"], run_dir=tmp_path / "r")
    assert str(err.value) == f"{data}, row 4: empty 'text'"
    assert not (tmp_path / "r" / "predictions.jsonl").exists()
    assert not (tmp_path / "r" / ".predictions.partial.jsonl").exists()  # a header alone is nothing to resume


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


def wait_for(proc: subprocess.Popen, ready, timeout: float = 300, poll: float = 0.02) -> None:
    """Wait until ``ready()`` holds; fail if the process ends first."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"the run ended before it could be stopped:\n{proc.stderr.read()[-2000:]}"
        assert time.monotonic() < deadline, "timed out waiting for the run"
        time.sleep(poll)


def kill_when(proc: subprocess.Popen, ready, timeout: float = 300, poll: float = 0.02) -> None:
    """kill -9 the process as soon as ``ready()`` holds; fail if it ends first."""
    wait_for(proc, ready, timeout, poll)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def predict_args(model, data, *extra):
    return ["task=text_classification", "mode=predict", f"model.name_or_path={model}", f"data.predict={data}", *extra]


def test_killed_predict_resumes_to_the_uninterrupted_result(classifier, tmp_path, caplog):
    rows = [{"id": i, "text": "soup " * (1 + i % 37)} for i in range(3000)]
    rows[2345] = {"id": 2345, "text": ""}
    data = write_jsonl(tmp_path / "in.jsonl", rows)
    args = predict_args(classifier, data, "on_error=skip", "batch_size=8")
    taskhub.run(args, run_dir=tmp_path / "whole")  # the reference: in-process, no CLI start-up to pay

    run_dir = tmp_path / "killed"
    partial = run_dir / ".predictions.partial.jsonl"
    proc = subprocess.Popen([TASKHUB, *args, f"hydra.run.dir={run_dir}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    kill_when(proc, lambda: partial.exists() and partial.stat().st_size > 50_000)
    written = len(partial.read_bytes().splitlines()) - 1
    assert 0 < written < 3000 and not (run_dir / "predictions.jsonl").exists()

    # The partial file is keyed by content: other bytes, weights or output options are refused, saying what changed.
    edited = write_jsonl(tmp_path / "edited.jsonl", [{**row, "text": "chair"} if i >= 128 else row for i, row in enumerate(rows)])
    retrained = tmp_path / "retrained"
    shutil.copytree(classifier, retrained)
    weights = retrained / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\x00\x00\x80\x3f")  # the last float becomes 1.0
    for overrides, change in [
        (predict_args(classifier, edited, "on_error=skip"), "the input file changed"),
        (predict_args(retrained, data, "on_error=skip"), "the model's files changed"),
        (predict_args(classifier, data, "on_error=skip", "model.dtype=bf16"), "model.dtype was fp32, now bf16"),
        (predict_args(classifier, data, "on_error=skip", "model.quantize=int8"), "model.quantize was none, now int8"),
        (predict_args(classifier, data, "on_error=skip", "task.top_k=2"), "task.top_k was 1, now 2"),
    ]:
        copy = tmp_path / f"copy-{change[:9]}"
        shutil.copytree(run_dir, copy)
        with pytest.raises(taskhub.TaskhubError, match=f"cannot resume: it was written for another input, model or task options \\({re.escape(change)}\\)"):
            taskhub.run([*overrides, "predict.resume=true"], run_dir=copy)

    # The resume in-process (what is under test is the files a killed process left, not a second process start-up).
    with caplog.at_level(logging.INFO, logger="taskhub"):
        taskhub.run([*args, "predict.resume=true"], run_dir=run_dir)
    assert "rows already predicted" in caplog.text
    for name in ("predictions.jsonl", "errors.jsonl"):
        assert (run_dir / name).read_text() == (tmp_path / "whole" / name).read_text()
    assert not partial.exists()


def test_predict_killed_while_writing_its_final_files_resumes(classifier, tmp_path):
    """Rows carry 20 kB each, so splitting the partial file into the final ones takes long
    enough to kill the run in the middle of it."""
    rows = [{"id": i, "text": "soup " * (1 + i % 7), "blob": "x" * 20_000} for i in range(300)]
    data = write_jsonl(tmp_path / "in.jsonl", rows)
    run_dir = tmp_path / "run"
    args = [*predict_args(classifier, data), f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen([TASKHUB, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    kill_when(proc, lambda: any(run_dir.glob(".predictions.jsonl.*.tmp")), poll=0.001)
    assert len((run_dir / ".predictions.partial.jsonl").read_bytes().splitlines()) == 301
    assert not (run_dir / "metrics.json").exists()

    resumed = run_cli(*args, "predict.resume=true")
    assert "300 of 300 rows already predicted" in resumed.stdout + resumed.stderr
    assert [row["id"] for row in read_jsonl(run_dir / "predictions.jsonl")] == list(range(300))
    assert json.loads((run_dir / "metrics.json").read_text())["metrics"]["predict_rows"] == 300
    assert sorted(p.name for p in run_dir.iterdir()) == [".hydra", ".taskhub.lock", "metrics.json", "predictions.jsonl", "taskhub.log"]


def test_a_second_run_into_a_busy_run_dir_is_refused(classifier, tmp_path):
    data = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "text": f"soup {i}"} for i in range(3000)])
    run_dir = tmp_path / "run"
    first = subprocess.Popen([TASKHUB, *predict_args(classifier, data), f"hydra.run.dir={run_dir}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    partial = run_dir / ".predictions.partial.jsonl"
    wait_for(first, lambda: partial.exists() and partial.stat().st_size > 0)
    os.kill(first.pid, signal.SIGSTOP)  # the first run holds the dir for as long as the second one needs
    try:
        second = run_cli(*predict_args(classifier, data, "batch_size=4"), f"hydra.run.dir={run_dir}", check=False)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    assert second.returncode == 2
    [line] = second.stderr.strip().splitlines()
    assert re.fullmatch(
        rf"taskhub: error: run dir {re.escape(str(run_dir))} is in use by another taskhub run \(pid {first.pid}, mode=predict, since [0-9: -]+\); "
        "wait for it to end or pick another hydra.run.dir",
        line,
    )
    assert first.wait(timeout=300) == 0
    assert "batch_size=4" not in (run_dir / ".hydra" / "overrides.yaml").read_text()  # Hydra never started
    assert [row["id"] for row in read_jsonl(run_dir / "predictions.jsonl")] == list(range(3000))


def test_disk_full_names_the_file_and_the_run_resumes(classifier, tmp_path, caplog):
    """A file size limit (RLIMIT_FSIZE) makes the partial file's writes fail as a full disk would."""
    import resource

    rows = [{"id": i, "text": f"soup {i}"} for i in range(2000)]
    data = write_jsonl(tmp_path / "in.jsonl", rows)
    run_dir = tmp_path / "run"
    limit = 2 * data.stat().st_size  # room for the input's dataset cache, not for the partial file

    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    args = [*predict_args(classifier, data), f"hydra.run.dir={run_dir}"]
    full = subprocess.run([TASKHUB, *args], capture_output=True, text=True, preexec_fn=small_disk, timeout=300)
    partial = run_dir / ".predictions.partial.jsonl"
    assert full.returncode == 2
    assert full.stderr.strip().splitlines()[-1] == (
        f"taskhub: error: cannot write {partial}: File too large; the rows written so far are kept: free space, then re-run with predict.resume=true"
    )
    kept = partial.read_bytes().count(b"\n") - 1  # a torn last line is not a row
    assert 0 < kept < 2000

    with caplog.at_level(logging.INFO, logger="taskhub"):  # the resume in-process: no second CLI start-up
        taskhub.run([*predict_args(classifier, data), "predict.resume=true"], run_dir=run_dir)
    assert f"{kept} of 2000 rows already predicted" in caplog.text
    whole = taskhub.run(predict_args(classifier, data), run_dir=tmp_path / "whole")
    assert (run_dir / "predictions.jsonl").read_text() == Path(whole["outputs"]["predictions"]).read_text()


def test_resume_starts_over_from_a_partial_file_cut_in_its_header(classifier, tmp_path):
    data = write_jsonl(tmp_path / "in.jsonl", [{"text": "soup"}] * 3)
    for torn in (b"", b'{"taskhub_partial": {"inp'):
        run_dir = tmp_path / f"run{len(torn)}"
        run_dir.mkdir()
        (run_dir / ".predictions.partial.jsonl").write_bytes(torn)
        result = taskhub.run([*predict_args(classifier, data), "predict.resume=true"], run_dir=run_dir)
        assert result["metrics"]["predict_rows"] == 3


def test_a_predict_that_fails_before_its_first_row_leaves_no_partial_file(classifier, tmp_path):
    data = write_jsonl(tmp_path / "in.jsonl", rows_with_bad_ones())
    with pytest.raises(taskhub.TaskhubError, match="row 4: empty 'text'"):
        taskhub.run(predict_args(classifier, data), run_dir=tmp_path / "run")
    assert not (tmp_path / "run" / ".predictions.partial.jsonl").exists()


def test_an_empty_model_name_is_refused(classifier, tmp_path):
    data = write_jsonl(tmp_path / "in.jsonl", [{"text": "soup"}])
    with pytest.raises(taskhub.TaskhubError, match="model.name_or_path is empty: name a model folder or hub id"):
        taskhub.run(predict_args("", data), run_dir=tmp_path / "run")


def test_pickle_weights_are_refused_unless_allowed_and_the_hint_converts_them(classifier, tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    pickled = tmp_path / "pickled"
    model = AutoModelForSequenceClassification.from_pretrained(classifier)
    model.config.save_pretrained(pickled)
    torch.save(model.state_dict(), pickled / "pytorch_model.bin")
    AutoTokenizer.from_pretrained(classifier).save_pretrained(pickled)
    assert (pickled / "pytorch_model.bin").exists() and not list(pickled.glob("*.safetensors"))
    data = write_jsonl(tmp_path / "in.jsonl", [{"text": "soup"}])
    with pytest.raises(taskhub.TaskhubError) as err:
        taskhub.run(predict_args(pickled, data), run_dir=tmp_path / "refused")
    message = str(err.value)
    assert message.startswith(f"model '{pickled}' has only pickle weights (pytorch_model.bin), which can run code when loaded: convert them once with python -c")
    assert message.endswith("or set model.allow_pickle=true if you trust the file") and "\n" not in message
    allowed = taskhub.run([*predict_args(pickled, data), "model.allow_pickle=true"], run_dir=tmp_path / "allowed")

    subprocess.run(["sh", "-c", message.split("convert them once with ")[1].split(", or set")[0]], check=True, env={**os.environ, "PATH": f"{Path(TASKHUB).parent}:{os.environ['PATH']}"})
    converted = taskhub.run(predict_args(pickled, data), run_dir=tmp_path / "converted")
    assert read_jsonl(converted["outputs"]["predictions"]) == read_jsonl(allowed["outputs"]["predictions"])


def test_data_root_is_checked_when_a_file_is_opened(tmp_path):
    """A path that was inside the root when the data file was read, swapped for a symlink
    to a file outside it before it is opened."""
    import numpy as np
    import soundfile
    from PIL import Image

    from taskhub.audio import read_file
    from taskhub.dataroot import confined_to
    from taskhub.errors import RowError
    from taskhub.media import load_image

    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir(), outside.mkdir()
    Image.new("RGB", (4, 4)).save(outside / "secret.png")
    soundfile.write(outside / "secret.wav", np.zeros(800, dtype="float32"), 16000)
    (root / "a.png").symlink_to(outside / "secret.png")
    (root / "a.wav").symlink_to(outside / "secret.wav")
    with confined_to(str(root)):
        with pytest.raises(RowError, match=f"resolves to {outside}/secret.png, outside data.root \\({root}\\)"):
            load_image(str(root / "a.png"), 0)
        with pytest.raises(RowError, match=f"resolves to {outside}/secret.wav, outside data.root"):
            read_file(str(root / "a.wav"), 0)
    assert load_image(str(root / "a.png"), 0).size == (4, 4)  # no root, no confinement


@pytest.mark.parametrize("case", ["under a file", "an existing file", "not writable"])
def test_run_dir_problems_are_one_line_before_hydra_starts(classifier, tmp_path, case):
    if case == "not writable" and os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    blocker = tmp_path / "file"
    blocker.write_text("a file")
    run_dir, reason = {
        "under a file": (blocker / "run", f"{blocker} is a file, not a folder"),
        "an existing file": (blocker, "it is a file, not a folder"),
        "not writable": (tmp_path / "locked" / "run", f"{tmp_path / 'locked'} is not writable"),
    }[case]
    (tmp_path / "locked").mkdir(mode=0o500)
    data = write_jsonl(tmp_path / "in.jsonl", [{"text": "soup"}])
    proc = run_cli(*predict_args(classifier, data), f"hydra.run.dir={run_dir}", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"taskhub: error: cannot write to the run dir {run_dir}: {reason}; pick another hydra.run.dir"]


def test_resume_refuses_a_partial_file_of_another_input(classifier, tmp_path):
    first = write_jsonl(tmp_path / "a.jsonl", [{"text": "soup"}] * 3)
    second = write_jsonl(tmp_path / "b.jsonl", [{"text": "bread"}] * 3)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".predictions.partial.jsonl").write_text(json.dumps({"taskhub_partial": {"data": str(first)}}) + "\n")
    with pytest.raises(taskhub.TaskhubError, match=re.escape("cannot resume: it was written for another input, model or task options (the input file changed)")):
        taskhub.run([*predict_args(classifier, second), "predict.resume=true"], run_dir=run_dir)


def test_a_named_checkpoint_cut_short_is_one_line(tmp_path):
    from taskhub.checkpoints import check_named

    (tmp_path / "trainer_state.json").write_text('{"global_step": 20, "log_hist')
    with pytest.raises(taskhub.TaskhubError, match=f"{tmp_path}/trainer_state.json is not valid JSON .*; the checkpoint was cut short$"):
        check_named(str(tmp_path))


@pytest.mark.slow
def test_killed_training_resumes_from_its_last_complete_checkpoint(classifier, tmp_path, caplog):
    rows = [{"text": f"{w} number {i}", "label": "food" if w in ("soup", "bread") else "not_food"} for i in range(100) for w in ("soup", "bread", "chair", "lamp")]
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    args = [
        "task=text_classification", f"model.name_or_path={classifier}", f"data.train={data}", f"data.test={data}",
        "train.max_steps=100", "train.save_strategy=steps", "train.save_steps=20", "train.per_device_train_batch_size=8", "train.learning_rate=3e-3",
    ]  # fmt: skip
    whole = taskhub.run(args, run_dir=tmp_path / "whole")  # the reference: in-process, no CLI start-up to pay
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([TASKHUB, *args, f"hydra.run.dir={run_dir}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    checkpoints = run_dir / "checkpoints"
    kill_when(proc, lambda: any((c / ".taskhub-complete.json").exists() for c in checkpoints.glob("checkpoint-*")) if checkpoints.exists() else False, poll=0.005)
    assert not (run_dir / "model").exists() and not (run_dir / "metrics.json").exists()
    # Newer checkpoints a kill could leave: one cut short while the Trainer wrote its
    # state, one half-deleted by rotation. Both are passed over.
    sealed = max((c for c in checkpoints.glob("checkpoint-*") if (c / ".taskhub-complete.json").exists()), key=lambda c: int(c.name.split("-")[1]))
    step = int(sealed.name.split("-")[1])
    cut = checkpoints / f"checkpoint-{step + 1}"
    shutil.copytree(sealed, cut)
    (cut / ".taskhub-complete.json").unlink()
    (cut / "trainer_state.json").write_text((cut / "trainer_state.json").read_text()[:50])
    rotated = checkpoints / f"checkpoint-{step + 2}"
    shutil.copytree(sealed, rotated)
    (rotated / "model.safetensors").unlink()

    with caplog.at_level(logging.INFO, logger="taskhub"):  # the resume in-process: no second CLI start-up
        taskhub.run([*args, "train.resume=auto"], run_dir=run_dir)
    log = caplog.text
    assert f"train.resume=auto: skipping {rotated}: model.safetensors is missing" in log
    assert f"train.resume=auto: skipping {cut}: no completion mark (cut short, or not saved by taskhub)" in log
    assert f"resuming from {sealed}" in log
    state = json.loads(sorted(checkpoints.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))[-1].joinpath("trainer_state.json").read_text())
    assert state["global_step"] == 100
    metrics = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    assert metrics["test_accuracy"] == 1.0
    expected = json.loads((tmp_path / "whole" / "metrics.json").read_text())["metrics"]["train_loss"]
    assert metrics["train_loss"] == pytest.approx(expected, abs=2e-3)  # the whole run's mean, not the resumed steps'
    assert whole["status"] == "ok"

    # A predict into the training run's dir would replace its metrics.json: refused, nothing written.
    before = (run_dir / "metrics.json").read_text()
    predict = run_cli(*predict_args(run_dir / "model", data), f"hydra.run.dir={run_dir}", check=False)
    assert predict.returncode == 2
    assert predict.stderr.strip().splitlines() == [
        f"taskhub: error: run dir {run_dir} holds the outputs of a train run, which a predict run would replace; pick another dir, e.g. hydra.run.dir={run_dir}/predict"
    ]
    assert (run_dir / "metrics.json").read_text() == before
