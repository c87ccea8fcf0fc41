"""The Task interface carries tasks of a new shape with no core change and no Trainer
subclass: here an N-way choice task (N varying per row) written as a third-party plugin,
whose nested features the core pads, whose choice mask travels as a side input to the
model call and the loss, and whose length the engine weighs as choices x tokens."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest
from conftest import read_jsonl, write_jsonl

import taskhub
from taskhub import TaskSpec, hookimpl
from taskhub.collate import CHOICE_MASK, NestedPadding
from taskhub.config import TaskConfig
from taskhub.errors import RowError
from taskhub.manager import get_plugin_manager
from taskhub.task import Task

FOODS = "pizza soup bread salad rice cake apple cheese noodles pie".split()
THINGS = "car engine road house chair phone lamp shoe kite bus".split()


@dataclass
class ChoiceConfig(TaskConfig):
    name: str = "choice"


class Choice(Task):
    """Pick the right one of a row's choices (two to four)."""

    name = "choice"
    config_cls = ChoiceConfig
    modality = "text"
    auto_model = "AutoModelForMultipleChoice"
    input_columns = ("question", "choices")
    target_columns = ("answer",)
    prediction_fields = ("label", "score")
    main_metric = "accuracy"
    nested_features = ("input_ids", "attention_mask")
    side_inputs = (CHOICE_MASK,)
    training_defaults = {"learning_rate": 3e-3, "per_device_train_batch_size": 16}

    def preprocess(self, batch):
        features = {"input_ids": [], "attention_mask": []}
        for i, (question, choices) in enumerate(zip(batch["question"], batch["choices"])):
            if not choices:
                raise RowError(i, "'choices' is empty")
            encoded = self.processor([question] * len(choices), list(choices))
            for key in features:
                features[key].append(encoded[key])
        return features

    def encode_targets(self, batch, features):
        return {"labels": list(batch["answer"])}

    def call_model(self, model, inputs):
        outputs = super().call_model(model, inputs)
        outputs["logits"] = outputs["logits"].masked_fill(~inputs[CHOICE_MASK], -1e4)
        return outputs

    def compute_loss(self, outputs, inputs):
        import torch.nn.functional as F

        return F.cross_entropy(outputs["logits"], inputs["labels"])

    def compute_metrics(self, eval_pred):
        logits, labels = eval_pred
        return {"accuracy": float((logits.argmax(-1) == labels).mean())}

    def postprocess(self, outputs, batch, features):
        probabilities = outputs["logits"].float().softmax(-1).tolist()
        records = []
        for choices, row in zip(batch["choices"], probabilities):
            best = max(range(len(choices)), key=row.__getitem__)
            records.append({"label": choices[best], "score": row[best]})
        return records


class ChoicePlugin:
    @hookimpl
    def taskhub_register_tasks(self):
        return [TaskSpec(Choice.name, Choice, ChoiceConfig)]


@pytest.fixture(scope="module")
def tiny_text_model(tmp_path_factory):
    from taskhub.testing import save_tiny_text_model

    path = tmp_path_factory.mktemp("tiny")
    save_tiny_text_model(path)
    return path


@pytest.fixture
def choice_task():
    pm = get_plugin_manager()
    pm.register(ChoicePlugin(), name="choice-test")
    try:
        yield
    finally:
        pm.unregister(name="choice-test")


def questions(n: int, seed: int) -> list[dict]:
    """'Which can you eat?' over 2-4 choices, one of them a food, at a random place."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        count = rng.randint(2, 4)
        choices = rng.sample(THINGS, count - 1)
        answer = rng.randrange(count)
        choices.insert(answer, rng.choice(FOODS))
        rows.append({"question": "which one can you eat?", "choices": choices, "answer": answer})
    return rows


def test_nested_features_are_padded_to_rows_choices_and_tokens():
    from transformers import default_data_collator

    def pad_tokens(rows):  # what a tokenizer's padding does, for this test's plain lists
        import torch

        longest = max(len(r["input_ids"]) for r in rows)
        return {"input_ids": torch.tensor([r["input_ids"] + [0] * (longest - len(r["input_ids"])) for r in rows])}

    rows = [{"input_ids": [[1, 2], [3, 4, 5]], "labels": 1}, {"input_ids": [[6], [7], [8, 9]], "labels": 0}]
    batch = NestedPadding(pad_tokens, ["input_ids"])(rows)
    assert batch["input_ids"].tolist() == [[[1, 2, 0], [3, 4, 5], [1, 2, 0]], [[6, 0, 0], [7, 0, 0], [8, 9, 0]]]
    assert batch[CHOICE_MASK].tolist() == [[True, True, False], [True, True, True]]
    assert batch["labels"].tolist() == [1, 0]
    # only declared keys are nested: an image's rows of pixels are a list of lists too
    image = {"pixel_values": [[[0.0, 1.0], [2.0, 3.0]]], "labels": 0}
    assert NestedPadding(default_data_collator, ["input_ids"])([image])["pixel_values"].shape == (1, 1, 2, 2)


def test_length_batching_weighs_choices_times_tokens(tiny_text_model):
    task = Choice(model=taskhub.config.ModelConfig(name_or_path=str(tiny_text_model)))
    features = task.preprocess({"question": ["which?"] * 2, "choices": [["a", "b"], ["a", "b", "c", "d"]]})
    lengths = [len(ids[0]) for ids in features["input_ids"]]
    assert [task.feature_length(features, i) for i in range(2)] == [2 * lengths[0], 4 * lengths[1]]


@pytest.mark.slow
def test_a_choice_task_trains_evaluates_and_predicts_with_no_core_change(choice_task, tiny_text_model, tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", questions(320, seed=0))
    test = write_jsonl(tmp_path / "test.jsonl", questions(60, seed=1))
    result = taskhub.run(
        ["task=choice", f"model.name_or_path={tiny_text_model}", f"data.train={train}", f"data.test={test}", "train.num_train_epochs=4", "device=cpu"],
        run_dir=tmp_path / "train",
    )
    # chance is about 0.36 (one right of 2, 3 or 4 choices)
    assert result["metrics"]["test_accuracy"] >= 0.8, result["metrics"]
    rows = [{"question": "which one can you eat?", "choices": ["car", "soup"]}, {"question": "which one can you eat?", "choices": ["lamp", "bus", "shoe", "bread"]}]
    taskhub.run(
        ["task=choice", "mode=predict", f"model.name_or_path={result['outputs']['model']}", f"data.predict={write_jsonl(tmp_path / 'in.jsonl', rows)}"],
        run_dir=tmp_path / "predict",
    )
    assert [r["label"] for r in read_jsonl(tmp_path / "predict" / "predictions.jsonl")] == ["soup", "bread"]


# ------------------------------------------------ evaluation batches apart
@dataclass
class MarkedChoiceConfig(TaskConfig):
    name: str = "marked_choice"


class MarkedChoice(Choice):
    """:class:`Choice` whose training collator marks each batch, as an augmentation would
    change it, and records which batches the model sees (training or not, marked or not)."""

    name = "marked_choice"
    config_cls = MarkedChoiceConfig
    side_inputs = (CHOICE_MASK, "augmented")
    seen: list[tuple[bool, bool]] = []

    def build_training_collator(self):
        import torch

        pad = self.collator

        def marking(rows):
            return {**pad(rows), "augmented": torch.ones(len(rows), dtype=torch.bool)}

        return marking

    def build_evaluation_collator(self):
        return self.collator

    def call_model(self, model, inputs):
        MarkedChoice.seen.append((model.training, "augmented" in inputs))
        return super().call_model(model, inputs)


class MarkedChoicePlugin:
    @hookimpl
    def taskhub_register_tasks(self):
        return [TaskSpec(MarkedChoice.name, MarkedChoice, MarkedChoiceConfig)]


def test_evaluation_batches_come_from_the_evaluation_collator_not_the_training_one(tiny_text_model, tmp_path):
    pm = get_plugin_manager()
    pm.register(MarkedChoicePlugin(), name="marked-choice-test")
    MarkedChoice.seen.clear()
    try:
        rows = {split: write_jsonl(tmp_path / f"{split}.jsonl", questions(n, seed)) for split, n, seed in (("train", 32, 0), ("validation", 8, 1), ("test", 8, 2))}
        overrides = [f"data.{split}={path}" for split, path in rows.items()]
        taskhub.run(["task=marked_choice", f"model.name_or_path={tiny_text_model}", *overrides, "train.num_train_epochs=1", "device=cpu"], run_dir=tmp_path / "run")
    finally:
        pm.unregister(name="marked-choice-test")
    training = [marked for in_training, marked in MarkedChoice.seen if in_training]
    evaluation = [marked for in_training, marked in MarkedChoice.seen if not in_training]
    assert training and all(training)  # 32 rows, batches of 16: every one marked
    assert evaluation and not any(evaluation)  # validation after the epoch, then test: none marked
    default = Choice(model=taskhub.config.ModelConfig(name_or_path=str(tiny_text_model)))
    assert default.build_evaluation_collator() is default.build_training_collator()  # unless a task says otherwise
