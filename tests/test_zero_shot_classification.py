"""zero_shot_classification: equal to the transformers pipeline, its single / multi-label
formulas on other label layouts, per-row candidates, bad input, and a tiny train -> evaluate
-> predict (NLI pairs to train on, candidate-label choices to evaluate)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import read_jsonl, write_jsonl

import taskhub
from taskhub import TaskhubError
from taskhub.errors import BadRowError

MNLI = ["entailment", "neutral", "contradiction"]
TEXTS = [
    "A bowl of tomato soup with basil on a wooden table.",
    "A golden retriever running along the beach after a red ball in the evening sun.",
    "Rain.",
]
CANDIDATES = ["food", "animal", "sports", "travel plans for the summer", "weather"]


@pytest.fixture(scope="module")
def nli_model(tmp_path_factory):
    """A tiny 3-way NLI classifier with random weights: initialised wide (0.3) so that the
    candidates' scores differ by far more than float rounding (the order is then defined)."""
    from taskhub.testing import save_task_model, save_tiny_text_model

    root = tmp_path_factory.mktemp("zero_shot")
    save_tiny_text_model(root / "base", initializer_range=0.3)
    save_task_model("zero_shot_classification", root / "base", root / "mnli", num_labels=3,
                    id2label=dict(enumerate(MNLI)), label2id={n: i for i, n in enumerate(MNLI)})  # fmt: skip
    return root / "mnli"


def relabelled(model: Path, folder: Path, names: list[str]) -> Path:
    """The same weights with other label names (which logit is entailment changes)."""
    shutil.copytree(model, folder)
    config = json.loads((folder / "config.json").read_text())
    config["id2label"] = {str(i): name for i, name in enumerate(names)}
    config["label2id"] = {name: i for i, name in enumerate(names)}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "taskhub.json").unlink(missing_ok=True)
    return folder


def reference_scores(model_dir: Path, text: str, candidates: list[str], entailment: int, contradiction: int, multi: bool):
    """The zero-shot formulas on logits computed pair by pair with torch, independently of taskhub."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    with torch.no_grad():
        logits = torch.cat([model(**tokenizer(text, f"This example is {c}.", return_tensors="pt")).logits for c in candidates])
    if multi or len(candidates) == 1:
        scores = logits[:, [contradiction, entailment]].softmax(-1)[:, 1]
    else:
        scores = logits[:, entailment].softmax(-1)
    return {c: float(s) for c, s in zip(candidates, scores)}


def test_predictions_equal_the_transformers_pipeline(nli_model):
    from transformers import pipeline

    pipe = pipeline("zero-shot-classification", model=str(nli_model), tokenizer=str(nli_model), device="cpu")
    task = taskhub.load_task("zero_shot_classification", model=str(nli_model), device="cpu")
    cases = [(CANDIDATES, False), (CANDIDATES, True), (["weather"], False), ("food, animal , sports", False)]
    for candidates, multi in cases:
        ours = task.predict(TEXTS, batch_size=4, candidate_labels=candidates, multi_label=multi)  # pairs batched by length
        for text, prediction in zip(TEXTS, ours):
            theirs = pipe(text, candidate_labels=candidates, multi_label=multi)
            assert prediction["sequence"] == theirs["sequence"] == text
            assert prediction["labels"] == theirs["labels"], (candidates, multi)
            assert prediction["scores"] == pytest.approx(theirs["scores"], abs=1e-5)
    hypothesis = "The text is about {}!"
    ours = taskhub.load_task("zero_shot_classification", model=str(nli_model), device="cpu", hypothesis_template=hypothesis)
    theirs = pipe(TEXTS[1], candidate_labels=CANDIDATES, hypothesis_template=hypothesis)
    assert ours(TEXTS[1], candidate_labels=CANDIDATES)["labels"] == theirs["labels"]


def test_single_label_sums_to_one_multi_label_scores_each_candidate_on_other_layouts(nli_model, tmp_path):
    layouts = {  # label names -> (entailment, contradiction) logits the formulas must use
        "mnli_reversed": (["contradiction", "neutral", "entailment"], (2, 0)),
        "contradiction_named_last": (["neutral", "Entailment", "CONTRADICTION"], (1, 2)),  # the pipeline would take neutral
        "two_way": (["not_entailment", "entailment", "other"], (1, 0)),  # no "contra" label: the pipeline's rule
    }
    for name, (names, (entailment, contradiction)) in layouts.items():
        model = relabelled(nli_model, tmp_path / name, names)
        task = taskhub.load_task("zero_shot_classification", model=str(model), device="cpu")
        for multi in (False, True):
            prediction = task(TEXTS[0], candidate_labels=CANDIDATES, multi_label=multi)
            expected = reference_scores(model, TEXTS[0], CANDIDATES, entailment, contradiction, multi)
            assert dict(zip(prediction["labels"], prediction["scores"])) == pytest.approx(expected, abs=1e-5), (name, multi)
            assert prediction["scores"] == sorted(prediction["scores"], reverse=True)
            assert (sum(prediction["scores"]) == pytest.approx(1.0)) is not multi  # independent scores do not sum to 1 here
    no_entailment = relabelled(nli_model, tmp_path / "no_entailment", ["yes", "no", "maybe"])
    task = taskhub.load_task("zero_shot_classification", model=str(no_entailment), device="cpu")
    with pytest.raises(TaskhubError, match=r": the model config has no entailment label \(labels: yes, no, maybe\); "):
        task(TEXTS[0], candidate_labels=CANDIDATES)


def test_candidates_per_row_override_the_run_option(nli_model):
    task = taskhub.load_task("zero_shot_classification", model=str(nli_model), device="cpu", candidate_labels=["food", "animal"])
    rows = [
        {"text": TEXTS[0]},
        {"text": TEXTS[1], "candidate_labels": ["dog", "cat", "bird"]},
        {"text": TEXTS[2], "candidate_labels": "sunny, rainy"},
        {"text": TEXTS[0], "candidate_labels": None},
        {"text": TEXTS[0], "hypothesis": "It is food."},  # an NLI pair: the model's own verdict
    ]
    predictions = task.predict(rows, batch_size=2)
    assert [sorted(p["labels"]) for p in predictions] == [
        ["animal", "food"], ["bird", "cat", "dog"], ["rainy", "sunny"], ["animal", "food"], sorted(MNLI)
    ]  # fmt: skip
    alone = taskhub.load_task("zero_shot_classification", model=str(nli_model), device="cpu")
    assert predictions[1]["scores"] == pytest.approx(alone(TEXTS[1], candidate_labels=["dog", "cat", "bird"])["scores"], abs=1e-6)
    assert sum(predictions[4]["scores"]) == pytest.approx(1.0)


def test_bad_input_is_one_line_naming_the_file_and_row_or_the_option(nli_model, tmp_path):
    common = ["task=zero_shot_classification", f"model.name_or_path={nli_model}", "device=cpu"]
    with pytest.raises(TaskhubError, match=r"^task\.hypothesis_template='This example is\.' has no \{\} for the label"):
        taskhub.run([*common, "mode=predict", "task.hypothesis_template=This example is."], run_dir=tmp_path / "template")
    with pytest.raises(TaskhubError, match=r"^task\.candidate_labels is empty"):
        taskhub.load_task("zero_shot_classification", model=str(nli_model), candidate_labels=[])
    with pytest.raises(TaskhubError, match=r"hypothesis_template='\{label\}': cannot put a label into it"):
        taskhub.load_task("zero_shot_classification", model=str(nli_model), hypothesis_template="{label}")

    rows = write_jsonl(tmp_path / "rows.jsonl", [
        {"text": "fine", "candidate_labels": ["a", "b"]},
        {"text": "no labels here", "candidate_labels": []},
    ])  # fmt: skip
    with pytest.raises(BadRowError) as err:
        taskhub.run([*common, "mode=predict", f"data.predict={rows}"], run_dir=tmp_path / "empty")
    assert str(err.value) == f"{rows}, row 2: candidate_labels is empty: give at least one label"
    assert "\n" not in str(err.value)

    none = write_jsonl(tmp_path / "none.jsonl", [{"text": "which one?"}])
    with pytest.raises(BadRowError, match=r"none\.jsonl, row 1: no candidate labels: .* task\.candidate_labels="):
        taskhub.run([*common, "mode=predict", f"data.predict={none}"], run_dir=tmp_path / "none")

    wrong = write_jsonl(tmp_path / "wrong.jsonl", [
        {"text": "a soup", "candidate_labels": ["food", "car"], "label": "food"},
        {"text": "a cat", "candidate_labels": ["food", "car"], "label": "animal"},
    ])  # fmt: skip
    with pytest.raises(BadRowError) as err:
        taskhub.run([*common, "mode=evaluate", f"data.test={wrong}", "results_cache=null"], run_dir=tmp_path / "wrong")
    assert str(err.value) == f"{wrong}, row 2: label 'animal' is not among the row's candidate labels (food, car)"

    both = write_jsonl(tmp_path / "both.jsonl", [{"text": "x", "hypothesis": "It is x.", "candidate_labels": ["x"]}])
    with pytest.raises(BadRowError, match=r"both\.jsonl, row 1: has both a hypothesis .* and candidate_labels"):
        taskhub.run([*common, "mode=predict", f"data.predict={both}"], run_dir=tmp_path / "both")


def nli_rows(pairs):
    return [{"text": text, "hypothesis": f"This example is {label}.", "label": nli} for text, label, nli in pairs]


def test_tiny_train_on_nli_pairs_then_evaluate_choices(tmp_path):
    from sklearn.metrics import f1_score

    from taskhub.testing import save_tiny_text_model

    save_tiny_text_model(tmp_path / "tiny")
    texts = {"food": ["a bowl of soup", "fresh bread", "a slice of cake"], "animal": ["a dog barking", "a cat asleep", "a horse running"]}
    pairs = [(t, own, "entailment") for own, ts in texts.items() for t in ts]
    pairs += [(t, other, "contradiction") for own, ts in texts.items() for t in ts for other in texts if other != own]
    train = write_jsonl(tmp_path / "train.jsonl", nli_rows(pairs))
    choices = [{"text": t, "candidate_labels": ["food", "animal", "car"], "label": own} for own, ts in texts.items() for t in ts]
    test = write_jsonl(tmp_path / "test.jsonl", choices)
    common = ["task=zero_shot_classification", "device=cpu", "train.num_train_epochs=1", "train.per_device_train_batch_size=4"]
    trained = taskhub.run(
        [*common, f"model.name_or_path={tmp_path / 'tiny'}", f"data.train={train}", f"data.validation={train}", f"data.test={test}"],
        run_dir=tmp_path / "train",
    )
    metrics = trained["metrics"]
    assert {"validation_accuracy", "validation_f1_macro", "test_accuracy", "test_f1_macro"} <= set(metrics)
    model = trained["outputs"]["model"]
    config = json.loads((Path(model) / "config.json").read_text())
    assert sorted(config["label2id"]) == ["contradiction", "entailment"]
    assert json.loads((Path(model) / "taskhub.json").read_text())["task"] == "zero_shot_classification"

    evaluated = taskhub.run([*common, "mode=evaluate", f"model.name_or_path={model}", f"data.test={test}", "results_cache=null"], run_dir=tmp_path / "eval")
    assert evaluated["metrics"]["test_accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert evaluated["metrics"]["test_f1_macro"] == pytest.approx(metrics["test_f1_macro"])
    samples = read_jsonl(tmp_path / "eval" / "samples.jsonl")
    assert len(samples) == len(choices) and {s["reference"] for s in samples} == {"food", "animal"}
    assert all(s["prediction"] in ("food", "animal", "car") for s in samples)
    expected_f1 = f1_score([s["reference"] for s in samples], [s["prediction"] for s in samples], average="macro", zero_division=0)
    assert evaluated["metrics"]["test_f1_macro"] == pytest.approx(expected_f1)
    assert evaluated["metrics"]["test_accuracy_ci_low"] <= evaluated["metrics"]["test_accuracy"] <= evaluated["metrics"]["test_accuracy_ci_high"]

    predicted = taskhub.run(["mode=predict", f"model.name_or_path={model}", f"data.predict={test}", "device=cpu"], run_dir=tmp_path / "predict")  # task=auto
    rows = read_jsonl(predicted["outputs"]["predictions"])
    assert [r["sequence"] for r in rows] == [c["text"] for c in choices]
    assert all(sorted(r["labels"]) == ["animal", "car", "food"] and len(r["scores"]) == 3 for r in rows)

    mixed = write_jsonl(tmp_path / "mixed.jsonl", [*nli_rows(pairs[:2]), choices[0]])
    with pytest.raises(BadRowError, match=r"mixed\.jsonl, row 3: no hypothesis: the train split holds NLI pairs"):
        taskhub.run([*common, f"model.name_or_path={tmp_path / 'tiny'}", f"data.train={mixed}"], run_dir=tmp_path / "mixed")


def test_task_auto_keeps_an_nli_checkpoint_a_text_classifier_and_says_how_to_zero_shot(nli_model, tmp_path, caplog):
    """An NLI checkpoint without taskhub.json classifies text pairs (NLI itself) as well as
    candidate labels: task=auto cannot tell which from the checkpoint, so it keeps the
    architecture's task and names the other."""
    from taskhub.provenance import task_of

    plain = relabelled(nli_model, tmp_path / "mnli", [name.upper() for name in MNLI])
    with caplog.at_level("WARNING", logger="taskhub"):
        assert task_of(str(plain)) == ("text_classification", {})
    assert "is an NLI classifier (labels ENTAILMENT, NEUTRAL, CONTRADICTION)" in caplog.text
    assert "set task=zero_shot_classification" in caplog.text
    caplog.clear()
    other = relabelled(nli_model, tmp_path / "sentiment", ["negative", "neutral", "positive"])
    with caplog.at_level("WARNING", logger="taskhub"):
        assert task_of(str(other)) == ("text_classification", {})
    assert "NLI" not in caplog.text
