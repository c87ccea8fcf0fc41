"""Progress bars for long jobs (predict, evaluation by prediction: rows; sweeps: jobs):
done, rate and the time left, on stderr, from the main process only. ``progress=null`` shows
them when stderr is a terminal (not in logs and pipes), ``true`` always, ``false`` never."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from taskhub.engine.sharding import is_main

T = TypeVar("T")


def shown(setting: bool | None) -> bool:
    wanted = sys.stderr.isatty() if setting is None else setting
    return wanted and is_main()


def bar(total: int | None, desc: str, setting: bool | None, unit: str = " rows", done: int = 0, items: Iterable[T] | None = None):
    """A tqdm bar of ``total`` (None: unknown, rate only) starting at ``done``; hidden as
    :func:`shown` says."""
    from tqdm import tqdm

    return tqdm(items, total=total, initial=done, desc=desc, unit=unit, file=sys.stderr, disable=not shown(setting), mininterval=0.5, dynamic_ncols=True)


def progress(items: Iterable[T], total: int | None, desc: str, setting: bool | None, done: int = 0) -> Iterator[T]:
    """``items``, counted on a bar of ``total`` rows that starts at ``done``."""
    with bar(total, desc, setting, done=done, items=items) as counted:
        yield from counted
