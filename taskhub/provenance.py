"""A checkpoint knows its task: ``taskhub.json`` in every ``model/`` and ``checkpoint-*``
taskhub writes (task, task options, training step and epoch), and ``task=auto``, which
reads it back, or for a checkpoint taskhub did not write, infers the task from the
model's architecture. A sweep over a glob of mixed checkpoints then evaluates each on
its own task instead of every task on every checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskhub.config import AUTO_TASK
from taskhub.overrides import keyword_overrides
from taskhub.errors import TaskhubError

if TYPE_CHECKING:
    from taskhub.task import Task

log = logging.getLogger("taskhub")

RECORD = "taskhub.json"
#: Modes in which a named model without a named task means ``task=auto``.
AUTO_MODES = ("evaluate", "predict")


def write_provenance(folder: str | os.PathLike, task: Task, state=None) -> None:
    """Record the task, its options and (from a ``TrainerState``) the step and epoch."""
    record: dict[str, Any] = {"task": task.name, "options": _plain(dataclasses.asdict(task.config))}
    if state is not None:
        record.update(step=state.global_step, epoch=state.epoch)
    (Path(folder) / RECORD).write_text(json.dumps(record, indent=2) + "\n")


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def read_provenance(folder: str | os.PathLike) -> dict[str, Any] | None:
    try:
        return json.loads((Path(folder) / RECORD).read_text())
    except (OSError, ValueError):
        return None


def checkpoint_recorder(task: Task):
    """A TrainerCallback writing ``taskhub.json`` into each checkpoint as it is saved
    (listed before :class:`~taskhub.checkpoints.CheckpointSeal`, so the seal covers it)."""
    from transformers import TrainerCallback

    class RecordTask(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if args.should_save and folder.is_dir():
                write_provenance(folder, task, state)

    return RecordTask()


# ------------------------------------------------------------------ task=auto
def with_auto_task(overrides: list[str]) -> tuple[list[str], list[str]]:
    """``task=auto`` for overrides that name a model in mode=evaluate/predict but no task
    (or say ``task=auto``): ``(the overrides without task=auto, overrides to add)``.

    One model: its task is resolved now, with the options it was trained with (those the
    user does not set), so ``task.<option>`` overrides type-check against the real task
    and the run dir is named after it. A sweep over models: ``task=auto``, resolved per job
    (:func:`resolve_auto_task`)."""
    keys = {o.partition("=")[0].lstrip("+~"): o.partition("=")[2] for o in overrides if "=" in o}
    model = keys.get("model.name_or_path")
    if keys.get("task", AUTO_TASK) != AUTO_TASK or keys.get("mode") not in AUTO_MODES or not model:
        return overrides, []
    kept = [o for o in overrides if o.partition("=")[0].lstrip("+~") != "task"]
    if "," in model:
        return kept, [f"task={AUTO_TASK}"]
    name, options = task_of(model) or (default_task(), {})
    recorded = keyword_overrides({k: v for k, v in options.items() if f"task.{k}" not in keys and k != "name"}, "task.")
    return kept, [f"task={name}", *recorded]


def resolve_auto_task(cfg) -> None:
    """Replace a composed config's ``task=auto`` (in place, so a failure record names the
    real task) by the model's task with the options it was trained with."""
    from omegaconf import OmegaConf, open_dict

    from taskhub.manager import get_registry

    if cfg.task.name != AUTO_TASK:
        return
    model = cfg.model.name_or_path
    if not model:
        raise TaskhubError("task=auto needs model.name_or_path: the checkpoint whose task to use")
    name, options = task_of(model) or (default_task(), {})
    spec = get_registry().get(name)
    known = {f.name for f in dataclasses.fields(spec.config_cls)} - {"name"}
    node = OmegaConf.merge(OmegaConf.structured(spec.config_cls), {k: v for k, v in options.items() if k in known})
    with open_dict(cfg):
        cfg.task = node


def default_task() -> str:
    """The task of a run that names none (``conf/config.yaml``)."""
    from importlib.resources import files

    from omegaconf import OmegaConf

    defaults = OmegaConf.to_container(OmegaConf.load(str(files("taskhub_conf") / "config.yaml")).defaults)
    return next(entry["task"] for entry in defaults if isinstance(entry, dict) and "task" in entry)


def task_of(model: str) -> tuple[str, dict[str, Any]] | None:
    """(task name, task options) of a checkpoint folder: its ``taskhub.json``, else the task
    whose auto class takes the architecture in its ``config.json``. None when nothing tells
    (a hub id, a folder without either, an architecture no task takes): the default task
    then runs and its loader says what is wrong with the model, as without task=auto."""
    from taskhub.modeling import resolve_path

    folder = resolve_path(model)
    if not os.path.isdir(folder):
        log.info("task=auto: %s is not a local folder; using the default task", model)
        return None
    record = read_provenance(folder)
    if record is not None and isinstance(record.get("task"), str):
        return record["task"], record.get("options") or {}
    try:
        config = json.loads((Path(folder) / "config.json").read_text())
    except (OSError, ValueError):
        config = {}
    architectures = config.get("architectures") or []
    tasks = sorted({name for arch in architectures for name in tasks_for_architecture(arch)})
    if len(tasks) == 1:
        if is_nli(config):
            log.warning(
                "task=auto: %s is an NLI classifier (labels %s): running %s on it; for zero-shot classification "
                "over candidate labels set task=zero_shot_classification",
                model, ", ".join(map(str, (config.get("id2label") or {}).values())), tasks[0],
            )  # fmt: skip
        return tasks[0], {}
    if not tasks:
        log.info("task=auto: neither %s nor an architecture any task takes in %s; using the default task", RECORD, model)
        return None
    raise TaskhubError(f"task=auto: {model} is a {architectures[0]} checkpoint, which {', '.join(tasks)} all take; set task=<one of them>")


def is_nli(config: dict[str, Any]) -> bool:
    """A model config whose labels include entailment and contradiction. Such a checkpoint
    is a pair classifier (text_classification with ``text_pair``: NLI itself) as much as
    a zero-shot classifier, and only the data says which, so task=auto does not choose
    zero_shot_classification for it: it keeps the architecture's task and says so."""
    labels = {str(name).lower() for name in (config.get("id2label") or {}).values()}
    return {"entailment", "contradiction"} <= labels


def tasks_for_architecture(architecture: str) -> list[str]:
    """Registered tasks whose auto classes (``Task.auto_models``) list the architecture,
    by transformers' own ``MODEL_FOR_*_MAPPING_NAMES`` behind each auto class."""
    from taskhub.manager import get_registry
    from taskhub.modeling import transformers_attr

    found = []
    for spec in get_registry():
        for auto_class in spec.task_cls.auto_models():
            names = transformers_attr(auto_class)._model_mapping._model_mapping.values()  # model_type -> class name(s)
            if any(architecture == n or (isinstance(n, tuple) and architecture in n) for n in names):
                found.append(spec.name)
                break
    return found
