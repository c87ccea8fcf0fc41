from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TASKHUB_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # only what a test registers itself
# One intra-op thread per test process: the suite runs on 2 xdist workers (plus the CLI
# subprocesses they start), and two OpenMP threads per process on a 2-core machine spin
# against each other (a tiny model's training step measured 70x slower).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["TASKHUB_RESULTS_CACHE"] = tempfile.mkdtemp(prefix="taskhub-results-")  # no reuse across sessions

REPO = Path(__file__).resolve().parent.parent
DIGITS = REPO / "plugins" / "data" / "digits"
FOOD = REPO / "plugins" / "data" / "food_captions"
TASKHUB = str(Path(sys.executable).with_name("taskhub"))


def run_cli(*args: str, cwd=None, env=None, check=True) -> subprocess.CompletedProcess:
    """Run the real `taskhub` console script in a subprocess."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([TASKHUB, *args], capture_output=True, text=True, cwd=cwd, env=full_env, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"taskhub {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def write_jsonl(path, rows) -> Path:
    path = Path(path)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="session")
def text_run(tmp_path_factory) -> Path:
    """A MiniLM text classifier trained on a slice of the bundled data, in-process through
    taskhub.run (the CLI's overrides and runner; training through the console script itself
    is tested in test_generation.py and test_audio_cli.py, and a CLI start-up costs about
    7 s of CPU)."""
    import taskhub

    run_dir = tmp_path_factory.mktemp("text_run")
    taskhub.run(["task=text_classification", "data.limit=200", "train.num_train_epochs=3", "train.learning_rate=2e-4"], run_dir=run_dir)
    return run_dir


@pytest.fixture(scope="session")
def image_run(tmp_path_factory) -> Path:
    """A from-scratch ResNet trained on a slice of the bundled digits, in-process like text_run."""
    import taskhub

    run_dir = tmp_path_factory.mktemp("image_run")
    taskhub.run(["task=image_classification", "data.limit=600", "train.num_train_epochs=6"], run_dir=run_dir)
    return run_dir
