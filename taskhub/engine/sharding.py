"""Processes of one run under ``torchrun`` / ``accelerate launch``: who is main, which
rows each one predicts, and how their results come back together.

The launchers start N copies of the same command and tell each its place through the
environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``). The Trainer shards training and
``Trainer.evaluate`` itself; prediction is sharded here: each rank takes a contiguous
range of the input rows (:func:`shard_range`) through the ordinary streaming engine, and
the main process puts the ranges back together in input order. Coordination (the run
dir, outcomes, gathered results) goes through ``torch.distributed`` object collectives
on a gloo group of their own, so they work beside an NCCL training group. A single
process never imports torch here and every helper is then a plain call.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from taskhub.errors import TaskhubError

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    rank: int
    size: int
    local_rank: int

    @property
    def main(self) -> bool:
        return self.rank == 0


def world() -> World:
    """This process's place, from the launcher's environment (one process without one)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    return World(rank, size, int(os.environ.get("LOCAL_RANK", str(rank))))


def is_main() -> bool:
    return world().main


def distributed() -> bool:
    return world().size > 1


def my_rows(total: int | None) -> tuple[int, int | None]:
    """This rank's input rows ``[start, stop)``; all of them (``stop`` None: a stream's
    end) in one process."""
    here = world()
    if here.size == 1:
        return 0, total
    if total is None:
        raise TaskhubError(
            f"data.streaming=true: a stream cannot be split across {here.size} processes (its length is unknown until it is read); "
            "run it in one process, or without data.streaming"
        )
    return shard_range(total, here.rank, here.size)


def shard_range(total: int, rank: int, size: int) -> tuple[int, int]:
    """Rows ``[start, stop)`` of rank ``rank``: contiguous, sizes differing by at most one."""
    base, extra = divmod(total, size)
    start = rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


_group = None


def _coordination_group():
    """The gloo group for object collectives, made on first use (every rank reaches the
    same collectives in the same order). Starts the default process group if the Trainer
    has not, with the backend it would pick."""
    global _group
    if _group is None:
        import torch
        import torch.distributed as dist

        if not dist.is_initialized():
            on_gpu = torch.cuda.is_available()
            if on_gpu:
                torch.cuda.set_device(world().local_rank)
            dist.init_process_group(backend="cpu:gloo,cuda:nccl" if on_gpu else "gloo")
        _group = dist.new_group(backend="gloo")
    return _group


def broadcast(value: T) -> T:
    """The main process's ``value``, on every rank."""
    if not distributed():
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0, group=_coordination_group())
    return box[0]


def gather(value: T) -> list[T] | None:
    """Every rank's ``value`` in rank order, on the main process (None elsewhere)."""
    if not distributed():
        return [value]
    import torch.distributed as dist

    values: list[Any] | None = [None] * world().size if is_main() else None
    dist.gather_object(value, values, dst=0, group=_coordination_group())
    return values


def barrier() -> None:
    """Wait until every rank is here."""
    if distributed():
        import torch.distributed as dist

        dist.barrier(group=_coordination_group())


def shutdown() -> None:
    """Destroy the process groups at the end of a run that succeeded on every rank: left
    to the interpreter's exit, gloo's worker threads can abort it (SIGABRT, "terminate
    called without an active exception") after the work is done. Not after a failure: a
    rank still inside a collective would wait on it forever."""
    global _group
    if not distributed():
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
    _group = None


class Relayed(TaskhubError):
    """The main process's error, raised on the other ranks too: the main one reports it."""


def on_main(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on the main process only; every rank gets its result, or raises its
    error (the run dir's lock and checks: decisions made once for the whole run)."""
    if not distributed():
        return fn(*args)
    if not is_main():
        kind, value = broadcast(None)
        if kind == "error":
            raise Relayed(value)
        return value
    try:
        value = fn(*args)
    except BaseException as err:
        broadcast(("error", str(err) if isinstance(err, TaskhubError) else f"the main process failed: {type(err).__name__}: {err}"))
        raise
    return broadcast(("ok", value))[1]


def gather_rows(rows: list[T]) -> list[T] | None:
    """Every rank's rows, concatenated in rank order (input order, for contiguous
    shards), on the main process (None elsewhere)."""
    parts = gather(rows)
    return None if parts is None else [row for part in parts for row in part]
