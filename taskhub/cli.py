"""The ``taskhub`` console script: a thin Hydra app over :func:`taskhub.runner.execute`.

Startup imports neither torch nor transformers: plugin discovery and config
composition only touch task classes and config dataclasses.
"""

from __future__ import annotations

import sys
from importlib.resources import files

from taskhub.errors import TaskhubError

_failures: list[str] = []


def _task_function(cfg) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from taskhub.runner import execute

    hydra_cfg = HydraConfig.get()
    try:
        execute(cfg, hydra_cfg.runtime.output_dir)
    except TaskhubError as err:
        if hydra_cfg.mode != RunMode.MULTIRUN:
            _fail(str(err))
        # In a sweep, report the failed job and go on with the others.
        _failures.append(f"job {hydra_cfg.job.num} ({' '.join(hydra_cfg.overrides.task)}): {err}")
        print(f"taskhub: error: {err}", file=sys.stderr)


def _fail(message: str) -> None:
    print(f"taskhub: error: {message}", file=sys.stderr)
    sys.exit(2)


def _check_task_names(argv: list[str], registry) -> None:
    """Unknown task names get one line listing the known ones (before Hydra's longer message)."""
    for arg in argv:
        key, _, value = arg.partition("=")
        if key.lstrip("+~") == "task" and value:
            for name in value.split(","):
                if name not in registry:
                    _fail(registry.unknown_task_message(name))


def main() -> None:
    import hydra

    from taskhub.config import normalize_overrides, register_configs
    from taskhub.manager import get_registry

    try:
        registry = get_registry()
    except TaskhubError as err:
        _fail(str(err))
    _check_task_names(sys.argv[1:], registry)
    register_configs(registry)
    sys.argv[1:] = normalize_overrides(sys.argv[1:], registry)
    config_dir = str(files("taskhub_conf"))
    hydra.main(config_path=config_dir, config_name="config", version_base="1.3")(_task_function)()
    if _failures:
        print(f"taskhub: {len(_failures)} job(s) failed:", *_failures, sep="\n  ", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
