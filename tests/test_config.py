"""Config composition and validation: typed structured configs, clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli

import taskhub
from taskhub import TaskhubError
from taskhub.config import Mode, RunConfig, TrainConfig
from taskhub.modes.trainer import training_arguments


def test_bare_run_composes_the_embedded_default():
    cfg = taskhub.compose()
    assert cfg.task.name == "text_classification"
    assert cfg.mode == Mode.train
    assert cfg.model.name_or_path is None and cfg.model.trust_remote_code is False


@pytest.mark.parametrize("task", ["text_classification", "image_classification"])
@pytest.mark.parametrize("mode", ["train", "evaluate", "predict"])
def test_every_task_and_mode_composes(task, mode):
    cfg = taskhub.compose([f"task={task}", f"mode={mode}", "data.columns.text=review", "train.learning_rate=1e-4"])
    assert cfg.task.name == task and cfg.mode.value == mode
    assert cfg.data.columns == {"text": "review"}
    assert cfg.train.learning_rate == 1e-4


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("model.name_or_pth=x", "name_or_pth"),  # typo in a key
        ("seed=abc", "seed"),  # wrong type
        ("mode=fit", "mode"),  # not an enum value
        ("task.top_k=many", "top_k"),  # wrong type in a task's own options
        ("task.max_lenght=5", "max_lenght"),  # typo in a task's own options
        ("device=tpu", "device"),
        ("train.num_train_epochs=x", "num_train_epochs"),
    ],
)
def test_bad_overrides_are_errors(override, fragment):
    with pytest.raises(TaskhubError, match=fragment):
        taskhub.compose([override])


def test_unknown_task_is_an_error_listing_known_tasks():
    with pytest.raises(TaskhubError, match="known tasks: .*image_classification, .*text_classification"):
        taskhub.compose(["task=translation_x"])


def test_train_options_map_onto_training_arguments(tmp_path):
    from taskhub.manager import get_registry
    from omegaconf import OmegaConf

    cfg = taskhub.compose(["train.num_train_epochs=7", "train.args.max_grad_norm=0.5", "seed=3", "device=cpu"])
    run: RunConfig = OmegaConf.to_object(cfg)
    task = get_registry().get("text_classification").task_cls(run.task, run.model)
    args = training_arguments(task, run, tmp_path, has_validation=True)
    assert args.num_train_epochs == 7  # user value beats the task default (3)
    assert args.learning_rate == task.training_defaults["learning_rate"]  # task default beats the library's
    assert args.max_grad_norm == 0.5 and args.seed == 3 and args.use_cpu
    assert args.eval_strategy == "epoch" and args.report_to == []


def test_unknown_training_argument_is_an_error(tmp_path):
    from omegaconf import OmegaConf

    from taskhub.manager import get_registry

    run = OmegaConf.to_object(taskhub.compose(["train.args.learning_rat=1"]))
    task = get_registry().get("text_classification").task_cls(run.task, run.model)
    with pytest.raises(TaskhubError, match="train.args.learning_rat: not a transformers.TrainingArguments field"):
        training_arguments(task, run, tmp_path, has_validation=False)


def test_train_config_only_passes_what_was_set():
    assert TrainConfig(learning_rate=1e-3, args={"max_grad_norm": 2.0}).set_values() == {
        "learning_rate": 1e-3,
        "max_grad_norm": 2.0,
    }


def test_cli_config_error_exits_non_zero_naming_the_key():
    proc = run_cli("model.name_or_pth=x", check=False)
    assert proc.returncode != 0
    assert "name_or_pth" in proc.stderr


def test_discovery_and_composition_import_neither_torch_nor_transformers():
    code = (
        "import sys, taskhub; from taskhub.manager import get_registry; get_registry();"
        "taskhub.compose(['task=image_classification']);"
        "heavy = [m for m in ('torch', 'transformers', 'datasets') if m in sys.modules];"
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_help_imports_neither_torch_nor_transformers():
    code = (
        "import sys, atexit\n"
        "atexit.register(lambda: print('HEAVY', [m for m in ('torch', 'transformers') if m in sys.modules]))\n"
        "sys.argv = ['taskhub', '--help']\n"
        "from taskhub.cli import main\n"
        "main()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "== Tasks (task=...) ==" in proc.stdout
    assert "HEAVY []" in proc.stdout, proc.stdout[-500:]


def test_config_files_ship_in_the_config_package():
    import taskhub_conf

    root = Path(taskhub_conf.__file__).parent
    assert (root / "config.yaml").is_file() and (root / "hydra" / "help" / "taskhub.yaml").is_file()
