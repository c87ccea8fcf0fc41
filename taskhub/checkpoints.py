"""Training checkpoints that prove they are complete, and the whole run's loss after a resume.

A kill can land while the Trainer writes a checkpoint (a truncated ``trainer_state.json``)
or while it rotates an old one away (a folder missing its weights). So each checkpoint
is sealed once the Trainer has written all of it: ``.taskhub-complete.json`` lists every
file and its size, written last and atomically. ``train.resume=auto`` takes the newest
checkpoint whose seal holds and skips the others with a one-line note.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from taskhub.rundir import write_atomically

from taskhub.errors import TaskhubError

log = logging.getLogger("taskhub")

SEAL = ".taskhub-complete.json"


class CheckpointSeal(TrainerCallback):
    """Seals each checkpoint after the Trainer saved it, and logs the loss at every save
    (and at the last step), so the loss of every step before a checkpoint is in its
    ``trainer_state.json``: what :func:`whole_run_loss` needs after a resume."""

    def on_step_end(self, args, state, control, **kwargs):
        if control.should_save or state.global_step >= state.max_steps:
            control.should_log = True

    def on_epoch_end(self, args, state, control, **kwargs):
        if control.should_save:
            control.should_log = True

    def on_save(self, args, state, control, **kwargs):
        if args.should_save:
            seal(Path(args.output_dir) / f"checkpoint-{state.global_step}")


def seal(folder: Path) -> None:
    files = {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")}
    write_atomically(folder / SEAL, json.dumps({"files": files}))


def flaw(folder: Path) -> str | None:
    """Why a checkpoint is not known to be complete (None: its seal holds)."""
    try:
        files = json.loads((folder / SEAL).read_text())["files"]
    except FileNotFoundError:
        return "no completion mark (cut short, or not saved by taskhub)"
    except (OSError, ValueError, KeyError, TypeError):
        return f"unreadable completion mark {SEAL}"
    for name, size in files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} is {path.stat().st_size} bytes, {size} when saved"
    return None


def _step(folder: Path) -> int:
    suffix = folder.name.rsplit("-", 1)[-1]
    return int(suffix) if suffix.isdigit() else -1


def newest_complete(checkpoints: str | os.PathLike) -> str | None:
    """The newest sealed ``checkpoint-<step>`` folder (None when there is none)."""
    for folder in sorted(Path(checkpoints).glob("checkpoint-*"), key=_step, reverse=True):
        if _step(folder) < 0 or not folder.is_dir():
            continue
        reason = flaw(folder)
        if reason is None:
            return str(folder)
        log.warning("train.resume=auto: skipping %s: %s", folder, reason)
    return None


def check_named(folder: str) -> None:
    """A checkpoint named by ``train.resume=<folder>``: refuse one whose seal fails, or
    (not saved by taskhub) whose ``trainer_state.json`` does not parse, in one line."""
    path = Path(folder)
    if (path / SEAL).exists():
        reason = flaw(path)
        if reason is not None:
            raise TaskhubError(f"train.resume={folder}: incomplete checkpoint: {reason}")
        return
    state = path / "trainer_state.json"
    try:
        json.loads(state.read_text())
    except FileNotFoundError:
        raise TaskhubError(f"train.resume={folder}: no trainer_state.json: not a Trainer checkpoint") from None
    except ValueError as exc:
        raise TaskhubError(f"train.resume={folder}: {state} is not valid JSON ({exc}); the checkpoint was cut short") from None


def saved_step(checkpoint: str) -> int:
    """The global step a checkpoint was saved at."""
    return json.loads((Path(checkpoint) / "trainer_state.json").read_text())["global_step"]


def whole_run_loss(log_history: list[dict[str, Any]], resumed_at: int, global_step: int) -> float | None:
    """The mean training loss over every step of a resumed run, from the logged losses
    (each the mean since the previous log); None when the log does not cover every step
    (a checkpoint saved without :class:`CheckpointSeal`)."""
    total, previous, logged = 0.0, 0, set()
    for entry in log_history:
        if "loss" in entry and entry.get("step", 0) > previous:
            total += entry["loss"] * (entry["step"] - previous)
            previous = entry["step"]
            logged.add(previous)
    if resumed_at not in logged or previous != global_step or not global_step:
        return None
    return total / global_step
