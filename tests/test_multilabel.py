"""Multi-label text classification end to end: lists of labels in, label sets out."""

from __future__ import annotations

import itertools
import random

import pytest
from conftest import write_jsonl

import taskhub

pytestmark = pytest.mark.slow

COLOURS = ["red", "green", "blue"]
ANIMALS = ["cat", "dog", "horse"]


def make_rows(seed: int, n: int) -> list[dict]:
    rng = random.Random(seed)
    combos = list(itertools.product(COLOURS + [None], ANIMALS + [None]))
    rows = []
    for _ in range(n):
        colour, animal = rng.choice([c for c in combos if c != (None, None)])
        words = [w for w in ("a", colour, animal or "balloon", rng.choice(["outside", "at home", "in the park"])) if w]
        rows.append({"text": " ".join(words), "label": [l for l in (colour, animal) if l]})
    return rows


def test_multi_label_training_predicts_label_sets(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", make_rows(0, 160))
    test = write_jsonl(tmp_path / "test.jsonl", make_rows(1, 40))
    result = taskhub.run(
        [f"data.train={train}", f"data.test={test}", "train.num_train_epochs=6", "train.learning_rate=1e-3"],
        run_dir=tmp_path / "run",
    )
    metrics = result["metrics"]
    assert metrics["test_f1_micro"] >= 0.8 and metrics["test_f1_macro"] >= 0.7
    task = taskhub.load_task("text_classification", model=result["outputs"]["model"])
    assert task.model.config.problem_type == "multi_label_classification"
    predicted = task.predict([{"text": "a blue dog in the park"}, {"text": "a red balloon at home"}])
    assert sorted(predicted[0]["label"]) == ["blue", "dog"]
    assert predicted[1]["label"] == ["red"]
    assert all(s >= 0.5 for p in predicted for s in p["score"])
    # the `evaluate` library's multilabel metrics take 0/1 label sets in the model's label order
    from sklearn.preprocessing import MultiLabelBinarizer

    samples = [{"prediction": ["blue", "dog"], "reference": ["dog"]}, {"prediction": [], "reference": ["red", "cat"]}]
    ordered = sorted(task.label2id, key=task.label2id.get)
    binarize = MultiLabelBinarizer(classes=ordered).fit([ordered])
    predictions, references = task.metric_inputs(samples)
    assert predictions == binarize.transform([s["prediction"] for s in samples]).tolist()
    assert references == binarize.transform([s["reference"] for s in samples]).tolist()
