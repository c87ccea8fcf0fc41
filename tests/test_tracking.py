"""Tracking (train.report_to, logs kept, per-epoch history), early stopping, progress bars,
the Optuna search, and the hub-ready model folder (card, mode=push) on a tiny model."""

from __future__ import annotations

import json

import pytest

import taskhub
from taskhub.errors import TaskhubError
from taskhub.testing import save_tiny_text_model
from conftest import FOOD, run_cli

pytestmark = pytest.mark.slow
DATA = [f"data.train={FOOD / 'train.jsonl'}", f"data.validation={FOOD / 'validation.jsonl'}", f"data.test={FOOD / 'test.jsonl'}", "data.limit=64", "device=cpu"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny") / "model"
    save_tiny_text_model(path)
    return path


@pytest.fixture(scope="module")
def tracked(tiny, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("tracked")
    result = taskhub.run(["task=text_classification", f"model.name_or_path={tiny}", *DATA, "train.num_train_epochs=3", "train.learning_rate=1e-3",
                          "train.report_to=[tensorboard,mlflow]"], run_dir=run_dir)  # fmt: skip
    return run_dir, result


def test_tensorboard_and_mlflow_logs_are_kept_with_the_loss_curve(tracked, monkeypatch):
    run_dir, result = tracked
    history = result["history"]
    assert [row["epoch"] for row in history] == [1.0, 2.0, 3.0] and all("loss" in r and "validation_accuracy" in r for r in history)
    assert json.loads((run_dir / "metrics.json").read_text())["history"] == history
    assert not (run_dir / "checkpoints").exists()
    state = json.loads((run_dir / "model" / "trainer_state.json").read_text())
    losses = [row["loss"] for row in history]
    assert [e["loss"] for e in state["log_history"] if "loss" in e] == pytest.approx(losses)

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(next((run_dir / "logs" / "tensorboard").rglob("events.out.tfevents.*")).parent))
    events.Reload()
    assert [e.value for e in events.Scalars("train/loss")] == pytest.approx(losses, rel=1e-5)

    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # mlflow 3 keeps file stores behind this switch

    client = MlflowClient(tracking_uri=(run_dir / "logs" / "mlruns").as_uri())
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    curve = [m.value for r in runs for m in sorted(client.get_metric_history(r.info.run_id, "loss"), key=lambda m: m.step)]
    assert curve == pytest.approx(losses, rel=1e-5)


def test_model_card_is_hub_ready_and_push_uploads_that_folder_or_refuses_offline(tracked, tmp_path):
    import yaml

    from taskhub.modes.push import upload_files

    run_dir, _ = tracked
    model = run_dir / "model"
    card = (model / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["pipeline_tag"] == "text-classification" and meta["library_name"] == "transformers"
    index = meta["model-index"][0]["results"]
    assert {r["dataset"]["split"] for r in index} == {"test", "validation"} and any(m["type"] == "accuracy" for r in index for m in r["metrics"])
    assert str(run_dir) not in card and str(FOOD) not in card and "(64 rows)" in card and "data.limit" in card
    example = card.split("```python")[1].split("```")[0]
    first_held_out = json.loads((FOOD / "validation.jsonl").read_text().splitlines()[0])["text"]
    assert repr({"text": first_held_out}) in example
    assert {"README.md", "config.json", "model.safetensors", "tokenizer.json", "trainer_state.json"} <= set(upload_files(str(model)))
    proc = run_cli("mode=push", f"model.name_or_path={model}", "push.repo_id=me/food", f"hydra.run.dir={tmp_path / 'push'}", check=False)
    assert proc.returncode != 0 and proc.stderr.strip() == f"taskhub: error: mode=push: the run is offline (HF_HUB_OFFLINE=1); unset it to upload {model} to me/food"


def test_early_stopping_stops_when_the_main_metric_stops_improving(tiny, tmp_path):
    result = taskhub.run(["task=text_classification", f"model.name_or_path={tiny}", *DATA, "train.num_train_epochs=6", "train.learning_rate=1e-12",
                          "train.early_stopping_patience=1"], run_dir=tmp_path)  # fmt: skip
    assert [row["epoch"] for row in result["history"]] == [1.0, 2.0]


@pytest.mark.parametrize(("tracker", "message"), [("wandb", "pip install wandb"), ("nosuch", "not a tracker transformers knows")])
def test_missing_or_unknown_tracker_is_one_line(tiny, tmp_path, tracker, message):
    with pytest.raises(TaskhubError, match=message):
        taskhub.run(["task=text_classification", f"model.name_or_path={tiny}", *DATA, f"train.report_to={tracker}"], run_dir=tmp_path)


def test_predict_progress_bar_on_request_only(tracked, tmp_path, capsys):
    """In-process (the bar goes to sys.stderr, captured here and not a terminal), sparing two CLI start-ups."""
    model = tracked[0] / "model"
    common = ["task=text_classification", "mode=predict", f"model.name_or_path={model}", f"data.predict={FOOD / 'test.jsonl'}", "device=cpu"]
    capsys.readouterr()
    taskhub.run([*common, "progress=true"], run_dir=tmp_path / "a")
    shown = capsys.readouterr().err
    assert "predict: 100%" in shown and "100/100" in shown and "rows/s" in shown
    taskhub.run(common, run_dir=tmp_path / "b")
    assert "rows/s" not in capsys.readouterr().err  # stderr is not a terminal here


def test_optuna_search_runs_trials_and_tabulates_their_values_and_the_best(tiny, tmp_path):
    import yaml

    run_cli("-m", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=3", "hydra.sweeper.sampler.seed=0", "task=text_classification",
            f"model.name_or_path={tiny}", *DATA, "train.num_train_epochs=5", "train.learning_rate=tag(log, interval(1e-4, 3e-1))",
            f"hydra.sweep.dir={tmp_path}")  # fmt: skip
    rows = json.loads((tmp_path / "results.json").read_text())
    assert len(rows) == 3 and all(r["status"] == "ok" for r in rows)
    rates = [float(r["train.learning_rate"]) for r in rows]
    assert len(set(rates)) == 3 and all(1e-4 <= v <= 3e-1 for v in rates)
    # The table marks the trial(s) with the highest validation accuracy (the objective,
    # maximised), and the first of them is the one the sweeper reports as its best.
    scores = [r["validation_accuracy"] for r in rows]
    assert len(set(scores)) > 1  # the trials differ (5 epochs: the highest rate learns, the others do not), so the mark picks one
    assert [r["best"] for r in rows] == [score == max(scores) for score in scores]
    optimum = yaml.safe_load((tmp_path / "optimization_results.yaml").read_text())
    first = next(r for r in rows if r["best"])
    assert optimum["best_value"] == pytest.approx(max(scores))
    assert optimum["best_params"]["train.learning_rate"] == pytest.approx(float(first["train.learning_rate"]))
    table = (tmp_path / "results.md").read_text().split("## text_classification")[1]
    marked = [line.split("|")[1].strip() for line in table.splitlines() if "(best)" in line]
    assert marked == [f"**{r['job']} (best)**" for r in rows if r["best"]]
    assert f"by validation_accuracy (higher is better): {max(scores):.4g}" in table
    assert "best" in (tmp_path / "results.csv").read_text().splitlines()[0].split(",")
