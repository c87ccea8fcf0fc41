"""Training batches rows of similar token length together by default (dynamic padding then
pads little), unless the user or the task chose a sampling order."""

from __future__ import annotations

import json

import datasets
import pytest
from conftest import write_jsonl

import taskhub
from taskhub.modes.trainer import token_lengths
from taskhub.testing import save_task_model, save_tiny_text_model

MIXED = [{"text": "soup", "label": "food"}, {"text": "a red car parked on a quiet street beside an old stone wall at dusk", "label": "not_food"},
         {"text": "rice", "label": "food"}, {"text": "a bowl of noodles with chopped green onions and a boiled egg on top", "label": "food"},
         {"text": "a dog", "label": "not_food"}, {"text": "grapes", "label": "food"}] * 3


def sampling_strategy(tmp_path, rows, *overrides) -> str:
    save_tiny_text_model(tmp_path / "base")
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    taskhub.run(["task=text_classification", "mode=train", f"model.name_or_path={tmp_path / 'base'}", f"data.train={data}",
                 "train.num_train_epochs=1", "train.per_device_train_batch_size=4", "train.save_strategy=no", "device=cpu",
                 "results_cache=null", *overrides], run_dir=tmp_path / "run")
    return json.loads((tmp_path / "run" / "model" / "training_args.json").read_text())["train_sampling_strategy"]


def test_mixed_length_texts_train_in_length_groups(tmp_path):
    assert sampling_strategy(tmp_path, MIXED) == "group_by_length"


def test_the_users_choice_wins(tmp_path):
    assert sampling_strategy(tmp_path, MIXED, "train.group_by_length=false") == "random"


def test_rows_of_one_length_keep_random_order(tmp_path):
    same = [{"text": word, "label": label} for word, label in [("soup", "food"), ("car", "not_food"), ("rice", "food"), ("dog", "not_food")]]
    assert sampling_strategy(tmp_path, same) == "random"


def test_token_lengths_reads_only_token_id_lists():
    data = datasets.Dataset.from_dict({"input_ids": [[101, 7, 102], [101, 102]], "pixel_values": [[[0.5, 0.1]], [[0.2, 0.3]]], "labels": [0, 1]})
    assert token_lengths(data, "input_ids") == [3, 2]
    assert token_lengths(data, "pixel_values") is None  # nested floats: not tokens
    assert token_lengths(data, "labels") is None
    assert token_lengths(data, "missing") is None


@pytest.mark.parametrize("strategy", ["random", "group_by_length"])
def test_a_task_default_is_kept(tmp_path, strategy):
    """qa sets its own order in training_defaults; the core leaves a task's choice alone."""
    from transformers import TrainingArguments

    from taskhub.config import RunConfig
    from taskhub.modes.trainer import group_by_length_default

    task = taskhub.load_task("text_classification", device="cpu")
    task.training_defaults = {**task.training_defaults, "train_sampling_strategy": strategy}  # this instance only
    args = TrainingArguments(output_dir=str(tmp_path), train_sampling_strategy=strategy, report_to="none", use_cpu=True)
    group_by_length_default(task, RunConfig(), args, datasets.Dataset.from_dict({"input_ids": [[1, 2, 3], [1, 2], [1]]}))
    assert args.train_sampling_strategy == strategy


def test_evaluation_batches_keep_the_rows_order_when_training_groups_by_length(tmp_path):
    """The Trainer groups evaluation batches too when training groups by length: per-example
    outputs of the evaluation inside a training run came back out of the rows' order, and
    fill_mask's seeded masks fell otherwise than in mode=evaluate on the saved model."""
    from transformers import TrainingArguments

    from taskhub.modes.trainer import make_trainer

    save_tiny_text_model(tmp_path / "base")
    save_task_model("text_classification", tmp_path / "base", tmp_path / "classifier")
    task = taskhub.load_task("text_classification", model=str(tmp_path / "classifier"), device="cpu")
    lengths = [1, 9, 2, 14, 3, 7, 1, 12, 5, 2, 8, 4]
    rows = datasets.Dataset.from_dict({"input_ids": [[5] * n for n in lengths], "attention_mask": [[1] * n for n in lengths], "labels": [0] * len(lengths)})
    args = TrainingArguments(output_dir=str(tmp_path / "out"), train_sampling_strategy="group_by_length", per_device_eval_batch_size=2, report_to=[])
    trainer = make_trainer(task, args, rows, rows)
    for loader in (trainer.get_eval_dataloader(), trainer.get_test_dataloader(rows)):
        assert [int(n) for batch in loader for n in batch["attention_mask"].sum(dim=1)] == lengths
    assert [len(rows[i]["input_ids"]) for i in trainer._get_train_sampler(rows)] != lengths  # training itself is grouped


def test_training_lengths_come_from_arrow_in_the_datasets_order(tmp_path):
    """The sampler gets the lengths taskhub reads from Arrow, equal to what transformers'
    sampler reads row by row, also through an indices mapping (a shuffled selection)."""
    from transformers import TrainingArguments
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from taskhub.modes.trainer import make_trainer

    save_tiny_text_model(tmp_path / "base")
    save_task_model("text_classification", tmp_path / "base", tmp_path / "classifier")
    task = taskhub.load_task("text_classification", model=str(tmp_path / "classifier"), device="cpu")
    lengths = [1, 9, 2, 14, 3, 7, 1, 12, 5, 2, 8, 4, 6, 11]
    rows = datasets.Dataset.from_dict({"input_ids": [[5] * n for n in lengths], "attention_mask": [[1] * n for n in lengths], "labels": [0] * len(lengths)})
    rows = rows.shuffle(seed=3).select(range(10))
    args = TrainingArguments(output_dir=str(tmp_path / "out"), train_sampling_strategy="group_by_length", per_device_train_batch_size=2, report_to=[])
    read_row_by_row = LengthGroupedSampler(2, dataset=rows).lengths

    def no_row_reads(batch):
        raise AssertionError("the training rows were read one by one")

    rows.set_transform(no_row_reads)
    sampler = make_trainer(task, args, rows, None)._get_train_sampler(rows)
    assert isinstance(sampler, LengthGroupedSampler)
    assert sampler.lengths == read_row_by_row
    assert sampler.lengths != lengths[:10]  # the selection's order, not the table's
