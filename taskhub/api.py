"""The Python API behind the CLI, for notebooks, scripts and evaluators."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

from taskhub.errors import TaskhubError


def prepare_overrides(overrides: Sequence[str], registry) -> tuple[list[str], list[str]]:
    """What every run's overrides go through before Hydra sees them, the CLI's and
    :func:`compose`'s alike: task names checked (one line listing the known ones), the
    task configs and resolvers registered, swept values expanded, ``task=auto`` resolved.
    Returns (the user's overrides, normalised; the ones added: the resolved task, the
    plugins' config search path)."""
    from taskhub.config import AUTO_TASK
    from taskhub.overrides import normalize_overrides, register_configs
    from taskhub.manager import plugin_searchpath, searchpath_overrides, task_presets
    from taskhub.provenance import with_auto_task
    from taskhub.sweeps import expand_overrides, register_resolvers

    searchpath = plugin_searchpath()
    presets = task_presets(searchpath)
    for override in overrides:
        key, _, value = override.partition("=")
        if key.lstrip("+~") == "task" and value:
            for name in value.split(","):
                if name not in registry and name not in presets and name != AUTO_TASK:
                    raise TaskhubError(registry.unknown_task_message(name))
    register_configs(registry)
    register_resolvers()
    kept, resolved = with_auto_task(expand_overrides(list(overrides)))
    return normalize_overrides(kept, registry), [*normalize_overrides(resolved, registry), *searchpath_overrides(searchpath)]


def compose(overrides: Sequence[str] = (), **options: Any):
    """The run config the CLI would build from these overrides (Hydra compose API);
    ``options`` as keywords, like :func:`run`'s."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from taskhub.config import CONFIG_MODULE
    from taskhub.options import check_options
    from taskhub.overrides import keyword_overrides
    from taskhub.manager import get_registry

    registry = get_registry()
    user, added = prepare_overrides([*overrides, *keyword_overrides(options)], registry)
    overrides = [*user, *added]
    try:
        with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
            cfg = hydra_compose("config", overrides=overrides)
        check_options(OmegaConf.to_object(cfg))
    except (HydraException, OmegaConfBaseException) as exc:
        raise TaskhubError(config_error_message(exc, overrides, registry)) from None
    return cfg


def config_error_message(exc: BaseException, overrides: Sequence[str], registry) -> str:
    """One line for a bad override: the key and what is wrong, with the closest valid key
    or the allowed values (Hydra's own message spans several lines and names neither)."""
    import difflib

    from omegaconf import OmegaConf
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

    from taskhub.config import RunConfig

    cause = exc
    while not isinstance(cause, OmegaConfBaseException) and cause.__cause__ is not None:
        cause = cause.__cause__
    full_key = getattr(cause, "full_key", None)
    detail = (getattr(cause, "msg", None) or str(cause) or type(cause).__name__).strip().splitlines()[0]
    if not full_key:
        return " ".join((str(exc).strip() or detail).split())
    if isinstance(cause, (ConfigKeyError, ConfigAttributeError)):
        task_name = next((o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0].lstrip("+~") == "task"), "text_classification")
        spec = registry.get(task_name) if task_name in registry else None
        schema = OmegaConf.structured(RunConfig(task=spec.config_cls() if spec else None))
        parent, _, leaf = full_key.rpartition(".")
        node = OmegaConf.select(schema, parent) if parent else schema
        valid = sorted(str(k) for k in node.keys()) if node is not None and hasattr(node, "keys") else []
        close = difflib.get_close_matches(leaf, valid, n=1)
        hint = f" (did you mean '{'.'.join(filter(None, (parent, close[0])))}'?)" if close else ""
        options = f"; valid keys under {parent or 'the root'}: {', '.join(valid)}" if valid else ""
        return f"{full_key}: no such option{hint}{options}"
    value = next((o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0].lstrip("+~") == full_key), None)
    return f"{full_key}={value}: {detail}" if value is not None else f"{full_key}: {detail}"


def run(overrides: Sequence[str] = (), run_dir: str | os.PathLike | None = None, **options: Any) -> dict[str, Any]:
    """Compose a config from CLI-style overrides and run it; returns the result record.

    ``options`` are the same overrides as keywords, nested dicts for groups:
    ``run(task="ner", train={"num_train_epochs": 1}, data={"limit": 50})``.
    ``run_dir`` defaults to ``outputs/<task>/<timestamp>`` like the CLI.
    """
    from taskhub.runner import execute

    cfg = compose(overrides, **options)
    if run_dir is None:
        run_dir = os.path.join("outputs", cfg.task.name, time.strftime("%Y-%m-%d_%H-%M-%S"))
    return execute(cfg, run_dir)


def load_task(
    name: str, model: str | None = None, device: str = "auto", dtype: str = "fp32", quantize: str = "none", compile: bool = False, **options: Any
):
    """A ready-to-predict task object: ``load_task("text_classification", model=dir).predict(records)``.

    ``options`` are the task's config fields (e.g. ``top_k=3``), type-checked;
    ``dtype`` / ``quantize`` / ``compile`` are the inference speed modes of ``model.dtype`` /
    ``model.quantize`` / ``model.compile``.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from taskhub.config import ModelConfig, Precision, Quantization
    from taskhub.options import check_options
    from taskhub.manager import get_registry

    spec = get_registry().get(name)
    try:
        config = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(spec.config_cls), options))
    except OmegaConfBaseException as exc:
        raise TaskhubError(f"task {name}: {' '.join(str(exc).split())}") from None
    check_options(config, "task.")
    try:
        model_config = ModelConfig(name_or_path=model, dtype=Precision(dtype), quantize=Quantization(quantize), compile=bool(compile))
    except ValueError as exc:
        raise TaskhubError(f"load_task: {exc}") from None
    return spec.task_cls(config, model_config, device=device)
