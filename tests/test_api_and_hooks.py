"""The Python API runs what the CLI runs, and plugin hooks see training and results."""

from __future__ import annotations

import json

import pytest
from conftest import DIGITS

import taskhub
from taskhub import hookimpl
from taskhub.manager import get_plugin_manager

pytestmark = pytest.mark.slow


class Recorder:
    def __init__(self):
        self.events = []

    @hookimpl
    def taskhub_trainer_callbacks(self, task, cfg):
        from transformers import TrainerCallback

        events = self.events

        class Record(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                events.append(("train_begin", task.name, args.num_train_epochs))

        return [Record()]

    @hookimpl
    def taskhub_run_end(self, task, result):  # opts into a subset of the spec's arguments
        self.events.append(("run_end", task.name, result["mode"], result["metrics"].get("test_accuracy")))


def test_python_api_trains_evaluates_and_predicts_with_hooks(tmp_path):
    recorder = Recorder()
    pm = get_plugin_manager()
    pm.register(recorder, name="recorder")
    try:
        result = taskhub.run(
            ["task=image_classification", "data.limit=400", "train.num_train_epochs=5", "device=cpu"], run_dir=tmp_path / "train"
        )
    finally:
        pm.unregister(name="recorder")
    assert result["metrics"]["test_accuracy"] > 0.5  # ten classes
    assert json.loads((tmp_path / "train" / "metrics.json").read_text())["metrics"] == result["metrics"]
    assert recorder.events == [
        ("train_begin", "image_classification", 5),
        ("run_end", "image_classification", "train", result["metrics"]["test_accuracy"]),
    ]

    evaluated = taskhub.run(
        ["task=image_classification", "mode=evaluate", f"model.name_or_path={result['outputs']['model']}", "data.limit=400"],
        run_dir=tmp_path / "eval",
    )
    assert evaluated["metrics"]["test_accuracy"] == pytest.approx(result["metrics"]["test_accuracy"])

    task = taskhub.load_task("image_classification", model=result["outputs"]["model"], top_k=3)
    rows = [json.loads(line) for line in (DIGITS / "test.jsonl").read_text().splitlines()[:50]]
    predictions = task.predict([{"image": str(DIGITS / r["image"])} for r in rows], batch_size=7)
    assert len(predictions) == 50
    assert all(len(p["label"]) == 3 and p["score"] == sorted(p["score"], reverse=True) for p in predictions)
    top1 = sum(p["label"][0] == r["label"] for p, r in zip(predictions, rows)) / len(rows)
    assert top1 > 0.5


def test_load_task_rejects_unknown_options():
    with pytest.raises(taskhub.TaskhubError, match="top_kk"):
        taskhub.load_task("text_classification", top_kk=3)


def test_missing_local_model_is_a_clear_error(tmp_path):
    task = taskhub.load_task("text_classification", model=str(tmp_path / "no_such_model"))
    with pytest.raises(taskhub.TaskhubError, match="not found: .*no_such_model"):
        task.predict([{"text": "x"}])


class CountingMetrics:
    @hookimpl
    def taskhub_metrics(self, task, split, predictions, references):
        labels = list(references["label"])
        return {"agreement": sum(p["label"] == l for p, l in zip(predictions, labels)) / len(labels), "rows_seen": len(predictions)}


def evaluate_tiny_classifier_with(tmp_path, **plugins) -> dict:
    """``mode=evaluate`` of a tiny food/not_food classifier on 3 rows, with these plugins registered."""
    from conftest import write_jsonl

    from taskhub.testing import save_task_model, save_tiny_text_model

    save_tiny_text_model(tmp_path / "base")
    save_task_model("text_classification", tmp_path / "base", tmp_path / "tiny", id2label={0: "food", 1: "not_food"}, label2id={"food": 0, "not_food": 1})
    data = write_jsonl(tmp_path / "test.jsonl", [{"text": "soup", "label": "food"}, {"text": "a car", "label": "not_food"}, {"text": "rice", "label": "food"}])
    pm = get_plugin_manager()
    for name, plugin in plugins.items():
        pm.register(plugin, name=name)
    try:
        return taskhub.run(
            ["mode=evaluate", f"model.name_or_path={tmp_path / 'tiny'}", f"data.test={data}", "results_cache=null"], run_dir=tmp_path / "run"
        )
    finally:
        for name in plugins:
            pm.unregister(name=name)


def test_a_plugin_contributes_metrics_to_any_evaluation(tmp_path):
    metrics = evaluate_tiny_classifier_with(tmp_path, counting_metrics=CountingMetrics())["metrics"]
    assert metrics["test_rows_seen"] == 3
    assert metrics["test_agreement"] == pytest.approx(metrics["test_accuracy"])  # same predictions, two routes


class BrokenHooks:
    @hookimpl
    def taskhub_metrics(self, task, split, predictions, references):
        raise ValueError("metric exploded")

    @hookimpl
    def taskhub_run_end(self, task, result):
        raise RuntimeError("notifier down")

    @hookimpl
    def taskhub_config_searchpath(self):
        raise OSError("no such folder")


def test_a_plugin_whose_hooks_raise_is_reported_and_the_run_finishes(tmp_path, capsys):
    result = evaluate_tiny_classifier_with(tmp_path, counting_metrics=CountingMetrics(), broken_hooks=BrokenHooks())
    assert result["status"] == "ok" and result["metrics"]["test_rows_seen"] == 3  # the working plugin still counts
    err = capsys.readouterr().err
    for failure in ("taskhub_metrics failed: ValueError: metric exploded", "taskhub_run_end failed: RuntimeError: notifier down",
                    "taskhub_config_searchpath failed: OSError: no such folder"):  # fmt: skip
        assert f"plugin broken_hooks: {failure}" in err
