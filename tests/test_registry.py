"""The pluggy registry: built-ins, runtime and entry-point plugins, duplicates, broken plugins."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import dataclass

import pytest
from conftest import TASKHUB, run_cli

import taskhub
from taskhub import TaskConfig, TaskhubError, TaskSpec, hookimpl
from taskhub.classification import ClassificationTask
from taskhub.manager import get_plugin_manager, get_registry


@dataclass
class EchoConfig(TaskConfig):
    name: str = "echo_sentiment"
    shout: bool = False


class EchoSentiment(ClassificationTask):
    """A runtime-registered test task."""

    name = "echo_sentiment"
    config_cls = EchoConfig
    modality = "text"
    auto_model = "AutoModelForSequenceClassification"
    input_columns = ("text",)

    def preprocess(self, batch):
        return self.processor(batch["text"], truncation=True)


class EchoPlugin:
    @hookimpl
    def taskhub_register_tasks(self):
        return [TaskSpec("echo_sentiment", EchoSentiment, EchoConfig)]


class DuplicatePlugin:
    @hookimpl
    def taskhub_register_tasks(self):
        return [TaskSpec("text_classification", EchoSentiment, EchoConfig)]


@pytest.fixture
def registered():
    pm = get_plugin_manager()
    plugins = []

    def register(plugin, name):
        pm.register(plugin, name=name)
        plugins.append(name)

    yield register
    for name in plugins:
        pm.unregister(name=name)


def test_builtins_are_registered_like_plugins():
    from taskhub.manager import BUILTIN_PLUGINS

    registry = get_registry()
    assert {"image_classification", "text_classification"} <= set(registry.names())
    assert {registry.provider(name) for name in registry.names()} == set(BUILTIN_PLUGINS)
    assert registry.provider("text_classification") == "taskhub_plugins.text_classification"
    assert get_plugin_manager().has_plugin("taskhub_plugins.image_classification")


def test_runtime_plugin_appears_as_task_and_config_option(registered):
    registered(EchoPlugin(), "echo_plugin")
    assert "echo_sentiment" in get_registry()
    cfg = taskhub.compose(["task=echo_sentiment", "task.shout=true"])
    assert cfg.task.name == "echo_sentiment" and cfg.task.shout is True
    with pytest.raises(TaskhubError, match="shout"):
        taskhub.compose(["task=echo_sentiment", "task.shout=maybe"])


def test_runtime_plugin_appears_in_help(registered, monkeypatch, capsys):
    from taskhub import cli

    registered(EchoPlugin(), "echo_plugin")
    monkeypatch.setattr(sys, "argv", ["taskhub", "--help"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code in (0, None)
    assert "echo_sentiment" in capsys.readouterr().out


def test_duplicate_task_name_names_both_providers(registered):
    registered(DuplicatePlugin(), "dup_plugin")
    with pytest.raises(TaskhubError) as err:
        get_registry()
    assert "text_classification" in str(err.value)
    assert "taskhub_plugins.text_classification" in str(err.value) and "dup_plugin" in str(err.value)


def test_unknown_task_lists_known_ones():
    with pytest.raises(TaskhubError) as err:
        get_registry().get("text_clasification")
    message = str(err.value)
    assert "did you mean 'text_classification'" in message
    assert f"known tasks: {', '.join(get_registry().names())}" in message


def _make_distribution(root, dist, module, source, entry_name=None):
    """A minimal installed distribution on a path: one module + dist-info with an entry point."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[taskhub]\n{entry_name or module} = {module}\n")


EXTERNAL_PLUGIN = """
    from dataclasses import dataclass
    from taskhub import TaskConfig, TaskSpec, hookimpl
    from taskhub.classification import ClassificationTask

    @dataclass
    class ReviewConfig(TaskConfig):
        name: str = "review_stars"

    class ReviewStars(ClassificationTask):
        '''Star ratings for product reviews (an external plugin).'''
        name = "review_stars"
        config_cls = ReviewConfig
        modality = "text"
        auto_model = "AutoModelForSequenceClassification"
        input_columns = ("text",)
        def preprocess(self, batch):
            return self.processor(batch["text"])

    @hookimpl
    def taskhub_register_tasks():
        return [TaskSpec("review_stars", ReviewStars, ReviewConfig)]
"""


def _taskhub_with_path(path, *args):
    env = {"PYTHONPATH": str(path), "TASKHUB_DISABLE_PLUGIN_AUTOLOAD": ""}
    import os

    return subprocess.run([TASKHUB, *args], capture_output=True, text=True, env={**os.environ, **env}, timeout=120)


def test_entry_point_plugin_needs_no_taskhub_change(tmp_path):
    _make_distribution(tmp_path, "taskhub-reviews", "taskhub_reviews", EXTERNAL_PLUGIN)
    proc = _taskhub_with_path(tmp_path, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "review_stars" in proc.stdout
    proc = _taskhub_with_path(tmp_path, "task=review_stars", "--cfg", "job")
    assert proc.returncode == 0, proc.stderr
    assert "name: review_stars" in proc.stdout


def test_broken_plugin_is_reported_and_others_still_work(tmp_path):
    _make_distribution(tmp_path, "taskhub-broken", "taskhub_broken", "import not_a_module_anywhere\n")
    proc = _taskhub_with_path(tmp_path, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "taskhub-broken" in proc.stderr and "ModuleNotFoundError" in proc.stderr
    assert "text_classification" in proc.stdout


def test_entry_point_duplicating_a_builtin_task_is_an_error(tmp_path):
    _make_distribution(tmp_path, "taskhub-clash", "taskhub_clash", EXTERNAL_PLUGIN.replace('"review_stars"', '"text_classification"'))
    proc = _taskhub_with_path(tmp_path, "--help")
    assert proc.returncode == 2
    line = proc.stderr.strip()
    assert len(line.splitlines()) == 1
    assert "taskhub_plugins.text_classification" in line and "taskhub-clash" in line


def test_unknown_task_on_the_command_line_is_one_line():
    proc = run_cli("task=zzzz", check=False)
    assert proc.returncode == 2
    known = ", ".join(get_registry().names())
    assert proc.stderr.strip().splitlines() == [f"taskhub: error: unknown task 'zzzz'; known tasks: {known}"]


def test_allow_list_loads_only_the_named_entry_points(tmp_path):
    _make_distribution(tmp_path, "taskhub-reviews", "taskhub_reviews", EXTERNAL_PLUGIN)
    _make_distribution(tmp_path, "taskhub-broken", "taskhub_broken", "import not_a_module_anywhere\n")
    env = {"PYTHONPATH": str(tmp_path), "TASKHUB_DISABLE_PLUGIN_AUTOLOAD": "", "TASKHUB_PLUGINS": "taskhub_reviews"}
    import os

    proc = subprocess.run([TASKHUB, "--help"], capture_output=True, text=True, env={**os.environ, **env}, timeout=120)
    assert proc.returncode == 0 and "review_stars" in proc.stdout
    assert "taskhub-broken" not in proc.stderr  # not on the allow-list: never imported

    env["TASKHUB_PLUGINS"] = "taskhub_reviews,taskhub_typo"
    proc = subprocess.run([TASKHUB, "--help"], capture_output=True, text=True, env={**os.environ, **env}, timeout=120)
    assert proc.returncode == 0 and "review_stars" in proc.stdout
    assert "TASKHUB_PLUGINS names 'taskhub_typo'" in proc.stderr  # a typo in the allow-list is not silent


def test_disabling_autoload_loads_no_entry_point_plugins(tmp_path):
    _make_distribution(tmp_path, "taskhub-reviews", "taskhub_reviews", EXTERNAL_PLUGIN)
    _make_distribution(tmp_path, "taskhub-broken", "taskhub_broken", "import not_a_module_anywhere\n")
    import os

    env = {"PYTHONPATH": str(tmp_path), "TASKHUB_DISABLE_PLUGIN_AUTOLOAD": "1"}
    proc = subprocess.run([TASKHUB, "--help"], capture_output=True, text=True, env={**os.environ, **env}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "review_stars" not in proc.stdout and "text_classification" in proc.stdout  # built-ins only
    assert "taskhub-broken" not in proc.stderr  # never imported


@dataclass
class UnstructurableConfig(TaskConfig):
    name: str = "unstructurable"
    callback: object = print  # not a type a structured config can hold


class RaisingPlugin:
    @hookimpl
    def taskhub_register_tasks(self):
        raise RuntimeError("cannot reach the license server")


class NotASpecPlugin:
    @hookimpl
    def taskhub_register_tasks(self):
        return [("echo_sentiment", EchoSentiment, EchoConfig)]


class NotATaskPlugin:
    @hookimpl
    def taskhub_register_tasks(self):
        return [TaskSpec("not_a_task", dict, EchoConfig)]


class BadConfigPlugin:
    @hookimpl
    def taskhub_register_tasks(self):
        return [TaskSpec("unstructurable", EchoSentiment, UnstructurableConfig)]


@pytest.mark.parametrize(
    "plugin, fragment",
    [
        (RaisingPlugin(), "taskhub_register_tasks failed: RuntimeError: cannot reach the license server"),
        (NotASpecPlugin(), "taskhub_register_tasks must return TaskSpec objects, got tuple"),
        (NotATaskPlugin(), "task 'not_a_task' task_cls must subclass taskhub.Task"),
        (BadConfigPlugin(), "task 'unstructurable' config_cls is not a valid structured config"),
    ],
)
def test_a_plugin_whose_registration_fails_is_skipped_with_a_warning(registered, capsys, plugin, fragment):
    from taskhub import manager

    name = f"broken_{type(plugin).__name__}"
    registered(plugin, name)
    registry = get_registry()  # no exception: the broken plugin must not take the other tasks down
    assert "text_classification" in registry and "not_a_task" not in registry and "unstructurable" not in registry
    assert taskhub.compose(["task=text_classification"]).task.name == "text_classification"
    warning = f"taskhub: warning: plugin {name}: {fragment}"
    assert warning in capsys.readouterr().err
    get_registry()
    assert warning not in capsys.readouterr().err  # reported once per process
    manager.plugin_load_errors[:] = [e for e in manager.plugin_load_errors if name not in e]
