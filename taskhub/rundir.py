"""A run dir is owned by one run at a time and holds the outputs of one mode.

Ownership is an advisory lock (``fcntl.flock``) on ``<run dir>/.taskhub.lock``, taken
before the run writes anything (the CLI takes it before Hydra writes ``.hydra/``) and
held until the run ends; the kernel drops it when the holder dies, so a killed run
never leaves a stale lock. The file names the holder (pid, host, mode, start time) for
the one-line refusal a second run gets. Every process that runs a job (a sweep job, a
Ray worker, a rank) goes through :func:`claim`, so each gets the same protection; the
lock only excludes processes that share the file system's locks (local disks; NFS
only with working ``flock``).
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from taskhub.errors import TaskhubError

LOCK_FILE = ".taskhub.lock"
#: Files whose presence tells which mode's outputs a run dir holds (besides metrics.json).
#: Glob patterns: predictions in any format (predict.output) and the partial files of
#: one process or of each rank.
MODE_OUTPUTS = {"model": "train", "checkpoints": "train", "predictions.*": "predict", "predictions": "predict", ".predictions.partial*.jsonl": "predict"}


@dataclass
class _Hold:
    fd: int
    thread: int
    count: int


_held: dict[str, _Hold] = {}


def check_run_dir(run_dir: str | os.PathLike) -> None:
    """Refuse in one line a run dir that cannot be made or written (a path under a regular
    file, an existing file, an unwritable folder), before anything is written."""
    path = Path(os.path.abspath(run_dir))
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "it is a file" if existing == path else f"{existing} is a file"
        raise TaskhubError(f"cannot write to the run dir {run_dir}: {where}, not a folder; pick another hydra.run.dir")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise TaskhubError(f"cannot write to the run dir {run_dir}: {existing} is not writable; pick another hydra.run.dir")


def check_outputs(run_dir: str | os.PathLike, mode: str) -> None:
    """One run dir, one mode: a predict into a training run's dir would replace its
    ``metrics.json``. A run of the same mode replaces (or resumes) its own outputs."""
    held = outputs_mode(Path(run_dir))
    if held is not None and held != mode:
        raise TaskhubError(
            f"run dir {run_dir} holds the outputs of a {held} run, which a {mode} run would replace; "
            f"pick another dir, e.g. hydra.run.dir={os.path.join(run_dir, mode)}"
        )


def outputs_mode(run_dir: Path) -> str | None:
    """The mode whose outputs the run dir holds (None: no run's outputs)."""
    try:
        mode = json.loads((run_dir / "metrics.json").read_text()).get("mode")
    except (OSError, ValueError, AttributeError):
        mode = None
    if mode:
        return mode
    return next((mode for pattern, mode in MODE_OUTPUTS.items() if any(run_dir.glob(pattern))), None)


def acquire(run_dir: str | os.PathLike, mode: str) -> str:
    """Make the run dir and lock it for this process (re-entrant within one thread: the
    CLI locks before Hydra starts, the runner again); returns the key for :func:`release`."""
    check_run_dir(run_dir)
    try:
        os.makedirs(run_dir, exist_ok=True)
    except OSError as exc:
        raise TaskhubError(f"cannot write to the run dir {run_dir}: {exc.strerror or exc}") from None
    key = os.path.realpath(run_dir)
    hold = _held.get(key)
    if hold is not None:
        if hold.thread != threading.get_ident():
            raise TaskhubError(f"run dir {run_dir} is in use by another run of this process (pid {os.getpid()}); pick another hydra.run.dir")
        hold.count += 1
        return key
    try:
        fd = os.open(os.path.join(key, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise TaskhubError(f"cannot write to the run dir {run_dir}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _describe_holder(fd)
        os.close(fd)
        raise TaskhubError(f"run dir {run_dir} is in use by another taskhub run ({holder}); wait for it to end or pick another hydra.run.dir") from None
    os.ftruncate(fd, 0)
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "mode": mode, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
    _held[key] = _Hold(fd, threading.get_ident(), 1)
    return key


def release(key: str) -> None:
    hold = _held[key]
    hold.count -= 1
    if hold.count == 0:
        del _held[key]
        os.close(hold.fd)  # drops the lock; the file stays (removing it would race a new holder)


@contextmanager
def claim(run_dir: str | os.PathLike, mode: str) -> Iterator[None]:
    """Own the run dir for the block: see :func:`acquire`."""
    key = acquire(run_dir, mode)
    try:
        yield
    finally:
        release(key)


def _describe_holder(fd: int) -> str:
    try:
        holder = json.loads(os.pread(fd, 4096, 0))
    except ValueError:  # the holder has locked it and not yet written its name
        return "pid unknown"
    host = "" if holder.get("host") == socket.gethostname() else f" on {holder.get('host')}"
    return f"pid {holder.get('pid')}{host}, mode={holder.get('mode')}, since {holder.get('started')}"


@contextmanager
def writing(what: str | os.PathLike, then: str = "") -> Iterator[None]:
    """An OSError while writing ``what`` (a full disk, a quota) as one line naming it,
    and ``then``, what to do about it."""
    try:
        yield
    except OSError as exc:
        raise TaskhubError(f"cannot write {what}: {exc.strerror or exc}" + (f"; {then}" if then else "")) from None


def claim_cli_run_dir(overrides: list[str]) -> list[str]:
    """For a plain CLI run: resolve its run dir as Hydra would, check it and lock it for the
    whole process before Hydra writes into it; the overrides come back with the dir pinned,
    so Hydra uses that very dir (``${now:...}`` would otherwise be resolved again)."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from taskhub.config import CONFIG_MODULE

    with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    mode = OmegaConf.select(cfg, "mode")
    mode = getattr(mode, "value", mode)
    if mode in ("demo", "report"):  # they write no run outputs
        return overrides
    run_dir = OmegaConf.select(cfg, "hydra.run.dir")
    acquire(run_dir, mode)  # held until the process ends
    check_outputs(run_dir, mode)
    if any(o.partition("=")[0].lstrip("+~") == "hydra.run.dir" for o in overrides):
        return overrides
    return [*overrides, f"hydra.run.dir={run_dir}"]


@contextmanager
def atomic_path(final: str | os.PathLike):
    """Yield a temporary sibling path (a file or a folder); rename it onto ``final`` only if
    the block succeeds, so a reader never sees half a file. The name is the process's own:
    two processes writing one file (sweep jobs sharing a cache) do not mix their bytes,
    and what a killed process left is removed by the next writer on its machine."""
    final = Path(final)
    host = socket.gethostname()
    for stale in final.parent.glob(f".{glob.escape(final.name)}.{glob.escape(host)}.*.tmp"):
        pid = stale.name.removesuffix(".tmp").rsplit(".", 1)[-1]
        if pid.isdigit() and not _running(int(pid)):
            _remove(stale)
    tmp = final.with_name(f".{final.name}.{host}.{os.getpid()}.tmp")
    _remove(tmp)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    if tmp.is_dir():
        _remove(final)  # os.replace cannot replace a folder; a file it replaces atomically
    os.replace(tmp, final)


def user_cache(kind: str) -> Path:
    """``$TASKHUB_CACHE/<kind>`` (default ``~/.cache/taskhub/<kind>``): what taskhub builds
    once per machine and reuses across runs (compiled kernels, exported graphs)."""
    root = os.environ.get("TASKHUB_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "taskhub")
    return Path(root) / kind


def write_atomically(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
