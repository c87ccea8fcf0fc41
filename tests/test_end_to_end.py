"""End to end: train -> evaluate -> predict, reloads, bad input, multirun.

The models are trained once per session (conftest's text_run / image_run) and reloaded
through taskhub.run, the CLI's overrides and runner in-process, without paying a new
Python and torch start-up each time; exit codes, one-line errors on stderr and multiruns
are checked on real `taskhub` subprocesses."""

from __future__ import annotations

import json

import pytest
from conftest import DIGITS, read_jsonl, run_cli, write_jsonl

import taskhub

pytestmark = pytest.mark.slow


def metrics_of(run_dir) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())["metrics"]


# --------------------------------------------------------------- text_classification
def test_text_training_beats_chance_and_saves_a_loadable_model(text_run, tmp_path):
    metrics = metrics_of(text_run)
    assert metrics["test_accuracy"] >= 0.8  # chance is 0.5 on the balanced test split
    model_dir = text_run / "model"
    config = json.loads((model_dir / "config.json").read_text())
    assert config["id2label"] == {"0": "food", "1": "not_food"} and config["label2id"] == {"food": 0, "not_food": 1}
    assert (model_dir / "model.safetensors").is_file() and (model_dir / "tokenizer.json").is_file()
    assert not (model_dir / "training_args.bin").exists()  # no pickles in a saved model
    card = (model_dir / "README.md").read_text()
    assert "- **Task:** `text_classification`" in card and "- **Labels (2):** food, not_food" in card
    assert f"| test_accuracy | {metrics['test_accuracy']:.4f} |" in card and "- **Train data:** train.jsonl (200 rows)" in card
    assert not (text_run / "checkpoints").exists()  # resume checkpoints go once the model is saved

    # Reloading the saved model through the CLI reproduces the training run's test metrics.
    taskhub.run(["mode=evaluate", f"model.name_or_path={model_dir}"], run_dir=tmp_path)
    assert metrics_of(tmp_path)["test_accuracy"] == pytest.approx(metrics["test_accuracy"])


def test_text_predict_keeps_input_rows_in_order_and_matches_the_pipeline(text_run, tmp_path):
    rows = [
        {"id": i, "caption": text}
        for i, text in enumerate(
            ["A stack of blueberry pancakes with syrup.", "A cyclist riding up a mountain road.", "Sushi on a board.", "An empty parking garage."]
        )
    ]
    data = write_jsonl(tmp_path / "captions.jsonl", rows)
    out = tmp_path / "run"
    taskhub.run(["mode=predict", f"model.name_or_path={text_run / 'model'}", f"data.predict={data}", "data.columns.text=caption", "task.top_k=2"], run_dir=out)
    predictions = read_jsonl(out / "predictions.jsonl")
    assert [p["id"] for p in predictions] == [0, 1, 2, 3] and [p["caption"] for p in predictions] == [r["caption"] for r in rows]

    from transformers import pipeline

    reference = pipeline("text-classification", model=str(text_run / "model"), top_k=2)([r["caption"] for r in rows])
    for ours, theirs in zip(predictions, reference):
        assert ours["label"] == [t["label"] for t in theirs]
        assert ours["score"] == pytest.approx([t["score"] for t in theirs], abs=1e-5)
    assert [p["label"][0] for p in predictions] == ["food", "not_food", "food", "not_food"]


def test_evaluate_with_a_label_the_model_does_not_know(text_run, tmp_path):
    data = write_jsonl(tmp_path / "test.jsonl", [{"text": "a pie", "label": "food"}, {"text": "a cup of tea", "label": "drink"}])
    # In-process: the CLI prints the message as "taskhub: error: <message>" and exits 2 (the test below).
    with pytest.raises(taskhub.TaskhubError) as err:
        taskhub.run(["mode=evaluate", f"model.name_or_path={text_run / 'model'}", f"data.test={data}"], run_dir=tmp_path / "r")
    assert str(err.value) == f"{data}, row 2: label 'drink' is not known to the model (known labels: food, not_food)"


def test_missing_column_and_missing_file_are_one_line_errors(tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", [{"sentence": "toast", "label": "food"}])
    proc = run_cli(f"data.train={data}", f"hydra.run.dir={tmp_path / 'a'}", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"taskhub: error: {data}: missing required column 'text' for task text_classification "
        "(columns found: sentence, label; map yours with data.columns.<name>=<your column>)"
    ]
    proc = run_cli(f"data.train={tmp_path / 'nope.csv'}", f"hydra.run.dir={tmp_path / 'b'}", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"taskhub: error: data file not found: {tmp_path / 'nope.csv'}"]


# -------------------------------------------------------------- image_classification
def test_image_training_beats_chance_and_reloads(image_run, tmp_path):
    metrics = metrics_of(image_run)
    assert metrics["test_accuracy"] >= 0.7  # ten classes: chance is 0.1
    config = json.loads((image_run / "model" / "config.json").read_text())
    assert config["model_type"] == "resnet" and len(config["id2label"]) == 10
    taskhub.run(["task=image_classification", "mode=evaluate", f"model.name_or_path={image_run / 'model'}"], run_dir=tmp_path)
    assert metrics_of(tmp_path)["test_accuracy"] == pytest.approx(metrics["test_accuracy"])


def test_image_predict_matches_the_pipeline(image_run, tmp_path):
    out = tmp_path / "run"
    taskhub.run(["task=image_classification", "mode=predict", f"model.name_or_path={image_run / 'model'}", "data.limit=40"], run_dir=out)
    predictions = read_jsonl(out / "predictions.jsonl")
    inputs = read_jsonl(DIGITS / "test.jsonl")[:40]
    assert [p["image"] for p in predictions] == [r["image"] for r in inputs]
    assert [p["input_label"] for p in predictions] == [r["label"] for r in inputs]

    from transformers import pipeline

    reference = pipeline("image-classification", model=str(image_run / "model"), top_k=1)([str(DIGITS / r["image"]) for r in inputs])
    assert [p["label"] for p in predictions] == [r[0]["label"] for r in reference]
    assert [p["score"] for p in predictions] == pytest.approx([r[0]["score"] for r in reference], abs=1e-5)
    accuracy = sum(p["label"] == p["input_label"] for p in predictions) / len(predictions)
    assert accuracy >= 0.7


def test_unreadable_image_names_file_and_row(image_run, tmp_path):
    (tmp_path / "ok.png").write_bytes((DIGITS / "images" / "0000.png").read_bytes())
    (tmp_path / "broken.png").write_bytes(b"\x89PNG but not really")
    data = write_jsonl(tmp_path / "images.jsonl", [{"image": "ok.png"}, {"image": "ok.png"}, {"image": "broken.png"}])
    # In-process: the CLI prints the message as "taskhub: error: <message>" and exits 2.
    with pytest.raises(taskhub.TaskhubError) as err:
        taskhub.run(["task=image_classification", "mode=predict", f"model.name_or_path={image_run / 'model'}", f"data.predict={data}"], run_dir=tmp_path / "r")
    assert str(err.value).startswith(f"{data}, row 3: cannot read image {tmp_path / 'broken.png'}")
    assert not (tmp_path / "r" / "predictions.jsonl").exists()  # no half-written output


# ---------------------------------------------------------------------- multirun
def test_multirun_evaluates_every_combination(text_run, image_run, tmp_path):
    models = f"{text_run / 'model'},{text_run / 'model'}"
    run_cli("-m", "mode=evaluate", "task=text_classification", f"model.name_or_path={models}", "data.limit=20", f"hydra.sweep.dir={tmp_path}")
    results = [json.loads((tmp_path / str(i) / "metrics.json").read_text()) for i in (0, 1)]
    assert [r["mode"] for r in results] == ["evaluate", "evaluate"]
    assert all(r["metrics"]["test_accuracy"] > 0.5 for r in results)


def test_multirun_reports_failed_jobs_and_continues(text_run, tmp_path):
    models = f"{tmp_path / 'missing_model'},{text_run / 'model'}"
    proc = run_cli("-m", "mode=evaluate", f"model.name_or_path={models}", "data.limit=10", f"hydra.sweep.dir={tmp_path / 's'}", check=False)
    assert proc.returncode == 1
    assert "1 of 2 job(s) failed" in proc.stderr and "missing_model" in proc.stderr
    assert (tmp_path / "s" / "1" / "metrics.json").is_file()
