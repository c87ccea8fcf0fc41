"""The ``taskhub`` console script: a thin Hydra app over :func:`taskhub.runner.execute`.

Startup imports neither torch nor transformers: plugin discovery and config
composition only touch task classes and config dataclasses.
"""

from __future__ import annotations

import os
import sys
import traceback
from importlib.resources import files

from taskhub.errors import TaskhubError

#: TASKHUB_DEBUG=1: show tracebacks behind error messages.
DEBUG = os.environ.get("TASKHUB_DEBUG", "") not in ("", "0")


def _task_function(cfg) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from taskhub.runner import execute, record_failure

    hydra_cfg = HydraConfig.get()
    output_dir = hydra_cfg.runtime.output_dir
    if hydra_cfg.mode != RunMode.MULTIRUN:
        try:
            execute(cfg, output_dir)
        except TaskhubError as err:
            if DEBUG:
                traceback.print_exc()
            _fail(str(err))
        except Exception as err:  # a bug or an environment problem: one line, the traceback on request
            if DEBUG:
                raise
            print(f"taskhub: error: {type(err).__name__}: {err} (run with TASKHUB_DEBUG=1 for the traceback)", file=sys.stderr)
            sys.exit(1)
        return
    job = {"job": hydra_cfg.job.num, "overrides": list(hydra_cfg.overrides.task)}
    try:
        execute(cfg, output_dir, job=job)
    except Exception as err:  # a failed job is recorded in the table and the sweep goes on
        record_failure(cfg, output_dir, err, job)
        print(f"taskhub: error: job {job['job']} ({' '.join(job['overrides'])}): {err}", file=sys.stderr)
        if cfg.fail_fast:
            from taskhub.sweeps import write_table

            write_table(hydra_cfg.sweep.dir)
            print("taskhub: fail_fast=true: stopping the sweep", file=sys.stderr)
            sys.exit(1)


def _fail(message: str) -> None:
    print(f"taskhub: error: {message}", file=sys.stderr)
    sys.exit(2)


def _check_task_names(argv: list[str], registry, presets: set[str]) -> None:
    """Unknown task names get one line listing the known ones (before Hydra's longer message)."""
    for arg in argv:
        key, _, value = arg.partition("=")
        if key.lstrip("+~") == "task" and value:
            for name in value.split(","):
                if name not in registry and name not in presets:
                    _fail(registry.unknown_task_message(name))


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


def main() -> None:
    import hydra

    from taskhub.callbacks import last_sweep
    from taskhub.config import normalize_overrides, plugin_searchpath, register_configs, searchpath_overrides, task_presets
    from taskhub.manager import get_registry
    from taskhub.sweeps import expand_overrides, register_resolvers

    try:
        registry = get_registry()
    except TaskhubError as err:
        _fail(str(err))
    try:
        searchpath = plugin_searchpath()
        _check_task_names(sys.argv[1:], registry, task_presets(searchpath))
        _check_overrides(sys.argv[1:])
        register_configs(registry)
        register_resolvers()
        sys.argv[1:] = _with_overrides(normalize_overrides(expand_overrides(sys.argv[1:]), registry), searchpath_overrides(searchpath))
    except TaskhubError as err:
        _fail(str(err))
    config_dir = str(files("taskhub_conf"))
    hydra.main(config_path=config_dir, config_name="config", version_base="1.3")(_task_function)()
    failed = last_sweep["failed"]
    if failed:
        print(f"taskhub: {failed} of {len(last_sweep['rows'])} job(s) failed (see the error column)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
