"""Sweeps on the cluster launchers (Ray, submitit) give the basic launcher's results table."""

from __future__ import annotations

import pytest
from conftest import run_cli
from test_sweeps import make_checkpoint, table

pytestmark = pytest.mark.slow

#: Columns that measure time, not results.
TIMING = ("runtime", "per_second", "preparation_time", "examples_per_s", "wall_time_s", "job_dir")


@pytest.fixture(scope="module")
def two_checkpoints(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("checkpoints")
    for i in (1, 2):
        make_checkpoint(root / f"checkpoint-{i}", seed=i)
    return f"{root / 'checkpoint-1'},{root / 'checkpoint-2'}"


def sweep_args(checkpoints: str) -> list[str]:
    return ["-m", "mode=evaluate", "task=text_classification", f"model.name_or_path={checkpoints}", "data.limit=8", "results_cache=null"]


@pytest.fixture(scope="module")
def basic(two_checkpoints, tmp_path_factory) -> list[dict]:
    """The basic launcher's table, the reference for every other launcher."""
    sweep_dir = tmp_path_factory.mktemp("basic")
    proc = run_cli(*sweep_args(two_checkpoints), "progress=true", f"hydra.sweep.dir={sweep_dir}")
    assert "sweep: 100%" in proc.stderr and "2/2 [" in proc.stderr  # the bar of jobs done
    return results(sweep_dir)


def results(sweep_dir) -> list[dict]:
    """The table's rows by job, without timings; paths inside the sweep dir made relative."""
    rows = ({k: v.replace(str(sweep_dir), "<sweep>") if isinstance(v, str) else v for k, v in row.items() if not k.endswith(TIMING)} for row in table(sweep_dir))
    return sorted(rows, key=lambda r: r["job"])


@pytest.mark.parametrize(
    "launcher",
    [
        pytest.param(["hydra/launcher=ray", "+hydra.launcher.ray.init.num_cpus=2", "+hydra.launcher.ray.init.include_dashboard=false"], id="ray"),
        pytest.param(["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10"], id="submitit_local"),
    ],
)
def test_cluster_launcher_table_equals_the_basic_one(two_checkpoints, basic, tmp_path, launcher):
    run_cli(*sweep_args(two_checkpoints), *launcher, f"hydra.sweep.dir={tmp_path / 'other'}")
    other = results(tmp_path / "other")
    assert [(r["job"], r["status"], r["model"]) for r in other] == [(0, "ok", two_checkpoints.split(",")[0]), (1, "ok", two_checkpoints.split(",")[1])]
    assert [r.keys() for r in other] == [r.keys() for r in basic]
    for mine, theirs in zip(other, basic):  # same metrics; floats to within a thread count's rounding
        exact = {k for k, v in theirs.items() if not isinstance(v, float)}
        assert {k: mine[k] for k in exact} == {k: theirs[k] for k in exact}
        assert {k: mine[k] for k in theirs.keys() - exact} == pytest.approx({k: theirs[k] for k in theirs.keys() - exact}, abs=1e-5)


def test_slurm_preset_composes_onto_submitit_slurm():
    """conf/hydra/launcher/slurm.yaml: submitit_slurm with taskhub's defaults, each key overridable."""
    from hydra import compose, initialize_config_module

    import taskhub

    taskhub.compose()  # registers the task configs
    with initialize_config_module("taskhub_conf", version_base="1.3"):
        cfg = compose("config", overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.gpus_per_node=4"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher.partition, launcher.gpus_per_node, launcher.timeout_min) == ("gpu", 4, 60)
