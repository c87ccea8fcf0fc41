"""The built wheel ships the core, the built-in plugins and the configs, and runs from anywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv

import pytest
from conftest import REPO

pytestmark = pytest.mark.slow


def test_wheel_installs_and_runs_from_a_temporary_directory(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(REPO)],
        check=True, capture_output=True, timeout=300,
    )
    wheel = next(dist.glob("taskhub-*.whl"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    site = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True, check=True).stdout.strip()
    # The wheel itself is installed by the fresh venv's pip (console script included);
    # the heavy dependencies come from the test environment through a .pth line, so the
    # test needs no network and no second multi-GB torch install.
    subprocess.run([py, "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)], check=True, capture_output=True, timeout=300)
    deps = sysconfig.get_paths()["purelib"]
    with open(os.path.join(site, "_taskhub_test_deps.pth"), "w") as f:
        f.write(deps + "\n")

    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    check = subprocess.run(
        [py, "-c", "import taskhub, taskhub_plugins, taskhub_conf; print(taskhub.__file__, taskhub_plugins.__file__, taskhub_conf.__file__)"],
        cwd=workdir, capture_output=True, text=True, check=True,
    )
    assert all(path.startswith(site) for path in check.stdout.split()), check.stdout

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PATH": f"{env_dir / 'bin'}:{os.environ['PATH']}"}
    launcher = [str(env_dir / "bin" / "taskhub")]
    help_proc = subprocess.run([*launcher, "--help"], cwd=workdir, env=env, capture_output=True, text=True, timeout=120)
    assert help_proc.returncode == 0, help_proc.stderr
    assert "image_classification" in help_proc.stdout and "text_classification" in help_proc.stdout

    job = subprocess.run(
        [*launcher, "task=image_classification", "data.limit=60", "train.num_train_epochs=1", "hydra.run.dir=run"],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=300,
    )
    assert job.returncode == 0, job.stderr[-2000:]
    result = json.loads((workdir / "run" / "metrics.json").read_text())
    assert result["task"] == "image_classification" and "test_accuracy" in result["metrics"]
    assert (workdir / "run" / "model" / "config.json").is_file()
