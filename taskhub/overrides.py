"""Overrides on their way to Hydra: the task configs registered in its ConfigStore,
free-form dict keys (``data.columns.*``, ``model.config.*``) made addable, split
expressions quoted, and Python keyword options written as overrides."""

from __future__ import annotations

import re
from typing import Any

from taskhub.config import AUTO_TASK, RunConfig, TaskConfig

#: The task configs :func:`register_configs` last stored (name -> config class).
_stored: dict[str, type] = {}


def register_configs(registry) -> None:
    """Put the root schema and one ``task`` group option per registered task in Hydra's
    ConfigStore. Storing turns every dataclass into an OmegaConf node (about a fifth of
    composing a run's config), so a process that runs many jobs stores the same set once."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    tasks = {spec.name: spec.config_cls for spec in registry}
    if tasks == _stored and "taskhub_schema.yaml" in cs.repo:
        return
    cs.store(name="taskhub_schema", node=RunConfig)
    cs.store(group="task", name=AUTO_TASK, node=TaskConfig(name=AUTO_TASK), provider="taskhub")  # resolved per run: taskhub.provenance
    for name, config_cls in tasks.items():
        cs.store(group="task", name=name, node=config_cls, provider="taskhub")
    _stored.clear()
    _stored.update(tasks)


def open_dict_prefixes(registry) -> set[str]:
    """Dotted paths of free-form dict fields (``data.columns``, ``model.config``, ...)
    in the root schema and every task's config."""
    import dataclasses
    import typing

    prefixes: set[str] = set()

    def walk(cls, path: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            hint = hints[f.name]
            origin = typing.get_origin(hint) or hint
            if origin is dict:
                prefixes.add(f"{path}{f.name}.")
            elif dataclasses.is_dataclass(hint):
                walk(hint, f"{path}{f.name}.")

    walk(RunConfig, "")
    for spec in registry:
        walk(spec.config_cls, "task.")
    return prefixes


def normalize_overrides(overrides, registry) -> list[str]:
    """Let ``data.columns.text=review`` add a key to a free-form dict without Hydra's ``+``
    (rewritten to ``++``, which adds or replaces)."""
    prefixes = open_dict_prefixes(registry)
    normalized = []
    for override in overrides:
        key = override.split("=", 1)[0]
        if "=" in override and not key.startswith(("+", "~")) and any(key.startswith(p) for p in prefixes):
            override = "++" + override
        normalized.append(quote_split_expression(override))
    return normalized


def quote_split_expression(override: str) -> str:
    """Let ``data.split.validation=validation[:10%]`` through Hydra's grammar, which reads
    an unquoted ``[`` as the start of a list: a split expression is quoted for it."""
    key, _, value = override.partition("=")
    if key.startswith("data.split.") and "[" in value and not value.startswith(("'", '"')):
        return f"{key}='{value}'"
    return override


def keyword_overrides(options: dict[str, Any], prefix: str = "") -> list[str]:
    """``{"train": {"num_train_epochs": 1}}`` -> ``["train.num_train_epochs=1"]``, each value
    written in Hydra's override grammar (strings quoted, so any character is kept)."""
    overrides = []
    for key, value in options.items():
        if isinstance(value, dict) and value:
            overrides.extend(keyword_overrides(value, f"{prefix}{key}."))
        else:
            overrides.append(f"{prefix}{key}={_override_value(value)}")
    return overrides


#: A string Hydra reads as that same string without quotes.
PLAIN_VALUE = re.compile(r"[A-Za-z_/.~][\w/.:+*@%~-]*")


def _override_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_override_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_override_value(v)}" for k, v in value.items()) + "}"
    text = str(value)
    if PLAIN_VALUE.fullmatch(text) and text.lower() not in ("true", "false", "null", "none", "nan", "inf"):
        return text  # names, paths, globs: as a user types them on the command line
    # Hydra keeps backslashes in quoted strings, except a run of them before a quote
    # (or the closing quote), which it reads as escapes: double those.
    escaped = re.sub(r"(\\+)(?='|$)", lambda run: run.group(1) * 2, text).replace("'", "\\'")
    return f"'{escaped}'"
