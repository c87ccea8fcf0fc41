"""Builds the plugin manager: hookspecs, built-in tasks, then installed plugins.

Built-in tasks are registered with the same call as third-party plugins (as pytest
and datasette do). Third-party distributions are found through the ``taskhub``
entry-point group; each one is loaded on its own so a broken plugin is reported
with its distribution name and does not take the other tasks down.

Environment switches:
  TASKHUB_DISABLE_PLUGIN_AUTOLOAD=1  load no entry-point plugins (built-ins only)
  TASKHUB_PLUGINS=name,name          load only these entry points
  TASKHUB_TRACE_PLUGINS=1            print every hook call to stderr
"""

from __future__ import annotations

import importlib
import os
import sys
from importlib.metadata import entry_points

import pluggy

from taskhub import hookspecs
from taskhub.errors import TaskhubError
from taskhub.registry import TaskRegistry, check_spec

BUILTIN_PLUGINS = (
    "taskhub_plugins.text_classification",
    "taskhub_plugins.image_classification",
    "taskhub_plugins.qa",
    "taskhub_plugins.fill_mask",
    "taskhub_plugins.ner",
    "taskhub_plugins.text_generation",
    "taskhub_plugins.summarization",
    "taskhub_plugins.translation",
    "taskhub_plugins.audio_classification",
    "taskhub_plugins.asr",
    "taskhub_plugins.image_to_text",
    "taskhub_plugins.image_segmentation",
    "taskhub_plugins.zero_shot_classification",
    "taskhub_plugins.feature_extraction",
    "taskhub_plugins.object_detection",
    "taskhub_plugins.zero_shot_image_classification",
)
ENTRY_POINT_GROUP = "taskhub"

_pm: pluggy.PluginManager | None = None
plugin_load_errors: list[str] = []
plugin_providers: dict[str, str] = {}


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, built on first use."""
    global _pm
    if _pm is None:
        _pm = _build_plugin_manager()
    return _pm


def _build_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("taskhub")
    pm.add_hookspecs(hookspecs)
    for module_name in BUILTIN_PLUGINS:
        _register_module(pm, module_name, lambda name=module_name: importlib.import_module(name), module_name)
    if not os.environ.get("TASKHUB_DISABLE_PLUGIN_AUTOLOAD"):
        _load_entry_points(pm)
    pm.check_pending()
    if os.environ.get("TASKHUB_TRACE_PLUGINS"):
        pm.trace.root.setwriter(lambda message: print(message, end="", file=sys.stderr))
        pm.enable_tracing()
    return pm


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    allowed = os.environ.get("TASKHUB_PLUGINS")
    allow = {name.strip() for name in allowed.split(",") if name.strip()} if allowed else None
    found: set[str] = set()
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.add(ep.name)
        if allow is not None and ep.name not in allow:
            continue
        dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else "unknown distribution"
        if pm.has_plugin(ep.name):
            raise TaskhubError(
                f"entry point '{ep.name}' of {dist} clashes with the already registered plugin {provider_of(ep.name)}"
            )
        _register_module(pm, ep.name, ep.load, f"'{ep.name}' (distribution {dist})")
        plugin_providers[ep.name] = f"{ep.name} (distribution {dist})"
    for name in sorted((allow or set()) - found):
        report_plugin_error(f"TASKHUB_PLUGINS names '{name}', but no installed distribution has a taskhub entry point of that name")


def provider_of(plugin_name: str) -> str:
    """How to name a plugin in messages: with its distribution when it came from one."""
    return plugin_providers.get(plugin_name, plugin_name)


def _register_module(pm: pluggy.PluginManager, name: str, load, description: str) -> None:
    try:
        plugin = load()
    except Exception as exc:  # a broken plugin must not take the other tasks down
        report_plugin_error(f"plugin {description} failed to load: {type(exc).__name__}: {exc}")
        return
    pm.register(plugin, name=name)


def report_plugin_error(message: str) -> None:
    """Warn once (on stderr) about a broken plugin; it is skipped, the others keep working."""
    if message in plugin_load_errors:
        return
    plugin_load_errors.append(message)
    print(f"taskhub: warning: {message}", file=sys.stderr)


def call_hook(name: str, **kwargs) -> list:
    """Call a hook's implementations one by one, as pluggy would (last registered first),
    leaving out the results of any that raise: the plugin is reported, not fatal."""
    results = []
    for impl in reversed(getattr(get_plugin_manager().hook, name).get_hookimpls()):
        try:
            result = impl.function(**{arg: kwargs[arg] for arg in impl.argnames})
        except Exception as exc:  # noqa: BLE001 - any failure of a plugin's code
            report_plugin_error(f"plugin {provider_of(impl.plugin_name)}: {name} failed: {type(exc).__name__}: {exc}")
            continue
        if result is not None:
            results.append(result)
    return results


def get_registry() -> TaskRegistry:
    """The task registry built from the current plugin manager's registrations."""
    registry = TaskRegistry()
    for impl in get_plugin_manager().hook.taskhub_register_tasks.get_hookimpls():
        provider = provider_of(impl.plugin_name)
        # A plugin whose hook raises or returns something unusable is reported and
        # skipped: a broken plugin must not take the other tasks down. Two plugins
        # claiming one task name stays an error (which one the user meant is unknown).
        try:
            specs = list(impl.function() or [])
            for spec in specs:
                check_spec(spec, provider)
        except Exception as exc:  # noqa: BLE001 - any failure of third-party code
            detail = str(exc) if isinstance(exc, TaskhubError) else f"taskhub_register_tasks failed: {type(exc).__name__}: {exc}"
            report_plugin_error(detail if detail.startswith("plugin ") else f"plugin {provider}: {detail}")
            continue
        for spec in specs:
            registry.add(spec, provider)
    return registry


def plugin_searchpath() -> list[str]:
    """Config folders plugins contribute through ``taskhub_config_searchpath``."""
    return [p for paths in call_hook("taskhub_config_searchpath") for p in paths]


def searchpath_overrides(paths: list[str]) -> list[str]:
    return [f"hydra.searchpath=[{','.join(paths)}]"] if paths else []


def task_presets(paths: list[str]) -> set[str]:
    """Names of YAML task presets (``task/<name>.yaml``) in taskhub's and plugins' config folders."""
    from importlib.resources import files

    folders = [str(files("taskhub_conf"))]
    for path in paths:
        if path.startswith("pkg://"):
            try:
                folders.append(str(files(path[len("pkg://") :].replace("/", "."))))
            except ModuleNotFoundError:
                continue
        else:
            folders.append(path.removeprefix("file://"))
    return {
        name[: -len(".yaml")]
        for folder in folders
        if os.path.isdir(os.path.join(folder, "task"))
        for name in os.listdir(os.path.join(folder, "task"))
        if name.endswith(".yaml")
    }
