"""The evaluator's workbench (issue 18): checkpoints that know their task (task=auto),
samples.jsonl, bootstrap intervals, paired tests, the leaderboard and its plots, and
`evaluate` library metrics, on checkpoints trained here from a tiny BERT."""

from __future__ import annotations

import json
import shutil
import statistics

import datasets
import numpy as np
import pytest
from conftest import FOOD, read_jsonl, run_cli

import taskhub
from taskhub.errors import TaskhubError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A text_classification run keeping both epochs' checkpoints (save_total_limit=null)
    and a one-epoch ner run, on slices of the bundled data."""
    from taskhub.testing import save_tiny_text_model

    root = tmp_path_factory.mktemp("runs")
    save_tiny_text_model(root / "tiny")
    common = [f"model.name_or_path={root / 'tiny'}", "train.save_strategy=epoch", "device=cpu", "results_cache=null"]
    taskhub.run(["task=text_classification", "data.limit=40", "train.num_train_epochs=2", "train.learning_rate=1e-3",
                 "train.save_total_limit=null", *common], run_dir=root / "food")  # fmt: skip
    taskhub.run(["task=ner", "data.limit=24", "train.num_train_epochs=1", *common], run_dir=root / "ner")
    return root


def evaluate(model, run_dir, *overrides):
    return taskhub.run(["mode=evaluate", f"model.name_or_path={model}", "results_cache=null", "device=cpu", *overrides], run_dir=run_dir)


def test_every_checkpoint_records_its_task_and_keeps_all_with_a_null_limit(runs):
    checkpoints = sorted((runs / "food" / "checkpoints").glob("checkpoint-*"))
    assert len(checkpoints) == 2  # train.save_total_limit=null: every epoch's checkpoint stays
    for folder in [*checkpoints, runs / "food" / "model"]:
        record = json.loads((folder / "taskhub.json").read_text())
        assert record["task"] == "text_classification" and record["options"]["top_k"] == 1 and record["step"] > 0
    seal = json.loads((checkpoints[0] / ".taskhub-complete.json").read_text())
    assert "taskhub.json" in seal["files"]  # written before the seal, so covered by it
    assert json.loads((runs / "ner" / "model" / "taskhub.json").read_text())["task"] == "ner"


def test_task_auto_reads_the_record_then_the_architecture(runs, tmp_path):
    from taskhub.provenance import task_of, with_auto_task

    food_model = str(runs / "food" / "model")
    assert with_auto_task(["mode=evaluate", f"model.name_or_path={food_model}", "task.top_k=2"]) == (
        ["mode=evaluate", f"model.name_or_path={food_model}", "task.top_k=2"],
        ["task=text_classification", "task.problem_type=null", "task.threshold=0.5", "task.max_length=null"],
    )  # resolved up front: the recorded options, but the user's top_k
    assert with_auto_task(["mode=evaluate", f"model.name_or_path={food_model},x"])[1] == ["task=auto"]  # a sweep: per job
    assert with_auto_task(["mode=train", "model.name_or_path=x"]) == (["mode=train", "model.name_or_path=x"], [])
    assert with_auto_task(["mode=predict", "task=ner", "model.name_or_path=x"])[1] == []

    plain = tmp_path / "plain"
    shutil.copytree(runs / "ner" / "model", plain)
    (plain / "taskhub.json").unlink()  # a checkpoint taskhub did not write: its architecture decides
    assert task_of(str(plain)) == ("ner", {})
    config = json.loads((plain / "config.json").read_text())
    (plain / "config.json").write_text(json.dumps({**config, "architectures": ["T5ForConditionalGeneration"]}))
    with pytest.raises(TaskhubError, match="summarization, translation all take; set task=<one of them>"):
        task_of(str(plain))
    proc = run_cli("mode=predict", f"model.name_or_path={plain}", "data.predict=x.jsonl", f"hydra.run.dir={tmp_path / 'p'}", check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "set task=<one of them>" in proc.stderr
    (plain / "config.json").write_text(json.dumps({**config, "architectures": None}))
    assert task_of(str(plain)) is None  # nothing tells: the default task runs, as without task=auto


def test_samples_reproduce_the_metrics_exactly(runs, tmp_path):
    from taskhub.manager import get_registry
    from taskhub.task import score_columns

    food = evaluate(runs / "food" / "model", tmp_path / "food", "data.limit=30")
    assert food["task"] == "text_classification"  # task=auto from taskhub.json
    samples = read_jsonl(tmp_path / "food" / "samples.jsonl")
    bundled = read_jsonl(FOOD / "test.jsonl")[:30]
    assert [s["input"]["text"] for s in samples] == [r["text"] for r in bundled]
    assert [s["reference"] for s in samples] == [r["label"] for r in bundled]
    assert statistics.fmean(s["scores"]["accuracy"] for s in samples) == food["metrics"]["test_accuracy"]

    ner = evaluate(runs / "ner" / "model", tmp_path / "ner", "data.limit=30")
    samples = read_jsonl(tmp_path / "ner" / "samples.jsonl")
    assert len(samples) == 30 and all(len(s["prediction"]) == len(s["reference"]) for s in samples)
    task = get_registry().get("ner").task_cls()
    aggregate = task.aggregate_examples(score_columns(samples))
    for name in ("f1", "precision", "recall", "accuracy"):
        assert aggregate[name] == ner["metrics"][f"test_{name}"], name
    correct, found, gold = (sum(s["stats"][k] for s in samples) for k in ("correct", "predicted", "gold"))
    assert ner["metrics"]["test_f1"] == pytest.approx(2 * correct / (found + gold))


def test_interval_contains_the_estimate_and_narrows_with_more_rows(runs, tmp_path):
    widths = []
    for limit in (20, 120):
        metrics = evaluate(runs / "food" / "model", tmp_path / str(limit), f"data.limit={limit}")["metrics"]
        low, high = metrics["test_accuracy_ci_low"], metrics["test_accuracy_ci_high"]
        assert low <= metrics["test_accuracy"] <= high and metrics["test_accuracy_stderr"] > 0
        widths.append(high - low)
    assert widths[1] < widths[0]
    again = evaluate(runs / "food" / "model", tmp_path / "again", "data.limit=20")["metrics"]
    assert again["test_accuracy_ci_low"] == evaluate(runs / "food" / "model", tmp_path / "20b", "data.limit=20")["metrics"]["test_accuracy_ci_low"]
    off = evaluate(runs / "food" / "model", tmp_path / "off", "data.limit=20", "evaluate.bootstrap=0", "evaluate.samples=false")
    assert "test_accuracy_ci_low" not in off["metrics"] and not (tmp_path / "off" / "samples.jsonl").exists()


def test_stats_on_known_data():
    from taskhub.stats import bootstrap, paired_test

    rng = np.random.default_rng(0)
    mean = lambda columns: float(columns["accuracy"].mean())  # noqa: E731
    small, large = ({"accuracy": (rng.random(n) < 0.8).astype(float)} for n in (100, 2000))
    assert np.diff(list(bootstrap(small, mean, 500, 0).values())[:2]) > np.diff(list(bootstrap(large, mean, 500, 0).values())[:2])
    same = paired_test(small, small, mean, 500, 0, binary="accuracy")
    assert same["p_value"] == 1.0 and not same["significant"] and same["test"] == "McNemar (exact)"
    better = {"accuracy": np.ones(100)}
    assert paired_test(better, small, mean, 500, 0, binary="accuracy")["significant"]
    assert paired_test(better, small, mean, 500, 0)["significant"]  # paired bootstrap agrees


LOCAL_METRIC = '''
import datasets
import evaluate


class Agreement(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="share of equal prediction and reference", citation="", inputs_description="",
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references):
        return {"agreement": sum(p == r for p, r in zip(predictions, references)) / len(references), "accuracy": 0.5}
'''


def test_evaluate_library_metric_from_a_local_module(runs, tmp_path):
    module = tmp_path / "agreement.py"
    module.write_text(LOCAL_METRIC)
    metrics = evaluate(runs / "food" / "model", tmp_path / "run", "data.limit=20", f"evaluate.metrics=[{module}]")["metrics"]
    assert metrics["test_agreement"] == metrics["test_accuracy"]  # label ids agree exactly when the prediction is right
    assert metrics["test_agreement_accuracy"] == 0.5  # a key the task already reports gets the metric's name
    with pytest.raises(TaskhubError, match="evaluate.metrics: cannot load"):
        evaluate(runs / "food" / "model", tmp_path / "bad", "data.limit=20", f"evaluate.metrics=[{tmp_path / 'missing.py'}]")


def test_mixed_glob_sweep_leaderboard_plots_and_paired_report(runs, tmp_path, capsys):
    twin = runs / "twin" / "checkpoints" / "checkpoint-1"  # the same weights in another folder
    shutil.copytree(runs / "food" / "model", twin)
    sweep_dir = tmp_path / "sweep"
    proc = run_cli("-m", "mode=evaluate", f"model.name_or_path=glob:{runs}/*/checkpoints/checkpoint-*", "data.limit=20",
                   f"hydra.sweep.dir={sweep_dir}", "results_cache=null")  # fmt: skip
    assert proc.returncode == 0
    rows = json.loads((sweep_dir / "results.json").read_text())
    assert sorted((r["task"], r["status"]) for r in rows) == [("ner", "ok")] + [("text_classification", "ok")] * 3
    assert all(r["samples"].endswith("samples.jsonl") for r in rows)
    assert sorted(r["step"] for r in rows if "food" in r["model"]) == [3, 6]
    markdown = (sweep_dir / "results.md").read_text()
    pivot = markdown.split("## ner")[0]
    assert "| model | ner (f1) | text_classification (accuracy) |" in pivot and "**" in pivot and "[" in pivot
    tables = markdown.split("## ")[2:]
    assert [t.splitlines()[0] for t in tables] == ["ner", "text_classification"]
    for table in tables:
        lines = [l for l in table.splitlines() if l.startswith("|")]
        assert all("|  |" not in l and "| |" not in l for l in lines)  # no blank cells
        assert "runtime" not in table and "per_second" not in table
    assert "test_f1_macro" in tables[1] and "test_f1_macro" not in tables[0] and "test_runtime" in rows[0]
    assert (sweep_dir / "results_text_classification.png").stat().st_size > 0  # two checkpoints of one run
    assert not (sweep_dir / "results_ner.png").exists()

    # Every text_classification row against the twin of the trained model: identical weights are no difference.
    twin_job = next(r["job"] for r in rows if r["model"] == str(twin))
    # mode=report in-process (it prints to stdout): no second CLI start-up to pay.
    capsys.readouterr()
    taskhub.run(["mode=report", f"report.dir={sweep_dir}", f"report.baseline={twin_job}", "report.sort=test_accuracy", "report.ascending=true"],
                run_dir=tmp_path / "r")  # fmt: skip
    comparisons = capsys.readouterr().out.split("## Paired comparisons")[1]
    final = next(l for l in comparisons.splitlines() if str(runs / "food" / "checkpoints" / "checkpoint-6") in l)
    assert "not significant" in final and "McNemar" in final and "| +0 |" in final
    accuracies = [r["test_accuracy"] for r in json.loads((sweep_dir / "results.json").read_text()) if r["task"] == "text_classification"]
    assert accuracies == sorted(accuracies)  # report.sort within the task, and the files written sorted

    taskhub.run(["mode=report", f"report.dir={sweep_dir}", f"report.compare={sweep_dir}"], run_dir=tmp_path / "c")
    assert "sweep beside sweep" in capsys.readouterr().out


# ------------------------------------------- perplexity tasks: per-block samples
LM_DATA = FOOD.parent / "mlm_demo"


@pytest.fixture(scope="module")
def language_models(tmp_path_factory):
    """Two masked LMs on the MiniLM vocabulary (different widths: other weights, the same
    tokenizer) and a random 2-layer GPT-2 with a byte-level BPE tokenizer trained here."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from taskhub.testing import save_task_model, save_tiny_text_model
    from taskhub.tokenizer_training import train_tokenizer

    root = tmp_path_factory.mktemp("lms")
    for name, width in (("mlm", 32), ("mlm_wide", 48)):
        save_tiny_text_model(root / f"{name}_base", intermediate_size=width)
        save_task_model("fill_mask", root / f"{name}_base", root / name)
    texts = [r["text"] for r in read_jsonl(LM_DATA / "train.jsonl")]
    special = {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "pad_token": "<pad>"}
    tokenizer = train_tokenizer(texts, special_tokens=special, byte_level=True, vocab_size=300, model_max_length=96, padding_side="left")
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=2, n_positions=96,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    GPT2LMHeadModel(config).save_pretrained(root / "gpt2")
    tokenizer.save_pretrained(root / "gpt2")
    return root


def perplexity_of(samples) -> float:
    from taskhub.scoring import perplexity_metrics
    from taskhub.task import score_columns

    return perplexity_metrics(score_columns(samples))["perplexity"]


def check_blocks(samples, rows: int) -> None:
    """Blocks numbered in order, each naming the rows it holds text of: together every row, in order."""
    assert [s["block"] for s in samples] == list(range(1, len(samples) + 1))
    spans = [s["rows"] for s in samples]
    assert spans[0][0] == 1 and spans[-1][1] == rows
    assert all(a <= b for a, b in spans) and all(nxt[0] in (prev[1], prev[1] + 1) for prev, nxt in zip(spans, spans[1:]))


def test_fill_mask_samples_are_seeded_masked_blocks_adding_up_to_the_perplexity(language_models, tmp_path):
    from transformers import TrainingArguments

    from taskhub.modes.trainer import make_trainer

    common = ["task=fill_mask", "data.limit=10", "task.block_size=32", f"data.test={LM_DATA / 'test.jsonl'}"]
    result = evaluate(language_models / "mlm", tmp_path / "a", *common, "train.per_device_eval_batch_size=64")
    metrics, samples = result["metrics"], read_jsonl(tmp_path / "a" / "samples.jsonl")
    check_blocks(samples, 10)
    for s in samples:  # the scored tokens: masked in the input, the reference and the model's best guess
        assert s["stats"]["tokens"] == len(s["reference"]) == len(s["prediction"]) == s["input"]["text"].count("[MASK]")
        if s["stats"]["tokens"]:
            assert s["scores"]["perplexity"] == pytest.approx(np.exp(s["stats"]["nll"] / s["stats"]["tokens"]))
    assert sum(s["stats"]["tokens"] for s in samples) > 0.1 * 32 * len(samples)
    # The metric is the samples' corpus perplexity exactly, and it has an interval around it.
    assert perplexity_of(samples) == metrics["test_perplexity"] == pytest.approx(np.exp(metrics["test_loss"]), rel=1e-12)
    assert metrics["test_perplexity_ci_low"] < metrics["test_perplexity"] < metrics["test_perplexity_ci_high"]

    # What it was: exp of Trainer.evaluate's loss, with the same seeded masks (one batch: a
    # mean over batches weighs each batch by its blocks, not its masked tokens).
    task = taskhub.load_task("fill_mask", model=str(language_models / "mlm"), device="cpu", block_size=32)
    texts = [r["text"] for r in read_jsonl(LM_DATA / "test.jsonl")[:10]]
    blocks = datasets.Dataset.from_dict(task.run_preprocess({"text": texts}, "t", list(range(1, 11)), with_targets=True))
    args = TrainingArguments(output_dir=str(tmp_path / "t"), per_device_eval_batch_size=64, use_cpu=True, report_to="none")
    trainer_loss = make_trainer(task, args, None, None).evaluate(blocks)["eval_loss"]
    assert metrics["test_perplexity"] == pytest.approx(np.exp(trainer_loss), rel=1e-5)

    # Another model (other weights) is scored on the same masked tokens: samples pair up.
    other = evaluate(language_models / "mlm_wide", tmp_path / "b", *common, "train.per_device_eval_batch_size=64")["metrics"]
    paired = read_jsonl(tmp_path / "b" / "samples.jsonl")
    assert [(s["input"], s["reference"]) for s in paired] == [(s["input"], s["reference"]) for s in samples]
    assert other["test_perplexity"] != metrics["test_perplexity"] and perplexity_of(paired) == other["test_perplexity"]


def test_text_generation_samples_are_blocks_or_rows_adding_up_to_the_perplexity(language_models, tmp_path):
    import torch

    gpt2 = language_models / "gpt2"
    common = ["task=text_generation", "data.limit=8", "task.block_size=48", f"data.test={LM_DATA / 'test.jsonl'}"]
    metrics = evaluate(gpt2, tmp_path / "packed", *common)["metrics"]
    samples = read_jsonl(tmp_path / "packed" / "samples.jsonl")
    check_blocks(samples, 8)
    assert samples[0]["input"]["text"].startswith(read_jsonl(LM_DATA / "test.jsonl")[0]["text"][:40])
    assert all(s["stats"]["tokens"] in (46, 47) for s in samples)  # near-equal blocks of 47-48 tokens; the first is not predicted
    assert perplexity_of(samples) == metrics["test_perplexity"] == pytest.approx(np.exp(metrics["test_loss"]), rel=1e-12)
    assert metrics["test_perplexity_ci_low"] < metrics["test_perplexity"] < metrics["test_perplexity_ci_high"]

    # What it was meant to be: the model's own loss (mean over every predicted token) on all
    # blocks at once. (Trainer.evaluate's differs for GPT-2: transformers 5.25 counts one
    # unpredicted token per block in its denominator.)
    task = taskhub.load_task("text_generation", model=str(gpt2), device="cpu", block_size=48)
    texts = [r["text"] for r in read_jsonl(LM_DATA / "test.jsonl")[:8]]
    features = task.run_preprocess({"text": texts}, "t", list(range(1, 9)), with_targets=True)
    batch = task.build_training_collator()([{k: v[i] for k, v in features.items()} for i in range(len(features["input_ids"]))])
    with torch.no_grad():
        output = task.model(**batch)
    assert metrics["test_perplexity"] == pytest.approx(float(torch.exp(output.loss)), rel=1e-5)
    # Evaluation keeps per-token log-likelihoods, not vocabulary-sized logits.
    assert task.preprocess_logits_for_metrics(output.logits, batch["labels"]).shape == batch["labels"].shape

    # Without packing each row is one example: per-row samples, in input order.
    unpacked = evaluate(gpt2, tmp_path / "rows", *common, "task.packing=false")["metrics"]
    rows = read_jsonl(tmp_path / "rows" / "samples.jsonl")
    assert [s["row"] for s in rows] == list(range(1, 9)) and [s["input"]["text"][:40] for s in rows] == [t[:40] for t in texts]
    assert all(s["stats"]["tokens"] == 47 for s in rows)  # each text cut to 48 tokens
    assert perplexity_of(rows) == unpacked["test_perplexity"]
