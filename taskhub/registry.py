"""The task registry: what ``taskhub_register_tasks`` hooks contributed, by name."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from taskhub.errors import TaskhubError

if TYPE_CHECKING:
    from taskhub.config import TaskConfig
    from taskhub.task import Task


@dataclass(frozen=True)
class TaskSpec:
    """One task a plugin contributes: its name, implementation and config schema.

    ``config_cls`` is a dataclass deriving from :class:`taskhub.config.TaskConfig`;
    it becomes the Hydra config node ``task=<name>``, so a plugin needs no YAML.
    """

    name: str
    task_cls: type[Task]
    config_cls: type[TaskConfig]

    @property
    def summary(self) -> str:
        doc = (self.task_cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""


@dataclass(frozen=True)
class RegisteredTask:
    spec: TaskSpec
    provider: str  # the plugin that contributed it: a module or distribution name


class TaskRegistry:
    """Task name -> spec, refusing duplicates instead of silently shadowing them."""

    def __init__(self) -> None:
        self._tasks: dict[str, RegisteredTask] = {}

    def add(self, spec: TaskSpec, provider: str) -> None:
        check_spec(spec, provider)
        if spec.name in self._tasks:
            other = self._tasks[spec.name].provider
            raise TaskhubError(f"task '{spec.name}' is registered twice: by {other} and by {provider}")
        self._tasks[spec.name] = RegisteredTask(spec, provider)

    def get(self, name: str) -> TaskSpec:
        try:
            return self._tasks[name].spec
        except KeyError:
            raise TaskhubError(self.unknown_task_message(name)) from None

    def provider(self, name: str) -> str:
        return self._tasks[name].provider

    def unknown_task_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, self.names(), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"unknown task '{name}'{hint}; known tasks: {', '.join(self.names())}"

    def names(self) -> list[str]:
        return sorted(self._tasks)

    def __contains__(self, name: object) -> bool:
        return name in self._tasks

    def __iter__(self) -> Iterator[TaskSpec]:
        return (self._tasks[name].spec for name in self.names())


def check_spec(spec: object, provider: str) -> None:
    """A one-line error when a plugin's task spec cannot work (checked before registering)."""
    from omegaconf import OmegaConf

    from taskhub.config import TaskConfig
    from taskhub.task import Task

    if not isinstance(spec, TaskSpec):
        raise TaskhubError(f"plugin {provider}: taskhub_register_tasks must return TaskSpec objects, got {type(spec).__name__}")
    if not (isinstance(spec.task_cls, type) and issubclass(spec.task_cls, Task)):
        raise TaskhubError(f"plugin {provider}: task '{spec.name}' task_cls must subclass taskhub.Task")
    if not (isinstance(spec.config_cls, type) and issubclass(spec.config_cls, TaskConfig)):
        raise TaskhubError(f"plugin {provider}: task '{spec.name}' config_cls must subclass taskhub.TaskConfig")
    if spec.config_cls in _structured_ok:
        return
    try:
        OmegaConf.structured(spec.config_cls)  # what Hydra's ConfigStore will do with it
    except Exception as exc:  # noqa: BLE001
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise TaskhubError(f"plugin {provider}: task '{spec.name}' config_cls is not a valid structured config: {detail}") from None
    _structured_ok.add(spec.config_cls)


#: Config classes already checked (the registry is rebuilt several times per run).
_structured_ok: set[type] = set()
