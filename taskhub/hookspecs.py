"""The hooks a taskhub plugin can implement.

Call hooks with keyword arguments only; an implementation may accept a subset of a
spec's arguments, so specs can grow without breaking existing plugins (pluggy's
"opt-in arguments"). Built-in tasks use exactly these hooks, like third-party ones.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from taskhub.registry import TaskSpec
    from taskhub.task import Task

hookspec = pluggy.HookspecMarker("taskhub")


@hookspec
def taskhub_register_tasks() -> list[TaskSpec]:
    """Contribute tasks.

    Called once when the plugin manager is built, before any config is composed.
    Each returned :class:`~taskhub.registry.TaskSpec` becomes a registry entry and
    an option ``task=<name>`` of the Hydra config group ``task``, with the spec's
    config dataclass as its schema. Must not import torch or transformers:
    ``taskhub --help`` calls it. If it raises or returns unusable specs, the plugin is
    reported once on stderr and skipped; the other plugins' tasks stay available.

    :return: the plugin's task specs (an empty list is fine).
    """


@hookspec
def taskhub_trainer_callbacks(task: Task, cfg: DictConfig) -> list[Any]:
    """Contribute ``transformers.TrainerCallback`` instances to a training run.

    Called once per ``mode=train`` run, after the model is built and before the
    ``Trainer`` is created, so a plugin can log, early-stop or profile any task.

    :param task: the task being trained.
    :param cfg: the fully composed run config.
    :return: callbacks to add (an empty list is fine).
    """


@hookspec
def taskhub_run_end(task: Task, cfg: DictConfig, result: dict[str, Any]) -> None:
    """Observe a finished run (any mode), e.g. to push results to a tracker.

    Called after ``metrics.json`` / ``predictions.jsonl`` / ``model/`` are written.

    :param task: the task that ran.
    :param cfg: the fully composed run config.
    :param result: what :func:`taskhub.run` returns: ``mode``, ``task``, ``model``,
        ``metrics`` (a flat dict of floats) and ``outputs`` (paths written).
    """


@hookspec
def taskhub_config_searchpath() -> list[str]:
    """Contribute Hydra config folders, e.g. ``["pkg://taskhub_reviews.conf"]``.

    Called when the CLI or :func:`taskhub.compose` builds a config. Each folder is
    appended to Hydra's search path, so YAML presets a plugin ships become options:
    ``<folder>/task/reviews_small.yaml`` holding ``defaults: [review_stars, _self_]``
    plus values is selected with ``task=reviews_small``. Name presets differently from
    tasks (a YAML file named like a task would shadow the task's schema).

    :return: ``pkg://<package>[/<folder>]`` or ``file://<absolute path>`` strings.
    """


@hookspec
def taskhub_metrics(task: Task, split: str, predictions: list[dict[str, Any]], references: Any) -> dict[str, float]:
    """Contribute metrics to every evaluation (any task, any split).

    Called after the task's own metrics, with the task's prediction records for the
    split (as ``predict`` returns them) and the split's rows (a ``datasets.Dataset``
    with canonical column names). Keys are prefixed with the split name by the core.
    Predictions are only computed for this hook when a plugin implements it.

    :param task: the task being evaluated (its model is loaded).
    :param split: ``"validation"`` or ``"test"``.
    :return: metric name -> value (an empty dict is fine).
    """
