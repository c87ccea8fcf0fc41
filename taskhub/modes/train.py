"""``mode=train``: fine-tune with ``transformers.Trainer``, checkpoints sealed for
``train.resume``, held-out metrics, and a ``model/`` folder with its model card."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskhub.config import RunConfig
from taskhub.data import iter_rows, read_split
from taskhub.engine.sharding import barrier, broadcast, distributed, is_main
from taskhub.errors import BadRowError, RowError, TaskhubError
from taskhub.manager import call_hook
from taskhub.model_card import render_model_card
from taskhub.modes.evaluate import evaluate_split
from taskhub.modes.trainer import encode, group_by_length_default, make_trainer, training_arguments
from taskhub.provenance import checkpoint_recorder, write_provenance
from taskhub.rundir import atomic_path, writing
from taskhub.tracking import epoch_history, logs_in

if TYPE_CHECKING:
    from taskhub.task import Task

log = logging.getLogger("taskhub")


def train(task: Task, run: RunConfig, run_dir: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """Fine-tune (or train from scratch), evaluate the held-out splits, save ``model/``;
    trackers (``train.report_to``) log into ``<run dir>/logs/``."""
    with logs_in(run_dir):
        return _train(task, run, run_dir)


def _train(task: Task, run: RunConfig, run_dir: Path) -> tuple[dict[str, Any], dict[str, str]]:
    from transformers import set_seed

    set_seed(run.seed)
    if run.data.streaming and run.train.max_steps is None:
        raise TaskhubError("data.streaming=true: a stream has no length to count epochs in; set train.max_steps=<steps>")
    train = read_split(task, run.data, "train", with_targets=True)
    validation = read_split(task, run.data, "validation", with_targets=True, required=False)
    test = read_split(task, run.data, "test", with_targets=True, required=False)
    if run.train.early_stopping_patience and validation is None:
        raise TaskhubError("train.early_stopping_patience needs a validation split to watch: set data.validation")

    from taskhub.modeling import load_model, model_source, processor_from_data

    if processor_from_data(task):
        task.processor = task.train_processor(train.dataset, model_source(task).processor)
    try:
        init_kwargs = task.model_init_kwargs(targets_in_memory(task, train) if train.streaming else train.dataset)
    except RowError as err:
        raise BadRowError(train.path, err.index + 1, err.message) from None
    args = training_arguments(task, run, run_dir, has_validation=validation is not None)
    task.model = load_model(task, **init_kwargs)
    metrics: dict[str, Any] = {}
    saved_base = _adapt(task, run, Path(args.output_dir), metrics) if run.model.peft.method != "none" else None
    train_set = encode(task, train)
    held_out = [s for s in (validation, test) if s is not None]
    validation_set = encode(task, validation) if validation is not None else None

    from taskhub.checkpoints import CheckpointSeal, saved_step, whole_run_loss

    hooked = (cb for cbs in call_hook("taskhub_trainer_callbacks", task=task, cfg=run) for cb in cbs)
    callbacks = [checkpoint_recorder(task), CheckpointSeal(), DerivedMetrics(task), *_early_stopping(run), *hooked]
    group_by_length_default(task, run, args, train_set)
    trainer = make_trainer(task, args, train_set, validation_set, callbacks)
    before = run.evaluate_before_training
    if before if before is not None else task.evaluate_before_training:
        for split in held_out:
            metrics.update({f"before_{k}": v for k, v in evaluate_split(task, trainer, split, run).items()})
    checkpoint = resume_checkpoint(run, args.output_dir)
    resumed_at = saved_step(checkpoint) if checkpoint else 0  # read now: rotation may remove it
    rows = "streamed" if train.streaming else len(train_set)
    log.info("training %s on %s rows (%s)%s", task.name, rows, train.path, f", resuming from {checkpoint}" if checkpoint else "")
    trained = trainer.train(resume_from_checkpoint=checkpoint)
    metrics.update({f"train_{k.removeprefix('train_')}": v for k, v in trained.metrics.items()})
    if checkpoint:  # the Trainer's train_loss averages the resumed steps only
        whole = whole_run_loss(trainer.state.log_history, resumed_at, trainer.state.global_step)
        metrics["train_loss"] = whole if whole is not None else metrics["train_loss"]
    for split in held_out:
        metrics.update(evaluate_split(task, trainer, split, run))
    metrics["history"] = epoch_history(trainer.state.log_history)
    model_dir = run_dir / "model"
    with writing(model_dir), _saving(model_dir) as tmp:
        if not is_main():  # FSDP and DeepSpeed gather the weights in the Trainer's save, with every rank
            if run.model.peft.method == "none":
                trainer.save_model(str(tmp))
            return metrics, {"model": str(model_dir)}
        save_model(task, run, trainer, tmp, saved_base)
        task.processor.save_pretrained(str(tmp))
        trainer.state.save_to_json(str(tmp / "trainer_state.json"))  # the whole log history, for plots and audits
        write_provenance(tmp, task, trainer.state)  # taskhub.json: task=auto reads it
        # The Trainer pickles its arguments; keep a readable copy instead of a pickle.
        (tmp / "training_args.bin").unlink(missing_ok=True)
        (tmp / "training_args.json").write_text(args.to_json_string())
        splits = [split for split in (train, validation, test) if split is not None]
        card = render_model_card(task, run, metrics, splits, json.loads(args.to_json_string()))
        (tmp / "README.md").write_text(card, encoding="utf-8")
    if run.train.save_strategy is None and "save_strategy" not in run.train.args:
        shutil.rmtree(args.output_dir, ignore_errors=True)  # only there for resuming
    return metrics, {"model": str(model_dir)}


def _adapt(task: Task, run: RunConfig, checkpoints: Path, metrics: dict[str, Any]) -> Path | None:
    """Put a peft adapter on the task's model (counts of trainable parameters into
    ``metrics``). A base built from scratch exists nowhere else: it is saved first, to go
    into the adapter folder (the path returned)."""
    from taskhub import adapters
    from taskhub.modeling import model_source

    peft = run.model.peft
    if peft.merge and peft.method == "prefix":
        raise TaskhubError("model.peft.merge=true: prefix tuning adds no weights that can be merged; leave merge=false")
    saved_base = None
    if model_source(task).from_scratch and not peft.merge:
        saved_base = checkpoints / adapters.SAVED_BASE
        task.model.save_pretrained(str(saved_base))
    task.model = adapters.wrap(task.model, peft, task.auto_model)
    trainable, total = task.model.get_nb_trainable_parameters()
    metrics.update(train_trainable_parameters=trainable, train_total_parameters=total)
    return saved_base


def save_model(task: Task, run: RunConfig, trainer, folder: Path, saved_base: Path | None) -> None:
    """The trained model into ``folder``: with an adapter, the adapter folder (or, with
    ``model.peft.merge=true``, the weights with the adapter merged in)."""
    peft = run.model.peft
    if peft.method == "none":
        trainer.save_model(str(folder))
    elif peft.merge:
        trainer.model.merge_and_unload().save_pretrained(str(folder))
    else:
        from taskhub import adapters

        adapters.save(trainer.model, folder, adapters.SAVED_BASE if saved_base else base_name(task), saved_base)


def base_name(task: Task) -> str:
    """The base model as an adapter names it: a hub id or ``pkg://`` name as given (they
    load anywhere), a local folder as an absolute path."""
    name = task.model_config.name_or_path or task.default_model
    local = name.startswith((".", "/", "~")) or (os.path.exists(name) and not name.startswith("pkg://"))
    return os.path.abspath(os.path.expanduser(name)) if local else name


def _early_stopping(run: RunConfig) -> list:
    if not run.train.early_stopping_patience:
        return []
    from transformers import EarlyStoppingCallback

    return [EarlyStoppingCallback(early_stopping_patience=run.train.early_stopping_patience)]


def DerivedMetrics(task: Task):
    """A callback adding the task's derived metrics (perplexity from loss) to each
    validation, so early stopping and the best-model choice can watch them."""
    from transformers import TrainerCallback

    class _DerivedMetrics(TrainerCallback):
        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            if metrics is not None:
                metrics.update(task.derived_metrics(metrics, "eval"))

    return _DerivedMetrics()


@contextmanager
def _saving(final: Path) -> Iterator[Path]:
    """:func:`~taskhub.rundir.atomic_path` across ranks: they all save into the main
    process's temporary folder (a DeepSpeed checkpoint has a part from each), which the
    main one renames into place once every rank is done."""
    if not distributed():
        with atomic_path(final) as tmp:
            yield tmp
        return
    if not is_main():
        yield broadcast(None)
        barrier()
        return
    with atomic_path(final) as tmp:
        broadcast(tmp)
        yield tmp
        barrier()


def targets_in_memory(task: Task, split):
    """A stream's target columns read once into memory: what the model's config takes
    from the training data (the label names) needs every row's, the inputs never."""
    import datasets

    return datasets.Dataset.from_list(list(iter_rows(split.dataset.select_columns(list(task.target_columns)))))


def resume_checkpoint(run: RunConfig, checkpoints: str) -> str | None:
    """The checkpoint ``train.resume`` names: for "auto" the newest one that proves it is
    complete (None when there is none; see :mod:`taskhub.checkpoints`)."""
    from taskhub.checkpoints import check_named, newest_complete

    resume = run.train.resume
    if not resume:
        return None
    if resume == "auto":
        return newest_complete(checkpoints)
    if not os.path.isdir(resume):
        raise TaskhubError(f"train.resume={resume}: not a checkpoint folder (or use train.resume=auto)")
    check_named(resume)
    return resume
