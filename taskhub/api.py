"""The Python API behind the CLI, for notebooks, scripts and evaluators."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

from taskhub.errors import TaskhubError

CONFIG_MODULE = "taskhub_conf"


def compose(overrides: Sequence[str] = ()):
    """The run config the CLI would build from these overrides (Hydra compose API)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from taskhub.config import normalize_overrides, plugin_searchpath, register_configs, searchpath_overrides, task_presets
    from taskhub.manager import get_registry

    from taskhub.sweeps import expand_overrides, register_resolvers

    registry = get_registry()
    searchpath = plugin_searchpath()
    overrides = expand_overrides(list(overrides))
    for override in overrides:
        key, _, value = override.partition("=")
        if key.lstrip("+~") == "task" and value not in registry and value not in task_presets(searchpath):
            raise TaskhubError(registry.unknown_task_message(value))
    register_configs(registry)
    register_resolvers()
    overrides = normalize_overrides(overrides, registry) + searchpath_overrides(searchpath)
    try:
        with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
            return hydra_compose("config", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        message = str(exc).strip() or str(exc.__cause__ or type(exc).__name__)
        raise TaskhubError(" ".join(message.split())) from None


def run(overrides: Sequence[str] = (), run_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Compose a config from CLI-style overrides and run it; returns the result record.

    ``run_dir`` defaults to ``outputs/<task>/<timestamp>`` like the CLI.
    """
    from taskhub.runner import execute

    cfg = compose(overrides)
    if run_dir is None:
        run_dir = os.path.join("outputs", cfg.task.name, time.strftime("%Y-%m-%d_%H-%M-%S"))
    return execute(cfg, run_dir)


def load_task(name: str, model: str | None = None, device: str = "auto", **options: Any):
    """A ready-to-predict task object: ``load_task("text_classification", model=dir).predict(records)``.

    ``options`` are the task's config fields (e.g. ``top_k=3``), type-checked.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from taskhub.config import ModelConfig
    from taskhub.manager import get_registry

    spec = get_registry().get(name)
    try:
        config = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(spec.config_cls), options))
    except OmegaConfBaseException as exc:
        raise TaskhubError(f"task {name}: {' '.join(str(exc).split())}") from None
    return spec.task_cls(config, ModelConfig(name_or_path=model), device=device)
