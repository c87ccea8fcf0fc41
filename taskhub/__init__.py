"""taskhub: run, fine-tune and evaluate Hugging Face models on common tasks.

Python API (everything the ``taskhub`` CLI does)::

    import taskhub
    result = taskhub.run(["task=text_classification", "mode=train"])   # like the CLI
    task = taskhub.load_task("text_classification", model=result["outputs"]["model"])
    task.predict([{"text": "a bowl of ramen"}])

Plugins implement the hooks in :mod:`taskhub.hookspecs` with :data:`hookimpl`.
"""

from __future__ import annotations

import pluggy

hookimpl = pluggy.HookimplMarker("taskhub")

from taskhub.api import compose, load_task, run  # noqa: E402
from taskhub.config import ModelConfig, TaskConfig, option  # noqa: E402
from taskhub.errors import RowError, TaskhubError  # noqa: E402
from taskhub.registry import TaskSpec  # noqa: E402
from taskhub.task import Task  # noqa: E402

__all__ = [
    "ModelConfig",
    "RowError",
    "Task",
    "TaskConfig",
    "TaskSpec",
    "TaskhubError",
    "compose",
    "hookimpl",
    "load_task",
    "option",
    "run",
]
