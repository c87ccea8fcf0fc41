"""The ``taskhub`` console script: a thin Hydra app over :func:`taskhub.runner.execute`.

Startup imports neither torch nor transformers: plugin discovery and config
composition only touch task classes and config dataclasses.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from importlib.resources import files

from taskhub.engine.sharding import Relayed, distributed, is_main, on_main, shutdown
from taskhub.errors import TaskhubError
from taskhub.provenance import default_task

#: TASKHUB_DEBUG=1: show tracebacks behind error messages.
DEBUG = os.environ.get("TASKHUB_DEBUG", "") not in ("", "0")


def _task_function(cfg) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from taskhub.launchers import share_machine
    from taskhub.runner import execute, record_failure

    hydra_cfg = HydraConfig.get()
    output_dir = hydra_cfg.runtime.output_dir
    if getattr(cfg.mode, "value", cfg.mode) not in ("report", "push"):  # they load no model or data
        quiet_libraries()
    if not is_main():  # under torchrun: the main process says what the run does
        logging.getLogger("taskhub").setLevel(logging.WARNING)
    if hydra_cfg.mode != RunMode.MULTIRUN:
        try:
            execute(cfg, output_dir)
        except KeyboardInterrupt:
            _interrupted(cfg, output_dir, hydra_cfg.overrides.task)
        except TaskhubError as err:
            if DEBUG:
                traceback.print_exc()
            _fail(err)
        except Exception as err:  # a bug or an environment problem: one line, the traceback on request
            if DEBUG:
                raise
            print(f"taskhub: error: {type(err).__name__}: {err} (run with TASKHUB_DEBUG=1 for the traceback)", file=sys.stderr)
            sys.exit(1)
        return
    job = {"job": hydra_cfg.job.num, "overrides": list(hydra_cfg.overrides.task)}
    share_machine(hydra_cfg)
    try:
        result = execute(cfg, output_dir, job=job)
    except KeyboardInterrupt:
        from taskhub.sweeps import write_table

        write_table(hydra_cfg.sweep.dir)
        print(
            f"taskhub: interrupted during job {job['job']} ({' '.join(job['overrides'])}); the finished jobs are in "
            f"{hydra_cfg.sweep.dir}/results.md; re-run the same command with hydra.sweep.dir={hydra_cfg.sweep.dir} "
            "to reuse their results",
            file=sys.stderr,
        )
        sys.exit(130)
    except Exception as err:  # a failed job is recorded in the table and the sweep goes on
        record_failure(cfg, output_dir, err, job)
        print(f"taskhub: error: job {job['job']} ({' '.join(job['overrides'])}): {err}", file=sys.stderr)
        if cfg.fail_fast:
            from taskhub.sweeps import write_table

            write_table(hydra_cfg.sweep.dir)
            print("taskhub: fail_fast=true: stopping the sweep", file=sys.stderr)
            sys.exit(1)
        return float("nan")
    from taskhub.manager import get_registry
    from taskhub.search import objective

    return objective(result, get_registry().get(cfg.task.name).task_cls.main_metric)  # what a search sweeper (Optuna) optimises


def quiet_libraries() -> None:
    """Keep the libraries' loading bars and reports (transformers' per-checkpoint LOAD
    REPORT, weight-loading bars, datasets' split bars) from burying the run's own lines;
    training progress and warnings that matter stay. TASKHUB_DEBUG=1 shows everything."""
    if DEBUG:
        return
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()


#: How to continue each mode after an interruption, in the same run dir.
RESUME_HINTS = {"train": "train.resume=auto", "predict": "predict.resume=true"}


def _interrupted(cfg, run_dir: str, overrides) -> None:
    """Ctrl-C: one line saying what stopped where and how to continue, not a traceback."""
    mode = getattr(cfg.mode, "value", cfg.mode)
    hint = RESUME_HINTS.get(mode)
    kept = [o for o in overrides if not o.startswith(("train.resume=", "predict.resume="))]
    again = " ".join([*kept, f"hydra.run.dir={run_dir}", *([hint] if hint else [])])
    print(f"taskhub: interrupted: {cfg.task.name} {mode} in {run_dir}; to {'continue' if hint else 'run it again'}: taskhub {again}", file=sys.stderr)
    sys.exit(130)


def _fail(error: str | TaskhubError) -> None:
    """One line and exit 2; the main process's error relayed to the other ranks is printed
    by the main one only."""
    if not isinstance(error, Relayed):
        print(f"taskhub: error: {error}", file=sys.stderr)
    sys.exit(2)


def _check_overrides(argv: list[str]) -> None:
    """A plain run's overrides are composed once up front, so a bad key or value is one
    line with a suggestion (Hydra's own report spans several lines and a stack-trace hint).
    Runs with flags (-m, --cfg, ...) are left to Hydra."""
    if any(arg.startswith("-") for arg in argv):
        return
    from taskhub.api import compose

    compose([arg for arg in argv if not arg.lstrip("+~").startswith("hydra.")])


_INFO_CHOICES = {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}
_OPTIONS_WITH_VALUES = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd", "--experimental-rerun", "--info", "-i"}


def _with_overrides(argv: list[str], extra: list[str]) -> list[str]:
    """Add overrides next to the user's own (argparse takes one run of positionals)."""
    if not extra:
        return argv
    index, expects_value = len(argv), False
    for i, arg in enumerate(argv):
        if expects_value:
            expects_value = False
        elif arg in _OPTIONS_WITH_VALUES:
            expects_value = arg not in ("--info", "-i") or (i + 1 < len(argv) and argv[i + 1] in _INFO_CHOICES)
        elif not arg.startswith("-"):
            index = i
            break
    return argv[:index] + extra + argv[index:]


def _wants_help(argv: list[str]) -> bool:
    return any(arg in ("--help", "-h") for arg in argv) and "--hydra-help" not in argv


def _print_help(argv: list[str], registry) -> None:
    """Answer ``--help`` from the registry and the schema, without Hydra.

    Hydra's help lists every config group by building a config repository per group,
    each deep-copying the ConfigStore: most of a second before a word is printed.
    Here only a run that names a YAML task preset or another config group composes.
    """
    from omegaconf import OmegaConf

    from taskhub.config import RunConfig
    from taskhub.manager import plugin_searchpath, task_presets

    conf = files("taskhub_conf")
    text = OmegaConf.load(str(conf / "hydra" / "help" / "taskhub.yaml"))
    overrides = [arg for arg in argv if not arg.startswith("-") and not arg.lstrip("+~").startswith("hydra.")]
    presets = task_presets(plugin_searchpath())
    task_name = default_task()
    plain = []
    for override in overrides:
        key, _, value = override.partition("=")
        if key == "task" and value in registry:
            task_name = value
        else:
            plain.append(override)
    try:
        if any("." not in o.partition("=")[0] for o in plain):  # a preset or another group: compose
            from taskhub.api import compose

            cfg = compose(overrides)
        else:
            root = {k: v for k, v in OmegaConf.load(str(conf / "config.yaml")).items() if k not in ("defaults", "hydra")}
            cfg = OmegaConf.merge(OmegaConf.structured(RunConfig(task=registry.get(task_name).config_cls())), root)
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist([o.lstrip("+") for o in plain]))
    except Exception as err:  # the overrides themselves are wrong: say so in one line
        _fail(str(err).splitlines()[0])
    width = max(len(name) for name in registry.names())
    tasks = [f"  {spec.name:<{width}}  {spec.summary}" for spec in sorted(registry, key=lambda s: s.name)]
    tasks += [f"  {name:<{width}}  (YAML preset)" for name in sorted(presets - set(registry.names()))]
    groups = sorted(p.name[: -len(".yaml")] for p in (conf / "sweep").iterdir() if p.name.endswith(".yaml"))
    print(text.header.rstrip("\n"))
    print("== Tasks (task=...) ==")
    print("\n".join(tasks))
    print(f"\n== Sweep presets (+sweep=...) ==\n  {', '.join(groups)}\n")
    print("== Options ==\nOverride any of them, e.g. train.num_train_epochs=1 data.limit=100 (key = value  [accepted values])\n")
    print(render_options(OmegaConf.to_object(cfg)))
    print()
    print(text.footer.rstrip("\n"))


def render_options(run) -> str:
    """Every option of a composed run: key, current value, the values it accepts, and what
    it does; the task's own options first, as the ones a user of that task reaches for."""
    import textwrap

    from taskhub.options import describe_options

    rows = describe_options(run)
    rows.sort(key=lambda row: not row[0].startswith("task."))
    lines = []
    for key, accepted, value, doc in rows:
        shown = "null" if value is None else str(value).lower() if isinstance(value, bool) else value
        lines.append(f"  {key} = {shown}  [{accepted}]")
        if doc:
            lines.extend(textwrap.wrap(doc, width=100, initial_indent="      ", subsequent_indent="      "))
    return "\n".join(lines)


def _claim_run_dir(argv: list[str]) -> list[str]:
    """Check and lock a plain run's dir before Hydra writes ``.hydra/`` into it: a dir that
    cannot be written, or that another run holds, is one line (see :mod:`taskhub.rundir`).
    Sweeps and runs with flags are left to the runner, which locks each job's dir."""
    if any(arg.startswith("-") for arg in argv):
        return argv
    from taskhub.rundir import claim_cli_run_dir

    if not distributed():
        return claim_cli_run_dir(argv)
    # torchrun / accelerate: the main process resolves the dir once (each rank's ${now}
    # could differ), locks and checks it; the others run there without writing .hydra/.
    pinned = on_main(claim_cli_run_dir, argv)
    return pinned if is_main() else [*pinned, "hydra.output_subdir=null", "hydra/job_logging=stdout"]


def _task_name(argv: list[str]) -> str:
    """The task a command runs (the first of a sweep's), for settings that depend on it."""
    named = [arg.partition("=")[2].split(",")[0] for arg in argv if arg.partition("=")[0].lstrip("+~") == "task"]
    return named[-1] if named else default_task()


def main() -> None:
    try:
        _main()
    except KeyboardInterrupt:  # before a run started (the runs say more themselves)
        print("taskhub: interrupted before the run started", file=sys.stderr)
        sys.exit(130)


def _main() -> None:
    from taskhub.manager import get_registry

    try:
        registry = get_registry()
    except TaskhubError as err:
        _fail(str(err))
    if _wants_help(sys.argv[1:]):
        try:
            _print_help(sys.argv[1:], registry)
            sys.stdout.flush()
        except BrokenPipeError:  # `taskhub --help | head`: the reader has all it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)

    import hydra

    from taskhub.api import prepare_overrides
    from taskhub.callbacks import last_sweep
    from taskhub.search import direction_overrides
    try:
        argv, added = prepare_overrides(sys.argv[1:], registry)
        _check_overrides(sys.argv[1:])
        search = direction_overrides(argv + added, lambda: registry.get(_task_name(argv + added)).task_cls.main_metric)
        sys.argv[1:] = _with_overrides(argv, [*added, *search])
        if distributed() and any(arg in ("-m", "--multirun") for arg in sys.argv[1:]):
            raise TaskhubError("sweeps (-m) do not run under torchrun / accelerate launch: launch one per job")
        sys.argv[1:] = _claim_run_dir(sys.argv[1:])
    except TaskhubError as err:
        _fail(err)
    config_dir = str(files("taskhub_conf"))
    hydra.main(config_path=config_dir, config_name="config", version_base="1.3")(_task_function)()
    shutdown()
    failed = last_sweep["failed"]
    if failed:
        print(f"taskhub: {failed} of {len(last_sweep['rows'])} job(s) failed (see the error column)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
