"""The ``transformers.Trainer`` plumbing train and evaluate share: arguments from the run
config, the task's Trainer, and splits encoded for it (cached within a process, so the
checkpoints of one sweep reuse one tokenization)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskhub.config import RunConfig
from taskhub.data import column_names
from taskhub.engine.batching import model_inputs
from taskhub.errors import TaskhubError
from taskhub.text import reporting_cuts

if TYPE_CHECKING:
    from taskhub.task import Task

#: Encoded splits kept in memory, so jobs of one sweep process reuse tokenized data.
_encoded: OrderedDict[str, Any] = OrderedDict()
ENCODED_SPLITS_KEPT = 4
#: Checkpoint files that cannot change how data is encoded: weights, optimizer and
#: trainer state, the model card.
NOT_ENCODING_FILES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack", ".ckpt", "trainer_state.json", "training_args.json", "README.md")
#: Rows preprocessed together when a split is encoded for the Trainer (``datasets``' own
#: default, named): tasks that pack the texts of one such batch into blocks (fill_mask,
#: text_generation) cut the same blocks again to say which rows each one holds.
ENCODE_BATCH_ROWS = 1000


def encode(task: Task, split) -> Any:
    """Preprocess a whole split for the Trainer, with errors naming file and row.

    The result is reused within the process when the same split is encoded with the same
    processor files, task options and model config (e.g. many checkpoints of one run).
    """
    key = _encoding_key(task, split)
    if key in _encoded:
        _encoded.move_to_end(key)
        return _encoded[key]
    encoded = _encode(task, split)
    if key is not None:
        _encoded[key] = encoded
        while len(_encoded) > ENCODED_SPLITS_KEPT:
            _encoded.popitem(last=False)
    return encoded


def _encoding_key(task: Task, split) -> str | None:
    from taskhub.fingerprints import folder_digest
    from taskhub.modeling import model_source

    source = model_source(task)
    if source.name_or_path is None or not os.path.isdir(source.name_or_path) or split.streaming:
        return None  # a processor trained in this run, a hub id, a stream (encoded as read): nothing to keep
    parts = [
        type(task).__qualname__,
        repr(task.config),
        split.name,
        split.key,
        str(len(split.dataset)),
        ",".join(split.dataset.column_names),
        folder_digest(source.name_or_path, exclude_suffixes=NOT_ENCODING_FILES),
        json.dumps(source.processor, sort_keys=True, default=str),
        json.dumps({k: v for k, v in task.model.config.to_dict().items() if k != "_name_or_path"}, sort_keys=True, default=str),
    ]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _encode(task: Task, split) -> Any:
    dataset = split.dataset

    def encode_batch(batch, indices):
        features = task.run_preprocess(batch, split.path, [i + 1 for i in indices], with_targets=True)
        return model_inputs(features)

    if split.streaming:  # encoded lazily, as the Trainer reads it
        return dataset.map(encode_batch, batched=True, batch_size=ENCODE_BATCH_ROWS, with_indices=True, remove_columns=column_names(dataset))
    with reporting_cuts(task):  # one warning per split for texts cut to a limit
        return dataset.map(
            encode_batch,
            batched=True,
            batch_size=ENCODE_BATCH_ROWS,
            with_indices=True,
            remove_columns=dataset.column_names,
            keep_in_memory=True,
            load_from_cache_file=False,
            # datasets refuses fingerprints over 64 characters (a long task name and "validation")
            new_fingerprint=hashlib.sha256(f"taskhub-{task.name}-{split.name}-{time.time_ns()}".encode()).hexdigest()[:32],
        )


def training_arguments(task: Task, run: RunConfig, run_dir: Path, has_validation: bool, training: bool = True):
    from transformers import TrainingArguments

    from taskhub.modeling import resolve_device

    from taskhub.tracking import trackers

    values = {
        # Evaluation saves nothing: no empty checkpoints/ folder in its run dir.
        "output_dir": str(run_dir / "checkpoints" if training else run_dir),
        "report_to": trackers(run.train.report_to) if training else "none",
        "seed": run.seed,
        "eval_strategy": "epoch" if has_validation else "no",
        # A checkpoint per epoch (the newest kept) for train.resume; removed after a
        # successful run unless the user set the save strategy.
        "save_strategy": "epoch",
        "save_total_limit": 1,
        "logging_strategy": "epoch",
        "use_cpu": resolve_device(run.device.value) == "cpu",
        # On: the Trainer scales each loss by the process count, and models that take
        # **kwargs but average their own loss (BERT classifiers) then report, and step
        # with, twice the loss on 2 processes (transformers 5.25).
        "average_tokens_across_devices": False,
        # Side inputs are not arguments of the model's forward: the Trainer would drop them.
        **({"remove_unused_columns": False} if task.side_inputs else {}),
        **task.training_defaults,
        **(early_stopping_arguments(task) if training and run.train.early_stopping_patience else {}),
        **run.train.set_values(),
    }
    known = {f.name for f in fields(TrainingArguments)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise TaskhubError(f"train.args.{unknown[0]}: not a transformers.TrainingArguments field")
    try:
        return TrainingArguments(**values)
    except (ValueError, TypeError) as exc:
        raise TaskhubError(f"invalid training arguments: {str(exc).strip().splitlines()[0]}") from None


def group_by_length_default(task: Task, run: RunConfig, args, train_set) -> None:
    """Batch training rows of similar token length together unless the user or the task
    chose a sampling order. Batches are padded to their longest row, so random batches
    of mixed-length texts pay for the long tail in nearly every step (benchmark row 7e's
    captions and joined captions: 1.3x fewer padded tokens than padding all to 128;
    grouped, 2.6x). Only token-id inputs qualify, and only where grouping saves at least
    :data:`GROUPING_SAVES` of the padded positions (packed blocks of one length do not
    gain, and keep the plain shuffle): image pixels and audio samples are left in random
    order, and so is a stream (no lengths to read ahead)."""
    import datasets

    chosen = run.train.group_by_length is not None or "train_sampling_strategy" in {**task.training_defaults, **run.train.args}
    if chosen or not isinstance(train_set, datasets.Dataset) or len(train_set) == 0:
        return
    names = getattr(task.processor, "model_input_names", None) or ["input_ids"]
    lengths = token_lengths(train_set, names[0])
    if lengths and padded_positions(lengths, args.per_device_train_batch_size, shuffled=False) < (1 - GROUPING_SAVES) * padded_positions(
        lengths, args.per_device_train_batch_size, shuffled=True
    ):
        args.train_sampling_strategy = "group_by_length"


#: The share of padded positions length grouping must save to be the default.
GROUPING_SAVES = 0.1


def padded_positions(lengths: list[int], batch_size: int, shuffled: bool) -> int:
    """Positions in the batches of ``lengths`` padded to their longest row: in one fixed
    shuffle (what random batches cost) or sorted (what grouped batches cost, at best)."""
    import random

    order = sorted(lengths)
    if shuffled:
        random.Random(0).shuffle(order)
    return sum(max(order[i : i + batch_size]) * len(order[i : i + batch_size]) for i in range(0, len(order), batch_size))


def token_lengths(dataset, column: str) -> list[int] | None:
    """Lengths of a column of token-id lists, read from Arrow without decoding rows; None
    when the column is missing or holds anything else (pixels, waveforms, nested lists)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if column not in dataset.column_names:
        return None
    values = dataset.select_columns([column]).with_format("arrow")[:].column(column)  # in the dataset's order (select, shuffle)
    kind = values.type
    if not (pa.types.is_list(kind) or pa.types.is_large_list(kind)) or not pa.types.is_integer(kind.value_type):
        return None
    return [n for n in pc.list_value_length(values).to_pylist() if n is not None]


def best_model_metric(task: Task) -> str:
    """What early stopping watches: the task's :attr:`~taskhub.Task.selection_metric`,
    else its main metric, or the validation loss for a task whose metric needs generated
    predictions (too slow to compute every epoch)."""
    if task.selection_metric is not None:
        return task.selection_metric
    return "loss" if task.evaluate_by_prediction else task.main_metric


def early_stopping_arguments(task: Task) -> dict[str, Any]:
    from taskhub.tracking import greater_is_better

    metric = best_model_metric(task)
    return {"load_best_model_at_end": True, "metric_for_best_model": metric, "greater_is_better": greater_is_better(metric), "save_total_limit": 2}


def make_trainer(task: Task, args, train_set, eval_set, callbacks=()):
    from taskhub.modeling import transformers_attr
    from taskhub.task import Task

    trainer_cls = grouping_by_length(transformers_attr(task.trainer_class))
    if task.custom_loss:
        trainer_cls = with_task_loss(trainer_cls, task)
    if type(task).build_evaluation_collator is not Task.build_evaluation_collator:
        trainer_cls = with_evaluation_collator(trainer_cls, task.build_evaluation_collator())
    return trainer_cls(
        model=task.model,
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        data_collator=task.build_training_collator(),
        processing_class=task.processor,
        compute_metrics=task.compute_metrics,
        # The task's per-batch reduction of the logits before they are gathered over the
        # split (e.g. vocabulary logits -> per-token log-likelihoods); None: kept as they are.
        preprocess_logits_for_metrics=task.preprocess_logits_for_metrics,
        callbacks=list(callbacks),
    )


def grouping_by_length(trainer_cls):
    """``trainer_cls`` with length grouping done on what taskhub already knows:

    - the training rows' lengths are read from the Arrow column (:func:`token_lengths`)
      instead of transformers' ``LengthGroupedSampler`` reading every row through
      ``dataset[i]`` (a pass over the whole training set at the start of each run: 3.0 s
      for 200,000 rows, 0.007 s from Arrow; ``benchmarks/length_sampler.py``);
    - evaluation keeps the dataset's order: the Trainer would group the evaluation batches
      too, so the evaluation inside a training run batched (and, for fill_mask, masked)
      otherwise than ``mode=evaluate`` on the saved model, and per-example outputs came
      back out of the rows' order."""

    class LengthGroupingTrainer(trainer_cls):
        def _get_train_sampler(self, train_dataset=None):
            import datasets

            train_dataset = self.train_dataset if train_dataset is None else train_dataset
            if self.args.train_sampling_strategy == "group_by_length" and isinstance(train_dataset, datasets.Dataset):
                names = getattr(self.processing_class, "model_input_names", None) or ["input_ids"]
                lengths = token_lengths(train_dataset, names[0])
                if lengths is not None and len(lengths) == len(train_dataset):
                    from transformers.trainer_pt_utils import LengthGroupedSampler

                    return LengthGroupedSampler(self.args.train_batch_size * self.args.gradient_accumulation_steps, lengths=lengths)
            return super()._get_train_sampler(train_dataset)

        def _get_eval_sampler(self, eval_dataset):
            if self.args.train_sampling_strategy == "group_by_length" and self.args.world_size <= 1 and eval_dataset is not None:
                from torch.utils.data import SequentialSampler

                return SequentialSampler(eval_dataset)
            return super()._get_eval_sampler(eval_dataset)

    LengthGroupingTrainer.__qualname__ = LengthGroupingTrainer.__name__ = trainer_cls.__name__
    return LengthGroupingTrainer


def with_evaluation_collator(trainer_cls, collator):
    """``trainer_cls`` batching evaluation and test data with ``collator`` instead of its
    ``data_collator`` (the training one): the Trainer has one collator for both, so
    training-time augmentation would reach the evaluation batches too."""

    class EvaluationCollatorTrainer(trainer_cls):
        def get_eval_dataloader(self, eval_dataset=None):
            with evaluating(self, collator):
                return super().get_eval_dataloader(eval_dataset)

        def get_test_dataloader(self, test_dataset):
            with evaluating(self, collator):
                return super().get_test_dataloader(test_dataset)

    EvaluationCollatorTrainer.__qualname__ = EvaluationCollatorTrainer.__name__ = trainer_cls.__name__
    return EvaluationCollatorTrainer


@contextmanager
def evaluating(trainer, collator):
    """The trainer's ``data_collator`` set to ``collator`` while a data loader is made."""
    training = trainer.data_collator
    trainer.data_collator = collator
    try:
        yield
    finally:
        trainer.data_collator = training


def with_task_loss(trainer_cls, task: Task):
    """``trainer_cls`` computing its loss through the task (:meth:`~taskhub.Task.call_model`,
    :meth:`~taskhub.Task.compute_loss`), in training and evaluation alike: what a plugin
    would otherwise subclass the Trainer for."""

    class TaskLossTrainer(trainer_cls):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.can_return_loss = True  # evaluation asks compute_loss even for a task without labels

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            outputs = task.call_model(model, inputs)
            loss = task.compute_loss(outputs, inputs)
            return (loss, outputs) if return_outputs else loss

    TaskLossTrainer.__qualname__ = TaskLossTrainer.__name__ = f"{type(task).__name__}{trainer_cls.__name__}"
    return TaskLossTrainer
